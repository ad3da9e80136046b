"""NutAssemblySquare: grasp the square nut by its handle and drop it over the square peg.

Every step the expert reads which situation it is in from the simulator (nut threaded on the peg,
nut held, gripper closed on nothing, ...) and acts on it; nothing about earlier steps is remembered.
Approaches are funnels rather than waypoints: the allowed height above the handle (or the peg)
shrinks with the horizontal error, so the gripper settles in as it lines up and backs off when it
is knocked away, without a plan to keep track of.
"""
from __future__ import annotations

import numpy as np

from firework_sim.experts.base import GRIPPER_CLOSE, GRIPPER_OPEN, ScriptedExpert
from firework_sim.robot_env import SimRobot

# Nut geometry (robosuite square-nut.xml): the handle lies along the nut's local +x axis.
NUT_HALF_THICKNESS_M = 0.01
PEG_HALF_HEIGHT_M = 0.1        # the square peg is a box of half height 0.1 around its body origin
# The nut's hole fits over the peg with ~7 mm to spare on each side when their edges are parallel.
PEG_CAPTURE_M = 0.012          # nut centre this close to the peg axis and below its top: threaded

# Grasping. Open fingers over the handle centre (54 mm out) would hit the nut's corners.
GRASP_OFFSET_M = 0.066         # nut centre -> grasp point along the handle
HOVER_ABOVE_HANDLE_M = 0.06    # eef height above the handle while far from it
# The finger pads span 4 mm below to 12 mm above the eef site and the finger tips reach 11 mm
# below it: with the eef at the handle centre the tips just reach the table, as low as the pads can
# cover the 20 mm thick handle, which leaves the most room for a handle height misjudged upward.
GRASP_ABOVE_HANDLE_M = 0.0     # eef height above the handle centre when closing the fingers
# Horizontal error allowed when closing: along the handle the fingers have ~11 mm before they hit
# the nut or slip off the handle's end; across it, open fingers clear the handle by ~24 mm.
GRASP_ALONG_TOLERANCE_M = 0.01
GRASP_ACROSS_TOLERANCE_M = 0.02
GRASP_FUNNEL_M = 0.03          # allowed height above the grasp point per tolerance of error
GRASP_Z_TOLERANCE_M = 0.01     # eef this close above the grasp height: close the fingers
GRASP_YAW_TOLERANCE_RAD = 0.2  # fingers-handle yaw error allowed before descending
FINGERS_OPEN_M = 0.07          # finger opening above which the gripper counts as open
FINGERS_EMPTY_M = 0.02         # the handle is 32 mm wide: closing below this means it was missed
FINGER_SPEED_EPS_M_S = 0.005   # finger opening rate below which the fingers count as still
FAR_MISALIGNMENT = 2.5         # low and this many tolerances off: rise before moving sideways

# Placing.
CARRY_CLEARANCE_M = 0.03       # nut bottom above the peg top while far from it
PLACE_XY_TOLERANCE_M = 0.004   # nut-peg horizontal error allowed when lowering onto the peg
PLACE_FUNNEL_SLOPE = 2.0       # allowed nut height above the peg top per metre of error beyond it
PLACE_YAW_TOLERANCE_RAD = 0.15  # nut-peg yaw error allowed when lowering onto the peg
# Tilted more than this the nut jams on the peg (at 20 deg its 20 mm thick ring still clears it).
MAX_NUT_TILT_RAD = 0.3
RELEASE_DEPTH_M = 0.04         # let go once the nut is this far down the peg
# A nut hanging askew is dropped to be grasped again, but never onto the peg: leaning on it, the
# nut lands askew again (a policy that jams it there left the expert re-grasping it in a loop).
# Lift it this far above the peg top and carry it toward the robot until its centre is this far
# from the peg axis: the wrist, reaching from the robot's side, then never hits the peg.
REGRASP_LIFT_M = 0.08
REGRASP_AWAY_FROM_PEG_M = 0.15   # > handle grasp point (66 mm) + fingers + peg half width
RETREAT_HEIGHT_M = 0.08        # eef rise above the peg top after letting go

