"""The imperfect operator: the scripted expert with realistic faults.

It is the stand-in failing policy for monitor work until the learned policy exists: it hesitates
(stale actions), drifts (temporally correlated noise), misjudges where objects are (a per-episode
bias on every perceived object position) and sometimes lets go (gripper slips). Failures then look
like a policy's failures: near misses, regrasps, drops, running out of time.
"""
from __future__ import annotations

import numpy as np

from firework_sim.config import ImperfectConfig
from firework_sim.experts.base import GRIPPER_OPEN, ScriptedExpert
from firework_sim.robot_env import SimRobot


class ImperfectOperator:
    def __init__(self, expert: ScriptedExpert, cfg: ImperfectConfig, rng: np.random.Generator) -> None:
        self.expert = expert
        self.cfg = cfg
        self.rng = rng
        self._noise = np.zeros(6)
        self._last_action: np.ndarray | None = None
        self._slip_left = 0

    def reset(self, env: SimRobot) -> None:
        self.expert.reset(env)
        self.expert.position_bias = self.rng.normal(0.0, self.cfg.object_bias_m, size=3)
        self._noise = np.zeros(6)
        self._last_action = None
        self._slip_left = 0

    def resume(self, env: SimRobot) -> None:
        """Control is back after a human acted: fresh noise and memory, the same misperception."""
        self.expert.resume(env)
        self._noise = np.zeros(6)
        self._last_action = None
        self._slip_left = 0

    def act(self, env: SimRobot) -> np.ndarray:
        action = np.array(self.expert.act(env), dtype=np.float64)
        if self._last_action is not None and self.rng.random() < self.cfg.stale_action_prob:
            action = self._last_action.copy()
        rho = self.cfg.noise_correlation
        # AR(1) noise with stationary std noise_sigma.
        self._noise = rho * self._noise + np.sqrt(1.0 - rho**2) * self.rng.normal(
            0.0, self.cfg.noise_sigma, size=6)
        action[:6] += self._noise
        if self._slip_left > 0:
            self._slip_left -= 1
            action[6] = GRIPPER_OPEN
        elif self.rng.random() < self.cfg.gripper_slip_prob:
            self._slip_left = self.cfg.gripper_slip_steps
            action[6] = GRIPPER_OPEN
        action = np.clip(action, -1.0, 1.0)
        self._last_action = action
        return action
