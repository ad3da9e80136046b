"""The scripted operator: succeeds from reset and when taking over from a failing policy.

These are quick functional checks on a few seeds (rendering off: the experts read simulator state).
The success-rate numbers over 20 episodes per task come from bench/operator_success.py.
"""
from __future__ import annotations

import numpy as np
import pytest

from firework_common.schema import ControlSource
from firework_sim.tasks import TASKS

pytestmark = pytest.mark.sim
SEEDS = (11, 12)


@pytest.fixture(scope="module")
def robots(sim_config):
    from firework_sim.robot_env import SimRobot

    made = {t.name: SimRobot(t, sim_config, seed=0, render=False) for t in TASKS}
    yield made
    for r in made.values():
        r.close()


@pytest.mark.parametrize("task", [t.name for t in TASKS])
def test_operator_succeeds_from_reset(task, robots, operator_config):
    from firework_sim.episode import run_episode
    from firework_sim.experts import make_expert

    for seed in SEEDS:
        res = run_episode(robots[task], make_expert(task, operator_config), seed,
                          policy_source=ControlSource.HUMAN)
        assert res.success, f"{task} seed {seed}: {res}"
        assert res.human_steps == res.steps


@pytest.mark.parametrize("task", [t.name for t in TASKS])
def test_operator_takes_over_from_the_imperfect_policy(task, robots, operator_config):
    from firework_sim.episode import run_episode
    from firework_sim.experts import make_expert
    from firework_sim.imperfect import ImperfectOperator

    for seed in SEEDS:
        policy = ImperfectOperator(make_expert(task, operator_config), operator_config.imperfect,
                                   np.random.default_rng(seed))
        res = run_episode(robots[task], policy, seed, operator=make_expert(task, operator_config),
                          takeover_after=40)
        assert res.success, f"{task} seed {seed}: {res}"
        assert res.takeover_step == 40 and res.human_steps == res.steps - 40


def test_imperfect_policy_deviates_from_the_expert(robots, operator_config):
    from firework_sim.experts import make_expert
    from firework_sim.imperfect import ImperfectOperator

    robot = robots["Lift"]
    robot.reset(seed=3)
    expert = make_expert("Lift", operator_config)
    imperfect = ImperfectOperator(make_expert("Lift", operator_config), operator_config.imperfect,
                                  np.random.default_rng(0))
    expert.reset(robot), imperfect.reset(robot)
    diffs = [np.abs(imperfect.act(robot) - expert.act(robot)).max() for _ in range(20)]
    assert np.mean(diffs) > 0.05
    assert np.linalg.norm(imperfect.expert.position_bias) > 0


class _Idle:
    """A policy that does nothing: the supervisor must notice the stall and take over."""

    def reset(self, env):
        self.resumed = 0

    def resume(self, env):
        self.resumed += 1

    def act(self, env):
        return np.zeros(7)


def test_supervisor_takes_over_a_stalled_robot_and_the_operator_finishes(robots, operator_config):
    from firework_sim.episode import run_episode
    from firework_sim.experts import make_expert
    from firework_sim.supervisor import FailureWatcher

    cfg = operator_config.supervisor
    watcher, idle, sources = FailureWatcher(cfg), _Idle(), []
    res = run_episode(robots["Lift"], idle, 5, operator=make_expert("Lift", operator_config),
                      watcher=watcher, sink=lambda record: sources.append(record.source))
    assert watcher.reasons[0] == "stall"
    assert cfg.grace_steps <= res.takeover_step <= cfg.stall_steps + 1
    assert res.success
    # The human hands back once past the trouble, the idle robot stalls again and is taken over
    # again; the human finishes the task in the last takeover.
    assert 2 <= len(res.takeover_steps) <= cfg.max_takeovers
    assert len(res.hand_back_steps) == len(res.takeover_steps) - 1
    assert idle.resumed == len(res.hand_back_steps)
    for took, gave in zip(res.takeover_steps, res.hand_back_steps):
        assert gave - took >= cfg.hand_back_min_steps
    for gave, took in zip(res.hand_back_steps, res.takeover_steps[1:]):
        assert gave + cfg.stall_steps <= took <= gave + cfg.stall_steps + 1
    # What is recorded (c_t per step) switches exactly there.
    human = np.array(sources) == ControlSource.HUMAN
    assert list(np.flatnonzero(human[1:] & ~human[:-1]) + 1) == res.takeover_steps
    assert list(np.flatnonzero(~human[1:] & human[:-1]) + 1) == res.hand_back_steps
    assert human.sum() == res.human_steps


