"""The one observation/action contract shared by the simulator, bags, datasets, policy and monitor."""
from __future__ import annotations

import enum
from dataclasses import dataclass

import numpy as np

ACTION_DIM = 7
# OSC pose delta: translation (x, y, z), rotation as axis-angle (x, y, z), gripper (-1 open, +1 close).
ACTION_LABELS = ("dx", "dy", "dz", "ax", "ay", "az", "gripper")
ACTION_LOW = -1.0
ACTION_HIGH = 1.0

# eef position (3), eef orientation quaternion xyzw (4), gripper finger positions (2).
PROPRIO_LABELS = ("eef_x", "eef_y", "eef_z", "eef_qx", "eef_qy", "eef_qz", "eef_qw",
                  "gripper_left", "gripper_right")
PROPRIO_DIM = len(PROPRIO_LABELS)
ARM_JOINT_NAMES = tuple(f"panda_joint{i}" for i in range(1, 8))
GRIPPER_JOINT_NAMES = ("panda_finger_joint1", "panda_finger_joint2")


class ControlSource(enum.IntEnum):
    """Who produced the executed action of a step (the paper's c_t)."""

    ROBOT = 0
    HUMAN = 1


class EpisodeOutcome(enum.Enum):
    SUCCESS = "success"
    FAILURE = "failure"       # the step budget ran out without success
    ABORTED = "aborted"       # stopped from outside (e.g. Ctrl-C) before an outcome


@dataclass
class Observation:
    """One robot's observation at one control step.

    images: camera name -> HxWx3 uint8 RGB, upright (row 0 is the top of the picture).
    """

    images: dict[str, np.ndarray]
    eef_pos: np.ndarray
    eef_quat: np.ndarray
    gripper_qpos: np.ndarray
    joint_pos: np.ndarray
    task_id: int

    def proprio(self) -> np.ndarray:
        return np.concatenate([self.eef_pos, self.eef_quat, self.gripper_qpos]).astype(np.float32)


def check_action(action: np.ndarray, field: str = "action") -> np.ndarray:
    """Validate a 7-D action and clip it to the action box; never pass on a wrong-shaped action."""
    a = np.asarray(action, dtype=np.float64)
    if a.shape != (ACTION_DIM,):
        raise ValueError(f"{field} must have shape ({ACTION_DIM},), got {a.shape}")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{field} contains NaN or inf: {a.tolist()}")
    return np.clip(a, ACTION_LOW, ACTION_HIGH)
