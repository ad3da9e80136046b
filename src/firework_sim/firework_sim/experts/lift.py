"""Lift: grasp the cube from above and raise it.

`TopDownGraspExpert` is the grasp behaviour shared with Stack: hover above a box, yaw the fingers
onto two opposite faces, descend, close; re-open and retry whenever the grasp is lost. Every
decision is a function of the current simulator state. The eef height relative to the object and
the finger opening and velocity stand in for the "phase" a planner would remember, so the expert
can start at reset or take over from whatever state a failing policy left.
"""
from __future__ import annotations

import numpy as np

from firework_sim.experts.base import GRIPPER_CLOSE, GRIPPER_OPEN, ScriptedExpert
from firework_sim.robot_env import SimRobot

HOVER_HEIGHT_M = 0.06            # eef above the grasp point before descending (fingers clear)
COMMITTED_HEIGHT_M = 0.035       # eef lower than this above the grasp point is descending (looser
                                 #   alignment) and low (must not move sideways far from the box)
BRACKET_RADIUS_M = 0.03          # low eef this close to the box: open fingers straddle it
ALIGN_TOLERANCE_M = 0.015        # horizontal eef-box error allowed to start descending
DESCENT_TOLERANCE_M = 0.02       # ...and to keep descending / closing
YAW_TOLERANCE_RAD = 0.4          # finger yaw error allowed to descend: a box 23 deg off still fits
GRASP_HEIGHT_TOLERANCE_M = 0.01  # |eef z - grasp z| at which the fingers close,
STALL_BAND_M = 0.02              # ...or eef this little above it and no longer descending (a
STALL_SPEED_M_S = 0.005          #   finger resting on the box top holds it ~0.03 m above)
READY_OPENING_M = 0.065          # finger opening needed to descend over a box (<= 0.044 m wide)
CLOSED_ON_NOTHING_M = 0.008      # opening below which fingers that are not grasping hold nothing
FINGER_SPEED_M_S = 0.02          # finger opening speed that counts as moving (full: ~0.13 m/s)
OBSTACLE_RADIUS_M = 0.12         # an obstacle this close to the box decides the finger axis
JOINT_MARGIN_RAD = 0.2           # keep the hand-spinning joint this far from its limits
JOINT_LIMIT_CONTACT_RAD = 0.02   # an arm joint this close to a limit is on it
LEAD_TIME_S = 0.05               # damping: aim short of the target by the eef's travel in this time
INTEGRATE_WITHIN_M = 0.02        # integrate position error only this close to the target
LIFT_HEIGHT_M = 0.10             # Lift: cube centre target above the table (success needs 0.04)


def gripper_yaw(rotation: np.ndarray) -> float:
    """Yaw (world z) of the finger closing axis, the eef y axis."""
    return float(np.arctan2(rotation[1, 1], rotation[0, 1]))


def face_yaw(rotation: np.ndarray) -> float:
    """Yaw of a horizontal face normal of a box, whichever of its axes points up (it may lie tipped
    over)."""
    up = int(np.argmax(np.abs(rotation[2, :])))
    side = rotation[:, (up + 1) % 3]
    return float(np.arctan2(side[1], side[0]))


def wrap_angle(angle: float) -> float:
    return float((angle + np.pi) % (2 * np.pi) - np.pi)


def top_down_rotation(yaw: float) -> np.ndarray:
    """Eef rotation pointing straight down, closing axis at `yaw` (0 is about the reset pose)."""
    c, s = np.cos(yaw), np.sin(yaw)
    return np.array([[-s, c, 0.0], [c, s, 0.0], [0.0, 0.0, -1.0]])


