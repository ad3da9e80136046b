"""Scripted operator experts: the simulated human.

An expert computes its action from the current simulator state at every step (object poses, grasp
contacts, joint angles) and keeps no plan between steps beyond small controller memory (an integral
term). That is what lets it start at reset or take over mid-episode from whatever state a failing
policy left behind.
"""
from __future__ import annotations

import abc

import numpy as np

from firework_common.schema import ACTION_DIM
from firework_sim.config import OperatorConfig
from firework_sim.robot_env import SimRobot

GRIPPER_OPEN = -1.0
GRIPPER_CLOSE = 1.0
# The OSC controller's output_max (robosuite BASIC Panda config): action 1.0 moves the goal this far.
OSC_MAX_TRANSLATION_M = 0.05
OSC_MAX_ROTATION_RAD = 0.5


def held_in_fingers(raw, obj) -> bool:
    """Whether the robosuite object `obj` touches both whole fingers, not just the pads: an object
    pinched by a finger's side is still in the hand."""
    fingers = raw.robots[0].gripper["right"].important_geoms
    return bool(raw._check_grasp(gripper=[fingers["left_finger"], fingers["right_finger"]],
                                 object_geoms=obj))


class ScriptedExpert(abc.ABC):
    """Base class. Subclasses implement `act`; object positions must be read through `object_pos`
    (so the imperfect operator can bias what the expert "sees")."""

    def __init__(self, cfg: OperatorConfig) -> None:
        self.cfg = cfg
        # Added to every object position the expert perceives; the imperfect operator sets it.
        self.position_bias = np.zeros(3)
        self._integral = np.zeros(3)

    def reset(self, env: SimRobot) -> None:
        """Called at the start of an episode and at a takeover: forget controller memory."""
        self._integral = np.zeros(3)

    def resume(self, env: SimRobot) -> None:
        """Control is back after someone else acted: the integral term is stale."""
        self._integral = np.zeros(3)

    @abc.abstractmethod
    def act(self, env: SimRobot) -> np.ndarray:
        """The 7-D action for the current simulator state."""

    # --- perception helpers ---------------------------------------------------------------------
    def eef_pos(self, env: SimRobot) -> np.ndarray:
        sim = env.raw.sim
        return np.array(sim.data.site_xpos[env.raw.robots[0].eef_site_id["right"]])

    def eef_rotation(self, env: SimRobot) -> np.ndarray:
        """3x3 rotation matrix of the gripper site in the world frame."""
        sim = env.raw.sim
        return np.array(sim.data.site_xmat[env.raw.robots[0].eef_site_id["right"]]).reshape(3, 3)

    def body_pos(self, env: SimRobot, body_name: str) -> np.ndarray:
        """True world position of a body (no bias): for the robot's own bodies."""
        sim = env.raw.sim
        return np.array(sim.data.body_xpos[sim.model.body_name2id(body_name)])

    def object_pos(self, env: SimRobot, body_name: str) -> np.ndarray:
        """Perceived world position of an object body (biased for the imperfect operator)."""
        return self.body_pos(env, body_name) + self.position_bias

    def body_rotation(self, env: SimRobot, body_name: str) -> np.ndarray:
        sim = env.raw.sim
        return np.array(sim.data.body_xmat[sim.model.body_name2id(body_name)]).reshape(3, 3)

    def gripper_opening(self, env: SimRobot) -> float:
        """Distance between the two fingers' joint positions (m); ~0.08 open, ~0 closed on nothing."""
        q = env.raw.sim.data.qpos[env.raw.robots[0]._ref_gripper_joint_pos_indexes["right"]]
        return float(q[0] - q[1])

    # --- control helpers ------------------------------------------------------------------------
    def translate_toward(self, env: SimRobot, target: np.ndarray) -> np.ndarray:
        """PI control of the eef position toward `target`: 3 action components in [-1, 1]."""
        err = np.asarray(target, dtype=np.float64) - self.eef_pos(env)
        self._integral += err
        integral_term = np.clip(self.cfg.integral_gain * self._integral,
                                -self.cfg.integral_limit, self.cfg.integral_limit)
        # Anti-windup: keep the stored integral consistent with the clipped term.
        if self.cfg.integral_gain > 0:
            self._integral = integral_term / self.cfg.integral_gain
        cmd = self.cfg.position_gain * err / OSC_MAX_TRANSLATION_M + integral_term
        return np.clip(cmd, -1.0, 1.0)

    def rotate_toward(self, env: SimRobot, target_rotation: np.ndarray) -> np.ndarray:
        """P control of the eef orientation toward a world-frame rotation matrix: axis-angle command."""
        current = self.eef_rotation(env)
        err_matrix = target_rotation @ current.T
        axis_angle = rotation_matrix_to_axis_angle(err_matrix)
        return np.clip(self.cfg.rotation_gain * axis_angle / OSC_MAX_ROTATION_RAD, -1.0, 1.0)

    @staticmethod
    def action(translation: np.ndarray, rotation: np.ndarray | None, gripper: float) -> np.ndarray:
        a = np.zeros(ACTION_DIM)
        a[:3] = translation
        if rotation is not None:
            a[3:6] = rotation
        a[6] = gripper
        return a


def rotation_matrix_to_axis_angle(m: np.ndarray) -> np.ndarray:
    """Rotation matrix -> axis * angle (world frame), robust near 0 and pi."""
    cos = np.clip((np.trace(m) - 1.0) / 2.0, -1.0, 1.0)
    angle = np.arccos(cos)
    if angle < 1e-6:
        return np.zeros(3)
    vec = np.array([m[2, 1] - m[1, 2], m[0, 2] - m[2, 0], m[1, 0] - m[0, 1]])
    sin = np.sin(angle)
    if sin < 1e-4:  # angle close to pi: take the axis from the symmetric part
        axis = np.sqrt(np.maximum((np.diag(m) + 1.0) / 2.0, 0.0))
        axis *= np.sign(vec + (vec == 0))
        return axis / (np.linalg.norm(axis) + 1e-12) * angle
    return vec / (2.0 * sin) * angle
