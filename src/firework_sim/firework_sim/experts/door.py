"""Door: grasp the lever, turn it to unlatch, then pull the door open.

Every step is decided from the current state: whether the fingers are closed on the lever, the
latch (lever) and hinge angles, and the gripper pose relative to the lever. The grasp pose is
expressed in the latch body's frame, so it follows the lever wherever a previous policy left it
(half turned, door partly open), and turning or pulling is "the grasp pose carried along by the
latch or hinge joint", computed from the joints' current anchors and axes.
"""
from __future__ import annotations

import numpy as np

from firework_sim.experts.base import (GRIPPER_CLOSE, GRIPPER_OPEN, OSC_MAX_ROTATION_RAD,
                                       ScriptedExpert, rotation_matrix_to_axis_angle)
from firework_sim.robot_env import SimRobot

# Grasp orientation in the latch body's frame (columns: eef x, y, z). The gripper points into the
# door along the latch axis (latch +y), so turning the lever is a pure wrist roll; the fingers close
# along eef x, i.e. vertically across the lever's 4 cm height. The palm stays ~5 cm off the panel.
GRASP_ROTATION_IN_LATCH = np.array([[0.0, -1.0, 0.0],
                                    [0.0, 0.0, 1.0],
                                    [-1.0, 0.0, 0.0]])
# The gripper pointing down, as at reset: where a flipped wrist is sent to unwind (see below).
DOWN_ROTATION = np.array([[0.0, 1.0, 0.0],
                          [1.0, 0.0, 0.0],
                          [0.0, 0.0, -1.0]])

STANDOFF_M = 0.08             # pre-grasp distance from the lever, out from the door (robot side)
CLEAR_STANDOFF_M = 0.15       # distance kept from the lever while the wrist still turns a lot
TURNING_RAD = 0.5             # orientation error above which the wrist counts as still turning
ALIGN_TOLERANCE_M = 0.012     # lateral misalignment allowed while moving in toward the lever
ORIENT_TOLERANCE_RAD = 0.25   # orientation error allowed while moving in toward the lever
GRASP_TOLERANCE_M = 0.015     # eef distance from the grasp point at which the fingers close
CLOSED_ON_NOTHING_M = 0.01    # finger opening below which the gripper holds nothing
HELD_MAX_OPENING_M = 0.06     # finger opening below which the fingers are on the 4 cm lever
HOLD_TOLERANCE_M = 0.03       # eef distance from the grasp point within which the lever is held

# The latch tip clears the frame pole once the lever is turned ~1.16 rad either way. Turning it up
# (negative latch angle) rolls Panda joint 7 away from its limit; turning it down runs into it.
TURN_SIGN = -1.0
LATCH_GOAL_RAD = 1.35         # lever turn to aim for (magnitude; joint limit 1.57)
UNLATCHED_RAD = 1.2           # lever turn from which pulling starts (magnitude)
TURN_STEP_RAD = 0.35          # lever turn commanded ahead of the current angle, per step
DOOR_FREE_RAD = 0.2           # hinge angle past which the latch tip has cleared the frame pole
HINGE_GOAL_RAD = 0.38         # door opening to aim for (success at 0.3, joint limit 0.4)
PULL_STEP_RAD = 0.15          # door opening commanded ahead of the current angle, per step

# From some postures (typically left by a noisy policy that pushed on the lever), turning toward
# the grasp orientation flips the wrist: Panda joint 5 swings past this and joint 6 pins at its
# limit short of the lever. Pointing the gripper down first lets the posture control unwind it.
WRIST_FLIPPED_RAD = 1.0
PANDA_JOINT5 = 4              # index of joint 5 among the arm joints


def axis_rotation(axis: np.ndarray, angle: float) -> np.ndarray:
    """Rotation matrix for `angle` (rad) about `axis` (Rodrigues)."""
    x, y, z = axis / np.linalg.norm(axis)
    k = np.array([[0.0, -z, y], [z, 0.0, -x], [-y, x, 0.0]])
    return np.eye(3) + np.sin(angle) * k + (1.0 - np.cos(angle)) * (k @ k)


