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
        pass

    def act(self, env):
        return np.zeros(7)


def test_supervisor_takes_over_a_stalled_robot_and_the_operator_finishes(robots, operator_config):
    from firework_sim.episode import run_episode
    from firework_sim.experts import make_expert
    from firework_sim.supervisor import FailureWatcher

    cfg = operator_config.supervisor
    watcher = FailureWatcher(cfg)
    res = run_episode(robots["Lift"], _Idle(), 5, operator=make_expert("Lift", operator_config),
                      watcher=watcher)
    assert watcher.reason == "stall"
    assert cfg.grace_steps <= res.takeover_step <= cfg.stall_steps + 1
    assert res.success


def test_supervisor_leaves_a_competent_robot_alone(robots, operator_config):
    from firework_sim.episode import run_episode
    from firework_sim.experts import make_expert
    from firework_sim.supervisor import FailureWatcher

    res = run_episode(robots["Lift"], make_expert("Lift", operator_config), 5,
                      operator=make_expert("Lift", operator_config),
                      watcher=FailureWatcher(operator_config.supervisor))
    assert res.success and res.takeover_step is None


class _Clock:
    """Stands in for a SimRobot: the watcher only reads `steps` and `max_steps` (progress is
    patched)."""

    def __init__(self, max_steps: int = 1000) -> None:
        self.steps, self.max_steps = 0, max_steps


def _watch(monkeypatch, cfg, progress):
    """Feed a progress sequence to a FailureWatcher; the step at which it takes over and why."""
    import firework_sim.supervisor as sup

    watcher, robot = sup.FailureWatcher(cfg), _Clock()
    values = iter(progress)
    monkeypatch.setattr(sup, "task_progress", lambda _robot: next(values))
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


def test_supervisor_regression_fires_when_progress_drops(monkeypatch, operator_config):
    cfg = operator_config.supervisor
    rising = [0.05 * i for i in range(cfg.grace_steps + 5)]
    step, reason = _watch(monkeypatch, cfg, rising + [rising[-1] - cfg.regression - 0.01] * 3)
    assert (step, reason) == (len(rising), "regression")