# A nut standing on its rim (tilted more than this) is pushed over at the top of its rim.
STANDING_TILT_RAD = 1.2
TIP_PUSH_ABOVE_CENTRE_M = 0.025  # eef height above the nut centre (the rim reaches 44 mm up)
TIP_STANDOFF_M = 0.06          # push from this far behind the nut's face to this far beyond it
TIP_LINE_TOLERANCE_M = 0.02    # eef this close to the push line: push
TIP_DIRECTION_PREFERENCE = np.array([1.0, 0.3])  # push away from the robot, ties broken by +y

# Wrist yaw (heading of the fingers' closing axis). Joint 7 sits mid-range with the closing axis
# ~135 deg from world +x (it points along +y, 90 deg, at reset; below ~-25 deg the joint is at its
# limit); yaw targets stay within WRIST_RANGE of that, and turns go the way round that avoids the
# joint's dead zone behind it.
WRIST_CENTER_YAW_RAD = np.deg2rad(135)
WRIST_RANGE_RAD = np.deg2rad(120)
MAX_TURN_STEP_RAD = np.pi / 2  # rotate toward intermediate headings: a half-turn error is ambiguous

# Integrate the position error only this close to the target: the base integral unwinds slowly,
# and what it gathers on a long move would push the eef past a precise target like the peg.
INTEGRAL_ZONE_M = 0.02
# Aim at where the eef is heading this much later rather than where it is: damps the overshoot
# of fast moves (the OSC lags its goal) so the nut stops over the peg.
DAMPING_LOOKAHEAD_S = 0.05
MAX_TARGET_HEIGHT_M = 0.3      # above the table top: a nut stuck on the hand must not drag it up
# A translation command at least this large (action units) that moves the eef slower than this
# toward its target, with a joint at its limit, means the arm is pinned.
PINNED_COMMAND = 0.5
PINNED_SPEED_M_S = 0.05
JOINT_LIMIT_MARGIN_RAD = 0.03


def wrap_angle(angle: float) -> float:
    return float((angle + np.pi) % (2 * np.pi) - np.pi)


def yaw_of(rotation: np.ndarray) -> float:
    """Heading of a frame's x axis in the world xy plane."""
    return float(np.arctan2(rotation[1, 0], rotation[0, 0]))


def wrist_offset(closing_yaw: float) -> float:
    """Signed angle of a closing-axis heading from the middle of the wrist's range."""
    return wrap_angle(closing_yaw - WRIST_CENTER_YAW_RAD)


def is_level(rotation: np.ndarray, max_tilt: float = MAX_NUT_TILT_RAD) -> bool:
    """Whether a nut lies within `max_tilt` of flat; upside down is as good as upright."""
    return bool(abs(rotation[2, 2]) > np.cos(max_tilt))


def pick_heading(current_yaw: float, candidates: list[float]) -> float:
    """Of equivalent closing-axis headings, the nearest one the wrist can reach comfortably."""
    reachable = [c for c in candidates if abs(wrist_offset(c)) <= WRIST_RANGE_RAD]
    if not reachable:
        return min(candidates, key=lambda c: abs(wrist_offset(c)))
    return min(reachable, key=lambda c: abs(wrap_angle(c - current_yaw)))


def top_down_rotation(closing_yaw: float) -> np.ndarray:
    """Gripper pointing straight down, fingers closing along the horizontal direction `closing_yaw`."""
    x = np.array([np.cos(closing_yaw), np.sin(closing_yaw), 0.0])
    z = np.array([0.0, 0.0, -1.0])
    return np.column_stack([x, np.cross(z, x), z])


