"""Visual changes the monitor never saw in training: for out-of-distribution evaluation.

Each change edits the MuJoCo model of a SimRobot in place (lights, a camera pose, object colours);
soft resets keep model edits, so a change is applied once after the robot is built. Physics is not
touched: the scripted operator still succeeds, only what the cameras see differs.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from firework_common.errors import UsageError
from firework_sim.robot_env import SimRobot

LIGHT_SCALE = 0.35                                   # dim every light to 35 %
LIGHT_TINT = np.array([1.0, 0.75, 0.5])              # and make it warm (orange)
CAMERA_SHIFT_M = np.array([0.0, 0.12, 0.06])         # agentview moves sideways and up
CAMERA_YAW_RAD = 0.15                                # and turns slightly
OBJECT_RGBA = np.array([0.15, 0.35, 0.95, 1.0])      # task objects turn blue
AGENTVIEW = "agentview"


def _lighting(robot: SimRobot) -> None:
    model = robot.raw.sim.model._model
    model.light_diffuse[:] = model.light_diffuse * LIGHT_SCALE * LIGHT_TINT
    model.light_ambient[:] = model.light_ambient * LIGHT_SCALE * LIGHT_TINT
    model.light_specular[:] = model.light_specular * LIGHT_SCALE


def _camera(robot: SimRobot) -> None:
    sim = robot.raw.sim
    cam = sim.model.camera_name2id(AGENTVIEW)
    model = sim.model._model
    model.cam_pos[cam] = model.cam_pos[cam] + CAMERA_SHIFT_M
    half = CAMERA_YAW_RAD / 2.0
    w, x, y, z = model.cam_quat[cam]
    # Rotate about the world z axis: q' = q_z * q (quaternions are w, x, y, z in MuJoCo).
    cw, sz = np.cos(half), np.sin(half)
    model.cam_quat[cam] = [cw * w - sz * z, cw * x - sz * y, cw * y + sz * x, cw * z + sz * w]


def _object_color(robot: SimRobot) -> None:
    sim = robot.raw.sim
    model = sim.model._model
    for obj in robot.raw.model.mujoco_objects:
        for name in list(obj.visual_geoms) + list(obj.contact_geoms):
            gid = sim.model.geom_name2id(name)
            model.geom_matid[gid] = -1     # a material would override the geom colour
            model.geom_rgba[gid] = OBJECT_RGBA


VISUAL_CHANGES: dict[str, Callable[[SimRobot], None]] = {
    "lighting": _lighting,
    "camera": _camera,
    "color": _object_color,
}


def apply_visual_change(robot: SimRobot, name: str) -> None:
    try:
        change = VISUAL_CHANGES[name]
    except KeyError:
        raise UsageError(f"unknown visual change {name!r}; available: {', '.join(VISUAL_CHANGES)}") from None
    change(robot)
