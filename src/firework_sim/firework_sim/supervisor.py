"""The supervising human's judgement: is this robot going wrong right now?

In simulation the human has a privileged view: the task's dense progress (robosuite's shaped
reward, normalized to [0, 1]) computed from the simulator state, and where the gripper and the task
objects are. They take over when the robot stalls (no progress for `stall_steps`), regresses (an
object dropped or knocked away, and it stays down), or the episode is running out of time. These takeovers are the
labels the failure predictor learns from, so they must mark real trouble, not random moments.

Progress alone is too coarse to call a stall: the shaped reward is nearly flat while the gripper is
more than ~10 cm from an object and while an object is carried (PickPlaceCan's hover term only rises
over the bin), so a competent robot reaching for the can was taken over. What also counts as
progress: the gripper getting closer to a task object than ever before, and a task object moving.
The stall window equals the failure label length M (monitor.yaml), so the label is the stall itself.

A human who took over gives control back once the trouble is behind the robot: after at least
`hand_back_min_steps`, when progress is `hand_back_progress` above the best the robot had reached.
The robot's stall clock then starts afresh. The `max_takeovers`-th takeover of an episode, any
deadline takeover and any takeover still running at the deadline last to the end of the episode.
"""
from __future__ import annotations

import numpy as np

from firework_sim.config import SupervisorConfig
from firework_sim.robot_env import SimRobot


def task_progress(robot: SimRobot) -> float:
    """Dense task progress in [0, 1] from the current simulator state."""
    env = robot.raw
    shaping = env.reward_shaping
    env.reward_shaping = True
    try:
        return float(env.reward(None))
    finally:
        env.reward_shaping = shaping


def scene_positions(robot: SimRobot) -> tuple[np.ndarray, np.ndarray]:
    """World positions of the gripper (3,) and of every body of the task's objects (n, 3)."""
    env = robot.raw
    sim = env.sim
    bodies = [sim.model.body_name2id(b) for obj in env.model.mujoco_objects for b in obj.bodies]
    eef = np.array(sim.data.site_xpos[env.robots[0].eef_site_id["right"]])
    return eef, np.array(sim.data.body_xpos[bodies])


class FailureWatcher:
    def __init__(self, cfg: SupervisorConfig) -> None:
        self.cfg = cfg
        self.reset()

    def reset(self) -> None:
        self.best, self.best_step = 0.0, 0
        self.regressed_steps = 0                  # consecutive steps below best - regression
        self.reason: str | None = None            # why the human has control (None: the robot has)
        self.reasons: list[str] = []              # every takeover of this episode, in order
        self.takeover_at = 0                      # step of the latest takeover
        self.closest = np.inf                     # closest the gripper has come to a task object
        self.objects_at: np.ndarray | None = None  # object body positions at the last progress

    def _moved_on(self, robot: SimRobot) -> bool:
        """Gripper closer to a task object than ever, or a task object moved since the last
        progress: the robot is getting somewhere even if the shaped reward does not show it."""
        eef, objects = scene_positions(robot)
        if len(objects) == 0:
            return False
        gap = float(np.linalg.norm(objects - eef, axis=1).min())
        approached = gap < self.closest - self.cfg.approach_m
        moved = self.objects_at is not None and bool(
            (np.linalg.norm(objects - self.objects_at, axis=1) > self.cfg.object_motion_m).any())
        if self.objects_at is None or approached or moved:
            self.objects_at = objects
        if approached or self.closest == np.inf:
            self.closest = gap
        return approached or moved

    def should_take_over(self, robot: SimRobot) -> bool:
        """Call once per step, before the robot acts. Sets `reason` when it returns True."""
        progress = task_progress(robot)
        step = robot.steps
        moved_on = self._moved_on(robot)
        if progress > self.best + self.cfg.min_improvement:
            self.best, self.best_step = progress, step
        elif moved_on:
            self.best_step = step
        self.regressed_steps = self.regressed_steps + 1 if progress < self.best - self.cfg.regression else 0
        if step < self.cfg.grace_steps:
            return False
        if self.regressed_steps >= self.cfg.regression_steps:
            self.reason = "regression"
        elif step - self.best_step >= self.cfg.stall_steps:
            self.reason = "stall"
        elif step >= self.cfg.deadline_fraction * robot.max_steps:
            self.reason = "deadline"
        if self.reason is None:
            return False
        self.reasons.append(self.reason)
        self.takeover_at = step
        return True

    def should_hand_back(self, robot: SimRobot) -> bool:
        """Call once per step while the human has control, before acting: True when the human gives
        control back to the robot now (its stall clock and best progress restart from here)."""
        if (self.reason is None or self.reason == "deadline"
                or len(self.reasons) >= self.cfg.max_takeovers
                or robot.steps - self.takeover_at < self.cfg.hand_back_min_steps
                or robot.steps >= self.cfg.deadline_fraction * robot.max_steps):
            return False   # past the deadline, the human finishes what it took over
        progress = task_progress(robot)
        if progress < self.best + self.cfg.hand_back_progress:
            return False
        self.best, self.best_step = progress, robot.steps
        self.regressed_steps = 0
        self.closest, self.objects_at = np.inf, None   # measured afresh from where the human left it
        self.reason = None
        return True