class NutAssemblySquareExpert(ScriptedExpert):
    def act(self, env: SimRobot) -> np.ndarray:
        raw = env.raw
        nut_model = raw.nuts[raw.nut_id]
        nut = self.object_pos(env, nut_model.root_body)
        nut_rot = self.body_rotation(env, nut_model.root_body)
        # The peg is perceived like any object, so a misjudged scene is misjudged consistently.
        peg = self.object_pos(env, "peg1")
        peg_top = peg[2] + PEG_HALF_HEIGHT_M
        grasped = raw._check_grasp(gripper=raw.robots[0].gripper["right"], object_geoms=nut_model)
        around_peg = (np.linalg.norm(nut[:2] - peg[:2]) < PEG_CAPTURE_M
                      and nut[2] < peg_top - NUT_HALF_THICKNESS_M)
        # A nut tilted on the peg is jammed, not threaded: it has to be picked up again.
        threaded = around_peg and is_level(nut_rot)
        if threaded and (not grasped or nut[2] < peg_top - RELEASE_DEPTH_M):
            # The peg guides the nut down: let go, and once the fingers are off it, get them out
            # of the way (rising while still gripping would pull the nut back up).
            eef = self.eef_pos(env)
            target = eef if grasped else np.array([eef[0], eef[1], peg_top + RETREAT_HEIGHT_M])
            return self._command(env, target, None, GRIPPER_OPEN)
        # Tilt of the nut relative to the hand: unlike a tilt of the hand, the hand cannot undo it.
        held_tilt = np.arccos(min(1.0, abs(nut_rot[:, 2] @ self.eef_rotation(env)[:, 2])))
        if grasped and held_tilt > MAX_NUT_TILT_RAD:
            # It hangs askew from the handle and would jam on the peg: drop it away from the peg,
            # grasp it again.
            if np.linalg.norm(nut[:2] - peg[:2]) < REGRASP_AWAY_FROM_PEG_M:
                return self._carry_off_peg(env, nut, peg, peg_top)
            if not self._nut_supported(env, nut_model):
                return self._command(env, self.eef_pos(env), None, GRIPPER_OPEN)
        if grasped:
            return self._place(env, nut, nut_rot, peg, peg_top)
        if not is_level(nut_rot, STANDING_TILT_RAD) and not around_peg:
            return self._tip_over(env, nut, nut_rot)
        return self._grasp(env, nut, nut_rot)

    def _carry_off_peg(self, env: SimRobot, nut: np.ndarray, peg: np.ndarray, peg_top: float) -> np.ndarray:
        """Holding an askew nut near the peg: up clear of the peg, then toward the robot (-x, the
        side the arm reaches from) until it is far enough from the peg to be dropped."""
        eef = self.eef_pos(env)
        level = self._turn_to(env, yaw_of(self.eef_rotation(env)))   # keep the hand pointing down
        clear_z = peg_top + REGRASP_LIFT_M
        if eef[2] < clear_z - GRASP_Z_TOLERANCE_M:
            return self._command(env, np.array([eef[0], eef[1], clear_z]), level, GRIPPER_CLOSE)
        drop_zone = peg[:2] - np.array([REGRASP_AWAY_FROM_PEG_M + PEG_CAPTURE_M, 0.0])
        return self._command(env, np.array([*(eef[:2] + drop_zone - nut[:2]), clear_z]), level,
                             GRIPPER_CLOSE)

    def _nut_supported(self, env: SimRobot, nut_model) -> bool:
        """Whether the nut touches anything but the gripper (the table, the peg)."""
        sim = env.raw.sim
        nut_geoms = {sim.model.geom_name2id(g) for g in nut_model.contact_geoms}
        hand = {sim.model.geom_name2id(g) for g in env.raw.robots[0].gripper["right"].contact_geoms}
        for contact in sim.data.contact[:sim.data.ncon]:
            pair = {contact.geom1, contact.geom2}
            if pair & nut_geoms and not pair & hand:
                return True
        return False

    def _tip_over(self, env: SimRobot, nut: np.ndarray, nut_rot: np.ndarray) -> np.ndarray:
        """The nut stands on its rim, where its handle cannot be grasped from above: push its top
        over with the closed gripper so that it lies flat."""
        eef = self.eef_pos(env)
        face = nut_rot[:2, 2] / (np.linalg.norm(nut_rot[:2, 2]) + 1e-9)   # horizontal face normal
        push = face if face @ TIP_DIRECTION_PREFERENCE >= 0 else -face     # fixed per nut pose
        push_z = nut[2] + TIP_PUSH_ABOVE_CENTRE_M
        start = np.array([*(nut[:2] - TIP_STANDOFF_M * push), push_z])
        rel = eef[:2] - nut[:2]
        sideways = abs(rel @ np.array([-push[1], push[0]]))
        if sideways < TIP_LINE_TOLERANCE_M and abs(eef[2] - push_z) < TIP_LINE_TOLERANCE_M:
            target = np.array([*(nut[:2] + TIP_STANDOFF_M * push), push_z])   # on the line: push
        elif np.linalg.norm(eef[:2] - start[:2]) > TIP_LINE_TOLERANCE_M:
            target = start + [0.0, 0.0, HOVER_ABOVE_HANDLE_M]   # go round above the nut
        else:
            target = start
        level = self._turn_to(env, yaw_of(self.eef_rotation(env)))
        return self._command(env, target, level, GRIPPER_CLOSE)

    # --- grasping the handle --------------------------------------------------------------------
    def _grasp(self, env: SimRobot, nut: np.ndarray, nut_rot: np.ndarray) -> np.ndarray:
        eef = self.eef_pos(env)
        grasp = nut + nut_rot @ np.array([GRASP_OFFSET_M, 0.0, 0.0])
        grasp[2] += GRASP_ABOVE_HANDLE_M
        # Fingers close across the handle, i.e. along the nut's y axis; either sign works.
        nut_yaw = yaw_of(nut_rot)
        closing_yaw = pick_heading(yaw_of(self.eef_rotation(env)),
                                   [nut_yaw + np.pi / 2, nut_yaw - np.pi / 2])
        rotation = self._turn_to(env, closing_yaw)
        yaw_error = abs(wrap_angle(closing_yaw - yaw_of(self.eef_rotation(env))))
        along, across = (nut_rot[:2, :2].T @ (eef[:2] - grasp[:2]))
        # Horizontal error in units of what the fingers tolerate (1: just about graspable).
        misalignment = max(abs(along) / GRASP_ALONG_TOLERANCE_M, abs(across) / GRASP_ACROSS_TOLERANCE_M)
        hover_z = grasp[2] + HOVER_ABOVE_HANDLE_M
        opening = self.gripper_opening(env)
        closing = self._finger_speed(env) < -FINGER_SPEED_EPS_M_S
        # Closed on nothing, or stopped part-way without holding the nut (on its edge, or left
        # half-open): open fully above the handle, then retry.
        reopen = opening < FINGERS_EMPTY_M or (opening < FINGERS_OPEN_M and not closing)

        if misalignment > FAR_MISALIGNMENT and eef[2] < hover_z - HOVER_ABOVE_HANDLE_M / 2:
            # Misaligned and low: rise before moving sideways so the fingers do not hit the nut.
            target = np.array([*eef[:2], hover_z])
        elif reopen or yaw_error > GRASP_YAW_TOLERANCE_RAD:
            target = np.array([*grasp[:2], hover_z])
        else:
            height = GRASP_FUNNEL_M * max(0.0, misalignment - 1.0)
            target = np.array([*grasp[:2], grasp[2] + min(HOVER_ABOVE_HANDLE_M, height)])
        # Close once down at the handle, and keep closing once started; the table may stop the
        # eef short of a target that was misjudged too low, so only "low enough" is required.
        at_depth = eef[2] < grasp[2] + GRASP_Z_TOLERANCE_M and misalignment < 1.0
        gripper = GRIPPER_CLOSE if not reopen and (at_depth or closing) else GRIPPER_OPEN
        return self._command(env, target, rotation, gripper)

    def _finger_speed(self, env: SimRobot) -> float:
        """Rate (m/s) at which the fingers move apart; negative while they close."""
        robot = env.raw.robots[0]
        qvel = env.raw.sim.data.qvel[robot._ref_gripper_joint_vel_indexes["right"]]
        return float(qvel[0] - qvel[1])

    # --- carrying the nut over the peg ----------------------------------------------------------
    def _place(self, env: SimRobot, nut: np.ndarray, nut_rot: np.ndarray, peg: np.ndarray,
               peg_top: float) -> np.ndarray:
        eef = self.eef_pos(env)
        gripper_yaw = yaw_of(self.eef_rotation(env))
        # The square hole fits in 4 headings; the handle must not end up pointing away from the
        # robot (k == 0): the arm would have to reach past the peg, beyond its workspace.
        nut_yaw = yaw_of(nut_rot)
        headings = [gripper_yaw + wrap_angle(k * np.pi / 2 - nut_yaw) for k in range(1, 4)]
        turn = pick_heading(gripper_yaw, headings) - gripper_yaw
        rotation = self._turn_to(env, gripper_yaw + turn)
        offset = peg[:2] - nut[:2]
        error = float(np.linalg.norm(offset))
        nut_bottom = nut[2] - NUT_HALF_THICKNESS_M
        lined_up = (error < PLACE_XY_TOLERANCE_M and abs(turn) < PLACE_YAW_TOLERANCE_RAD
                    and is_level(nut_rot))
        on_peg = error < PEG_CAPTURE_M and nut_bottom < peg_top
        if lined_up or (on_peg and is_level(nut_rot)):
            clearance = -RELEASE_DEPTH_M - NUT_HALF_THICKNESS_M   # onto the peg and down it
        elif on_peg or abs(turn) > PLACE_YAW_TOLERANCE_RAD or not is_level(nut_rot):
            # Jammed on the peg, or not square to it yet: lift it clear and try again.
            clearance = CARRY_CLEARANCE_M
        else:
            clearance = min(CARRY_CLEARANCE_M,
                            PLACE_FUNNEL_SLOPE * (error - PLACE_XY_TOLERANCE_M))
        target = eef + np.array([offset[0], offset[1], peg_top + clearance - nut_bottom])
        if nut_bottom < peg_top + CARRY_CLEARANCE_M / 3 and error > PEG_CAPTURE_M:
            # Too low to pass over the peg: rise first.
            target[:2] = eef[:2]
        return self._command(env, target, rotation, GRIPPER_CLOSE)

    # --- control ----------------------------------------------------------------------------------
    def _turn_to(self, env: SimRobot, closing_yaw: float) -> np.ndarray:
        """Rotation command toward a top-down grasp with the given closing-axis heading."""
        current = yaw_of(self.eef_rotation(env))
        # Measure both headings from the wrist centre so the turn never crosses the dead zone.
        turn = wrist_offset(closing_yaw) - wrist_offset(current)
        step = float(np.clip(turn, -MAX_TURN_STEP_RAD, MAX_TURN_STEP_RAD))
        return self.rotate_toward(env, top_down_rotation(current + step))

    def _command(self, env: SimRobot, target, rotation: np.ndarray | None,
                 gripper: float) -> np.ndarray:
        """Action toward `target`; the orientation is given up while the arm is pinned (at a
        joint limit the OSC cannot both turn the hand and move it, and would stay put)."""
        target = np.array(target, dtype=np.float64)
        target[2] = min(target[2], env.raw.table_offset[2] + MAX_TARGET_HEIGHT_M)
        translation = self._move_to(env, target)
        command = np.linalg.norm(translation)
        progress = self._eef_velocity(env) @ translation / max(command, 1e-9)
        pinned = (command > PINNED_COMMAND and progress < PINNED_SPEED_M_S
                  and self._at_joint_limit(env))
        return self.action(translation, None if pinned else rotation, gripper)

    def _at_joint_limit(self, env: SimRobot) -> bool:
        robot, model = env.raw.robots[0], env.raw.sim.model
        q = env.raw.sim.data.qpos[robot._ref_joint_pos_indexes]
        low, high = model.jnt_range[[model.joint_name2id(n) for n in robot.robot_joints]].T
        return bool(np.any((q < low + JOINT_LIMIT_MARGIN_RAD) | (q > high - JOINT_LIMIT_MARGIN_RAD)))

    def _move_to(self, env: SimRobot, target) -> np.ndarray:
        """PI position control with conditional integration and velocity damping."""
        target = np.asarray(target, dtype=np.float64)
        far = np.abs(target - self.eef_pos(env)) > INTEGRAL_ZONE_M
        self._integral[far] = 0.0
        return self.translate_toward(env, target - DAMPING_LOOKAHEAD_S * self._eef_velocity(env))

    def _eef_velocity(self, env: SimRobot) -> np.ndarray:
        sim = env.raw.sim
        site = sim.model.site_id2name(env.raw.robots[0].eef_site_id["right"])
        return np.array(sim.data.get_site_xvelp(site))