def arm_joints(env: SimRobot) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Arm joint positions, lower and upper limits, and world rotation axes (one per row)."""
    sim = env.raw.sim
    ids = [sim.model.joint_name2id(name) for name in env.raw.robots[0].robot_model.joints]
    low, high = sim.model.jnt_range[ids].T
    return (np.array(sim.data.qpos[sim.model.jnt_qposadr[ids]]), low, high,
            np.array(sim.data.xaxis[ids]))


class TopDownGraspExpert(ScriptedExpert):
    """Grasps a box from above. Subclasses decide what to do once it is held (`act`)."""

    def translate_toward(self, env: SimRobot, target: np.ndarray) -> np.ndarray:
        """The base PI control with damping and conditional integration. It aims short of the
        target by the distance the eef covers in LEAD_TIME_S, so fast moves brake in time instead
        of overshooting; and it integrates only near the target: the integral is there to remove
        the arm's steady-state sag, and integrating long saturated moves winds it up."""
        aim = np.asarray(target, dtype=np.float64) - LEAD_TIME_S * self.eef_velocity(env)
        far = np.abs(aim - self.eef_pos(env)) > INTEGRATE_WITHIN_M
        before = self._integral.copy()
        cmd = super().translate_toward(env, aim)
        self._integral[far] = before[far]
        return cmd

    def eef_velocity(self, env: SimRobot) -> np.ndarray:
        sim = env.raw.sim
        site = sim.model.site_id2name(env.raw.robots[0].eef_site_id["right"])
        return np.array(sim.data.get_site_xvelp(site))

    def grasp_yaw(self, env: SimRobot, body: str, obstacle: np.ndarray | None) -> float:
        """Finger yaw onto two opposite faces: the candidate (every 90 deg) the last joint can reach
        with the least turning, preferring a closing axis across the direction to a nearby obstacle
        so no finger lands on it."""
        current = gripper_yaw(self.eef_rotation(env))
        base = face_yaw(self.body_rotation(env, body))
        to_obstacle = None
        if obstacle is not None:
            delta = (obstacle - self.object_pos(env, body))[:2]
            if np.linalg.norm(delta) < OBSTACLE_RADIUS_M:
                to_obstacle = delta / np.linalg.norm(delta)
        low, high = self.yaw_room(env)
        best, best_cost = current, np.inf
        for k in range(-2, 3):  # turns within +-pi: rotate_toward takes the short way round
            turn = wrap_angle(base - current) + k * np.pi / 2
            if not (low <= turn <= high and abs(turn) < np.pi):
                continue
            yaw = current + turn
            cost = abs(turn)
            if to_obstacle is not None:  # |cos| between the closing axis and the obstacle direction
                cost += abs(np.cos(yaw) * to_obstacle[0] + np.sin(yaw) * to_obstacle[1])
            if cost < best_cost:
                best, best_cost = yaw, cost
        return float(best)

    def yaw_room(self, env: SimRobot) -> tuple[float, float]:
        """How far (rad) the fingers can turn about world z, each way, before the last arm joint
        (which spins the hand about its approach axis) comes within a margin of a limit."""
        q, low, high, axes = arm_joints(env)
        low, high = low[-1] + JOINT_MARGIN_RAD - q[-1], high[-1] - JOINT_MARGIN_RAD - q[-1]
        # Yaw turns the joint forward if its axis points up, backward if down (the usual case).
        return (low, high) if axes[-1][2] >= 0 else (-high, -low)

    def level_rotation(self, env: SimRobot) -> np.ndarray:
        """Rotation command that points the fingers straight down again, keeping their yaw: a held
        object stays level and the arm does not drift in orientation."""
        return self.rotate_toward(env, top_down_rotation(gripper_yaw(self.eef_rotation(env))))

    def rotate_toward(self, env: SimRobot, target_rotation: np.ndarray) -> np.ndarray:
        """The base P control of orientation, minus any part that would turn an arm joint that sits
        on a limit further into it: a bad policy can leave the wrist flipped against a limit, where
        chasing the orientation stalls the arm, translation included."""
        command = super().rotate_toward(env, target_rotation)
        q, low, high, axes = arm_joints(env)
        # +1: on the upper limit, -1: on the lower one, 0: free.
        into = np.where(high - q < JOINT_LIMIT_CONTACT_RAD, 1.0, 0.0)
        into[q - low < JOINT_LIMIT_CONTACT_RAD] = -1.0
        for side, axis in zip(into, axes):
            if side * float(command @ axis) > 0:
                command = command - float(command @ axis) * axis
        return command

    def finger_speed(self, env: SimRobot) -> float:
        """Rate of change of the finger opening (m/s); > 0 opening, < 0 closing."""
        qvel = env.raw.sim.data.qvel[env.raw.robots[0]._ref_gripper_joint_vel_indexes["right"]]
        return float(qvel[0] - qvel[1])

    def is_grasped(self, env: SimRobot, obj) -> bool:
        return bool(env.raw._check_grasp(gripper=env.raw.robots[0].gripper, object_geoms=obj))

    def approach(self, env: SimRobot, body: str, obstacle: np.ndarray | None = None) -> np.ndarray:
        """Action that brings an open gripper around the box `body` and closes it there."""
        target_pos = self.object_pos(env, body)
        eef = self.eef_pos(env)
        opening = self.gripper_opening(env)
        yaw = self.grasp_yaw(env, body, obstacle)
        rotation = self.rotate_toward(env, top_down_rotation(yaw))
        hover = np.append(target_pos[:2], target_pos[2] + HOVER_HEIGHT_M)
        committed = eef[2] < target_pos[2] + COMMITTED_HEIGHT_M
        horizontal = np.linalg.norm(eef[:2] - target_pos[:2])
        yaw_error = abs(wrap_angle(yaw - gripper_yaw(self.eef_rotation(env))))
        aligned = (horizontal < (DESCENT_TOLERANCE_M if committed else ALIGN_TOLERANCE_M)
                   and yaw_error < YAW_TOLERANCE_RAD)
        if not aligned:
            if committed and horizontal > BRACKET_RADIUS_M:
                # Low beside the box: rise straight up so the fingers do not sweep it away. Closer
                # in, the open fingers straddle it and may re-centre on the way up.
                hover[:2] = eef[:2]
            return self.action(self.translate_toward(env, hover), rotation, GRIPPER_OPEN)
        height = eef[2] - target_pos[2]
        # A tilted hand stops on the table short of the grasp height: close where it stalled.
        stalled = height < STALL_BAND_M and abs(self.eef_velocity(env)[2]) < STALL_SPEED_M_S
        at_grasp_height = abs(height) < GRASP_HEIGHT_TOLERANCE_M or stalled
        reopening = self.finger_speed(env) > FINGER_SPEED_M_S and opening < READY_OPENING_M
        if committed and at_grasp_height and opening > CLOSED_ON_NOTHING_M and not reopening:
            return self.action(self.translate_toward(env, target_pos), rotation, GRIPPER_CLOSE)
        if opening < READY_OPENING_M:
            # Fingers closed on nothing or not yet open: open above the box, then descend again.
            return self.action(self.translate_toward(env, hover), rotation, GRIPPER_OPEN)
        return self.action(self.translate_toward(env, target_pos), rotation, GRIPPER_OPEN)


class LiftExpert(TopDownGraspExpert):
    def act(self, env: SimRobot) -> np.ndarray:
        cube = env.raw.cube
        if not self.is_grasped(env, cube):
            return self.approach(env, cube.root_body)
        eef = self.eef_pos(env)
        table_z = env.raw.model.mujoco_arena.table_offset[2]
        # Raise the eef by what the cube still lacks.
        rise = table_z + LIFT_HEIGHT_M - self.object_pos(env, cube.root_body)[2]
        return self.action(self.translate_toward(env, eef + np.array([0.0, 0.0, rise])),
                           self.level_rotation(env), GRIPPER_CLOSE)