@pytest.mark.parametrize("task", [t.name for t in TASKS])
def test_supervisor_leaves_a_competent_robot_alone(robots, operator_config, task):
    """The scripted expert reaching, carrying and releasing is never taken for a stall or a drop
    (it was, on every task but Lift, when only the shaped reward counted as progress)."""
    from firework_sim.episode import run_episode
    from firework_sim.experts import make_expert
    from firework_sim.supervisor import FailureWatcher

    watcher = FailureWatcher(operator_config.supervisor)
    res = run_episode(robots[task], make_expert(task, operator_config), 5,
                      operator=make_expert(task, operator_config), watcher=watcher)
    assert res.success and res.takeover_step is None, watcher.reason


class _Clock:
    """Stands in for a SimRobot: the watcher only reads `steps` and `max_steps` (progress and the
    gripper / object positions are patched)."""

    def __init__(self, max_steps: int = 1000) -> None:
        self.steps, self.max_steps = 0, max_steps


STILL = (np.zeros(3), np.array([[0.3, 0.0, 0.0]]))     # gripper 30 cm from a resting object


def _watch(monkeypatch, cfg, progress, scene=None):
    """Feed a progress sequence (and optionally (gripper, objects) positions per step) to a
    FailureWatcher; the step at which it takes over and why."""
    import firework_sim.supervisor as sup

    watcher, robot = sup.FailureWatcher(cfg), _Clock()
    values = iter(progress)
    scenes = iter(scene if scene is not None else [STILL] * len(progress))
    monkeypatch.setattr(sup, "task_progress", lambda _robot: next(values))
    monkeypatch.setattr(sup, "scene_positions", lambda _robot: next(scenes))
    for step in range(len(progress)):
        robot.steps = step
        if watcher.should_take_over(robot):
            return step, watcher.reason
    return None, None


def test_supervisor_stall_fires_stall_steps_after_the_last_improvement(monkeypatch, operator_config):
    cfg = operator_config.supervisor
    rising = [0.1 + 0.05 * i for i in range(cfg.grace_steps + 5)]
    flat = [rising[-1]] * (cfg.stall_steps + 5)
    step, reason = _watch(monkeypatch, cfg, rising + flat)
    assert reason == "stall"
    assert step == len(rising) - 1 + cfg.stall_steps


def test_supervisor_counts_reaching_and_carrying_as_progress(monkeypatch, operator_config):
    """Flat shaped reward, but the gripper closes in on the object, then the object is carried:
    not a stall. Once both stop, the stall clock runs from the last movement."""
    cfg = operator_config.supervisor
    reach = [(np.array([0.01 * i, 0.0, 0.0]), np.array([[0.3, 0.0, 0.0]])) for i in range(30)]
    carry = [(np.array([0.3 + 0.01 * i, 0.0, 0.0]), np.array([[0.3 + 0.01 * i, 0.0, 0.0]]))
             for i in range(30)]
    rest = [carry[-1]] * (cfg.stall_steps + 5)
    scene = reach + carry + rest
    step, reason = _watch(monkeypatch, cfg, [0.1] * len(scene), scene)
    assert reason == "stall"
    assert len(reach) + len(carry) - 1 < step <= len(reach) + len(carry) - 1 + cfg.stall_steps


