"""The supervising human's judgement: is this robot going wrong right now?

In simulation the human has a privileged view: the task's dense progress (robosuite's shaped
reward, normalized to [0, 1]) computed from the simulator state. They take over when progress
stalls, regresses (an object dropped or knocked away), or the episode is running out of time.
These takeovers are the labels the failure predictor learns from, so they must mark real trouble,
not random moments.
"""
from __future__ import annotations

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


class FailureWatcher:
    def __init__(self, cfg: SupervisorConfig) -> None:
        self.cfg = cfg
        self.best = 0.0
        self.best_step = 0
        self.reason: str | None = None

    def reset(self) -> None:
        self.best, self.best_step, self.reason = 0.0, 0, None

    def should_take_over(self, robot: SimRobot) -> bool:
        """Call once per step, before the robot acts. Sets `reason` when it returns True."""
        progress = task_progress(robot)
        step = robot.steps
        if progress > self.best + self.cfg.min_improvement:
            self.best, self.best_step = progress, step
        if step < self.cfg.grace_steps:
            return False
        if progress < self.best - self.cfg.regression:
            self.reason = "regression"
        elif step - self.best_step >= self.cfg.stall_steps:
            self.reason = "stall"
        elif step >= self.cfg.deadline_fraction * robot.max_steps:
            self.reason = "deadline"
        return self.reason is not None