class DoorExpert(ScriptedExpert):
    def act(self, env: SimRobot) -> np.ndarray:
        raw = env.raw
        turned = TURN_SIGN * float(raw.sim.data.qpos[raw.handle_qpos_addr])  # lever turn so far
        hinge = float(raw.sim.data.qpos[raw.hinge_qpos_addr])
        grasp_pos, grasp_rot = self._grasp_pose(env)
        if self._holding(env, grasp_pos):
            if turned < UNLATCHED_RAD and hinge < DOOR_FREE_RAD:
                turn_target, hinge_target = min(turned + TURN_STEP_RAD, LATCH_GOAL_RAD), hinge
            else:
                # Keep the lever turned until the latch tip is past the frame pole, then let it be.
                turn_target = max(turned, LATCH_GOAL_RAD) if hinge < DOOR_FREE_RAD else turned
                hinge_target = min(hinge + PULL_STEP_RAD, HINGE_GOAL_RAD)
            pos, rot = self._carry_grasp(env, grasp_pos, grasp_rot,
                                         TURN_SIGN * (turn_target - turned), hinge_target - hinge)
            return self.action(self.translate_toward(env, pos), self._rotate(env, rot),
                               GRIPPER_CLOSE)
        if self._wrist_flipped(env):
            clear = grasp_pos - CLEAR_STANDOFF_M * grasp_rot[:, 2]
            return self.action(self.translate_toward(env, clear), self._rotate(env, DOWN_ROTATION),
                               GRIPPER_OPEN)
        return self._reach(env, grasp_pos, grasp_rot)

    def _reach(self, env: SimRobot, grasp_pos: np.ndarray, grasp_rot: np.ndarray) -> np.ndarray:
        """Not holding the lever: back out, line up in front of it, move in, close."""
        eef = self.eef_pos(env)
        out = -grasp_rot[:, 2]  # away from the door, toward the robot
        offset = eef - grasp_pos
        depth = float(offset @ out)
        lateral = float(np.linalg.norm(offset - depth * out))
        rotation = self._rotate(env, grasp_rot)
        rot_error = self._rotation_error(env, grasp_rot)
        if np.linalg.norm(offset) < GRASP_TOLERANCE_M:
            if self.gripper_opening(env) < CLOSED_ON_NOTHING_M:
                # Closed beside the lever: open and back out to try again.
                target = grasp_pos + STANDOFF_M * out
                return self.action(self.translate_toward(env, target), rotation, GRIPPER_OPEN)
            return self.action(self.translate_toward(env, grasp_pos), rotation, GRIPPER_CLOSE)
        lined_up = lateral < ALIGN_TOLERANCE_M and rot_error < ORIENT_TOLERANCE_RAD
        if lined_up and depth > -GRASP_TOLERANCE_M:
            return self.action(self.translate_toward(env, grasp_pos), rotation, GRIPPER_OPEN)
        if depth < 0.5 * STANDOFF_M:
            # Askew close to the door: back straight out so the fingers come off the lever.
            target = eef + (STANDOFF_M - depth) * out
            return self.action(self.translate_toward(env, target), rotation, GRIPPER_OPEN)
        # Keep clear while the wrist still turns, so the sweeping fingers cannot snag the lever.
        standoff = CLEAR_STANDOFF_M if rot_error > TURNING_RAD else STANDOFF_M
        target = grasp_pos + standoff * out
        return self.action(self.translate_toward(env, target), rotation, GRIPPER_OPEN)

    def _rotation_error(self, env: SimRobot, target: np.ndarray) -> float:
        """Angle (rad) between the gripper orientation and `target`."""
        return float(np.linalg.norm(
            rotation_matrix_to_axis_angle(target @ self.eef_rotation(env).T)))

    def _rotate(self, env: SimRobot, target: np.ndarray) -> np.ndarray:
        """P control of the orientation like `rotate_toward`, but a large command is scaled down as
        a whole instead of clipped per component, so the wrist turns about the true error axis."""
        error = rotation_matrix_to_axis_angle(target @ self.eef_rotation(env).T)
        cmd = self.cfg.rotation_gain * error / OSC_MAX_ROTATION_RAD
        return cmd / max(1.0, float(np.max(np.abs(cmd))))

    @staticmethod
    def _wrist_flipped(env: SimRobot) -> bool:
        joints = env.raw.robots[0]._ref_joint_pos_indexes
        return float(env.raw.sim.data.qpos[joints[PANDA_JOINT5]]) > WRIST_FLIPPED_RAD

    def _holding(self, env: SimRobot, grasp_pos: np.ndarray) -> bool:
        """Fingers closed on the lever. Judged from geometry rather than contacts: the finger pads
        lose contact for single steps while the lever turns inside the grip."""
        near = np.linalg.norm(self.eef_pos(env) - grasp_pos) < HOLD_TOLERANCE_M
        return bool(near) and CLOSED_ON_NOTHING_M < self.gripper_opening(env) < HELD_MAX_OPENING_M

    def _grasp_pose(self, env: SimRobot) -> tuple[np.ndarray, np.ndarray]:
        """Perceived grasp point (the lever's handle site) and the gripper orientation for it."""
        raw = env.raw
        pos = np.array(raw.sim.data.site_xpos[raw.door_handle_site_id]) + self.position_bias
        return pos, self.body_rotation(env, raw.door.latch_body) @ GRASP_ROTATION_IN_LATCH

    def _carry_grasp(self, env: SimRobot, pos: np.ndarray, rot: np.ndarray, latch_delta: float,
                     hinge_delta: float) -> tuple[np.ndarray, np.ndarray]:
        """The grasp pose carried along by turning the latch, then the hinge, by the given angles
        (rad) about their joints' current (perceived) anchors and axes."""
        sim = env.raw.sim
        hinge_joint, latch_joint = env.raw.door.joints[:2]
        for joint, delta in ((latch_joint, latch_delta), (hinge_joint, hinge_delta)):
            jid = sim.model.joint_name2id(joint)
            anchor = np.array(sim.data.xanchor[jid]) + self.position_bias
            turn = axis_rotation(np.array(sim.data.xaxis[jid]), delta)
            pos, rot = anchor + turn @ (pos - anchor), turn @ rot
        return pos, rot
