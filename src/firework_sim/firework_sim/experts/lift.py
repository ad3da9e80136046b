"""Lift: grasp the cube from above and raise it."""
from __future__ import annotations

import numpy as np

from firework_sim.experts.base import GRIPPER_CLOSE, GRIPPER_OPEN, ScriptedExpert
from firework_sim.robot_env import SimRobot

HOVER_HEIGHT_M = 0.08      # above the cube centre before descending
GRASP_TOLERANCE_M = 0.012  # horizontal alignment needed before descending / closing
GRASP_DEPTH_M = 0.0        # grasp height relative to the cube centre
LIFT_HEIGHT_M = 0.15       # lift target above the cube's start height (table top)
CLOSED_ON_NOTHING_M = 0.01  # finger opening below which the gripper holds nothing


class LiftExpert(ScriptedExpert):
    def act(self, env: SimRobot) -> np.ndarray:
        cube = self.object_pos(env, env.raw.cube.root_body)
        eef = self.eef_pos(env)
        table_z = env.raw.model.mujoco_arena.table_offset[2]
        grasped = env.raw._check_grasp(gripper=env.raw.robots[0].gripper,
                                       object_geoms=env.raw.cube)
        if grasped:
            return self.action(self.translate_toward(env, [cube[0], cube[1], table_z + LIFT_HEIGHT_M + 0.05]),
                               None, GRIPPER_CLOSE)
        horizontal = np.linalg.norm(eef[:2] - cube[:2])
        closing = self.gripper_opening(env) < 0.07
        if horizontal > GRASP_TOLERANCE_M and eef[2] < cube[2] + HOVER_HEIGHT_M * 0.5:
            # Misaligned and low: rise first so the fingers do not push the cube away.
            target = np.array([eef[0], eef[1], cube[2] + HOVER_HEIGHT_M])
            return self.action(self.translate_toward(env, target), None, GRIPPER_OPEN)
        if horizontal > GRASP_TOLERANCE_M:
            target = np.array([cube[0], cube[1], cube[2] + HOVER_HEIGHT_M])
            return self.action(self.translate_toward(env, target), None, GRIPPER_OPEN)
        target = np.array([cube[0], cube[1], cube[2] + GRASP_DEPTH_M])
        if abs(eef[2] - target[2]) < 0.01 or (closing and self.gripper_opening(env) > CLOSED_ON_NOTHING_M):
            return self.action(self.translate_toward(env, target), None, GRIPPER_CLOSE)
        return self.action(self.translate_toward(env, target), None, GRIPPER_OPEN)