def test_supervisor_regression_fires_when_progress_stays_down(monkeypatch, operator_config):
    cfg = operator_config.supervisor
    rising = [0.05 * i for i in range(cfg.grace_steps + 5)]
    dropped = rising[-1] - cfg.regression - 0.01
    step, reason = _watch(monkeypatch, cfg, rising + [dropped] * (cfg.regression_steps + 3))
    assert (step, reason) == (len(rising) + cfg.regression_steps - 1, "regression")
    # A brief dip (releasing an object onto its goal) is not a regression.
    dip = rising + [dropped] * (cfg.regression_steps - 1) + [rising[-1]] * 3
    assert _watch(monkeypatch, cfg, dip) == (None, None)


def _supervise(monkeypatch, cfg, progress, max_steps=1000):
    """Drive a FailureWatcher as run_episode does over a progress sequence (still scene): ->
    the steps of every takeover and hand-back."""
    import firework_sim.supervisor as sup

    watcher, robot = sup.FailureWatcher(cfg), _Clock(max_steps)
    monkeypatch.setattr(sup, "task_progress", lambda clock: progress[clock.steps])
    monkeypatch.setattr(sup, "scene_positions", lambda _robot: STILL)
    human, took, gave = False, [], []
    for step in range(len(progress)):
        robot.steps = step
        if not human and watcher.should_take_over(robot):
            human = True
            took.append(step)
        elif human and watcher.should_hand_back(robot):
            human = False
            gave.append(step)
    return took, gave, watcher


def test_human_hands_back_after_min_steps_once_past_the_robots_best(monkeypatch, operator_config):
    import dataclasses

    cfg = operator_config.supervisor
    assert cfg.grace_steps <= cfg.stall_steps
    stalled = [0.3] * (cfg.stall_steps + 1)                         # takeover at the last of these
    human = [0.3 + cfg.hand_back_progress + 0.01] * (cfg.hand_back_min_steps + 5)
    took, gave, watcher = _supervise(monkeypatch, cfg, stalled + human)
    assert took == [len(stalled) - 1] and watcher.reasons == ["stall"]
    assert gave == [took[0] + cfg.hand_back_min_steps]               # progress made at once, held
    assert watcher.reason is None

    # Progress that never gets past the robot's best: the human keeps control.
    took, gave, _ = _supervise(monkeypatch, cfg, stalled + [0.31] * (cfg.hand_back_min_steps + 5))
    assert len(took) == 1 and gave == []
    # One takeover per episode (max_takeovers 1): never handed back.
    one = dataclasses.replace(cfg, max_takeovers=1)
    took, gave, _ = _supervise(monkeypatch, one, stalled + human)
    assert len(took) == 1 and gave == []


def test_deadline_takeover_is_never_handed_back(monkeypatch, operator_config):
    cfg = operator_config.supervisor
    max_steps = 100
    deadline = int(np.ceil(cfg.deadline_fraction * max_steps))
    rising = [0.01 * i for i in range(deadline + 1)]            # slow but steady: no stall
    took, gave, watcher = _supervise(monkeypatch, cfg, rising + [0.9] * 40, max_steps=max_steps)
    assert watcher.reasons == ["deadline"] and took == [deadline] and gave == []
    # A stall takeover still running at the deadline is not handed back either.
    stalled = [0.3] * (deadline + 1)                      # the human gets past it only then
    took, gave, watcher = _supervise(monkeypatch, cfg, stalled + [0.9] * 40, max_steps=max_steps)
    assert watcher.reasons == ["stall"] and took == [cfg.stall_steps] and gave == []


def test_hand_back_config_is_validated():
    from firework_sim.config import SupervisorConfig

    for field, value in (("max_takeovers", 0), ("hand_back_min_steps", 0), ("hand_back_progress", 0.0)):
        with pytest.raises(ValueError, match=field):
            SupervisorConfig(**{field: value})
