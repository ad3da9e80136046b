"""Stack: grasp cubeA (red, the smaller one) and set it on cubeB (green).

Like Lift, every decision comes from the current simulator state: whether cubeA is grasped, where
it is relative to cubeB, whether it already rests on cubeB. A dropped or knocked-over cubeA is
simply grasped again.
"""
from __future__ import annotations

import numpy as np

from firework_sim.experts.base import GRIPPER_CLOSE, GRIPPER_OPEN
from firework_sim.experts.lift import READY_OPENING_M, TopDownGraspExpert
from firework_sim.robot_env import SimRobot

CARRY_CLEARANCE_M = 0.03          # cubeA's bottom above cubeB's top while carrying it across
SIDEWAYS_CLEARANCE_M = 0.015      # cubeA's bottom above cubeB's top before it may move sideways
PLACE_TOLERANCE_M = 0.012         # horizontal cubeA-cubeB error allowed to start lowering
PLACE_DESCENT_TOLERANCE_M = 0.015 # ...and to keep lowering / releasing (cubeB's top: 0.05 m wide)
RELEASE_HEIGHT_M = 0.004          # cubeA this close above its resting height on cubeB: let go
PRESS_DEPTH_M = 0.01              # lowering target below the resting height: cubeA surely lands
RETREAT_HEIGHT_M = 0.06           # eef above the released cubeA's centre


class StackExpert(TopDownGraspExpert):
    def act(self, env: SimRobot) -> np.ndarray:
        cube_a, cube_b = env.raw.cubeA, env.raw.cubeB
        a = self.object_pos(env, cube_a.root_body)
        b = self.object_pos(env, cube_b.root_body)
        # cubeA's centre height when it rests on cubeB (sizes are half extents).
        rest_z = b[2] + cube_b.size[2] + cube_a.size[2]
        if self.is_grasped(env, cube_a):
            return self.carry(env, a, b, rest_z)
        if self.rests_on(a, b, cube_b.size[2]):
            return self.retreat(env, a)
        return self.approach(env, cube_a.root_body, obstacle=b)

    @staticmethod
    def rests_on(a: np.ndarray, b: np.ndarray, b_half_size: float) -> bool:
        """cubeA's centre is over cubeB's top face and above it."""
        return bool(np.linalg.norm(a[:2] - b[:2]) < b_half_size and a[2] > b[2] + b_half_size)

    def carry(self, env: SimRobot, a: np.ndarray, b: np.ndarray, rest_z: float) -> np.ndarray:
        """Holding cubeA: raise it clear of cubeB, move it over, lower it, let go on contact."""
        eef = self.eef_pos(env)
        grasp_offset = eef - a  # targets are for cubeA; the eef keeps this offset from it
        rotation = self.level_rotation(env)
        low = a[2] < rest_z + SIDEWAYS_CLEARANCE_M
        horizontal = np.linalg.norm(a[:2] - b[:2])
        if horizontal > (PLACE_DESCENT_TOLERANCE_M if low else PLACE_TOLERANCE_M):
            # Carry over at a safe height; too low to pass over cubeB: rise straight up first.
            target = np.append(a[:2] if low else b[:2], rest_z + CARRY_CLEARANCE_M)
            return self.action(self.translate_toward(env, target + grasp_offset), rotation,
                               GRIPPER_CLOSE)
        if (env.raw.check_contact(env.raw.cubeA, env.raw.cubeB)
                or a[2] < rest_z + RELEASE_HEIGHT_M):
            return self.action(self.translate_toward(env, eef), rotation, GRIPPER_OPEN)
        target = np.append(b[:2], rest_z - PRESS_DEPTH_M)
        return self.action(self.translate_toward(env, target + grasp_offset), rotation,
                           GRIPPER_CLOSE)

    def retreat(self, env: SimRobot, a: np.ndarray) -> np.ndarray:
        """cubeA rests on cubeB: open fully in place, then rise away from it."""
        eef = self.eef_pos(env)
        target = eef.copy()
        if self.gripper_opening(env) > READY_OPENING_M:
            target[2] = a[2] + RETREAT_HEIGHT_M
        return self.action(self.translate_toward(env, target), self.level_rotation(env),
                           GRIPPER_OPEN)
