"""Run one episode: a policy acts, and a human (the scripted operator) may take over.

This is the loop the collection CLI, the evaluation CLIs and the in-process fleet share. Every step
is handed to `sink` (e.g. a bag writer) as soon as it happened, so nothing is held back in memory.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Protocol

import numpy as np

from firework_common.schema import ControlSource, EpisodeOutcome, Observation
from firework_sim.robot_env import SimRobot
from firework_sim.supervisor import FailureWatcher


class Actor(Protocol):
    def reset(self, env: SimRobot) -> None:
        """A new episode starts (or, for the operator, a takeover)."""

    def resume(self, env: SimRobot) -> None:
        """Control comes back mid-episode after someone else acted: forget what assumed this actor
        had acted on the last steps (pending action chunks, controller memory)."""

    def act(self, env: SimRobot) -> np.ndarray: ...


@dataclass
class StepRecord:
    """What happened at one control step: the observation the action was chosen from, the
    executed action, and who chose it."""

    step: int
    observation: Observation
    action: np.ndarray
    source: ControlSource


@dataclass
class EpisodeResult:
    task: str
    seed: int
    outcome: EpisodeOutcome
    steps: int
    human_steps: int
    takeover_steps: list[int]      # every robot -> human switch
    hand_back_steps: list[int]     # every human -> robot switch

    @property
    def success(self) -> bool:
        return self.outcome is EpisodeOutcome.SUCCESS

    @property
    def takeover_step(self) -> int | None:
        """The first takeover, or None."""
        return self.takeover_steps[0] if self.takeover_steps else None


def run_episode(robot: SimRobot, policy: Actor, seed: int, *,
                policy_source: ControlSource = ControlSource.ROBOT,
                operator: Actor | None = None, takeover_after: int | None = None,
                watcher: FailureWatcher | None = None,
                sink: Callable[[StepRecord], None] | None = None) -> EpisodeResult:
    """Run `policy` from a reset with `seed`. `operator` takes over for the rest of the episode
    after `takeover_after` steps; or, supervising as `watcher`, whenever it sees the robot going
    wrong, handing control back when the trouble is behind it (FailureWatcher.should_hand_back).
    The episode ends on held success or when the step budget is spent."""
    if (takeover_after is not None or watcher is not None) and operator is None:
        raise ValueError("takeover_after and watcher need an operator")
    obs = robot.reset(seed)
    policy.reset(robot)
    if watcher is not None:
        watcher.reset()
    actor, source = policy, policy_source
    takeover_steps: list[int] = []
    hand_back_steps: list[int] = []
    human_in_control = False
    human_steps = 0
    while not robot.succeeded and not robot.out_of_steps:
        if operator is not None and not human_in_control and (
                (takeover_after is not None and not takeover_steps and robot.steps >= takeover_after)
                or (watcher is not None and watcher.should_take_over(robot))):
            operator.reset(robot)
            actor, source, human_in_control = operator, ControlSource.HUMAN, True
            takeover_steps.append(robot.steps)
        elif human_in_control and watcher is not None and watcher.should_hand_back(robot):
            policy.resume(robot)
            actor, source, human_in_control = policy, policy_source, False
            hand_back_steps.append(robot.steps)
        action = actor.act(robot)
        record = StepRecord(robot.steps, obs, np.asarray(action, dtype=np.float64), source)
        obs = robot.step(action)
        human_steps += int(source is ControlSource.HUMAN)
        if sink is not None:
            sink(record)
    outcome = EpisodeOutcome.SUCCESS if robot.succeeded else EpisodeOutcome.FAILURE
    return EpisodeResult(robot.task.name, seed, outcome, robot.steps, human_steps, takeover_steps,
                         hand_back_steps)
