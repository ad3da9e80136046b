"""PickPlaceCan: pick the can out of bin 1 and put it into its quadrant of bin 2.

Every step the expert looks at where the can is and whether it is held, and picks one of:
  - can held: lift it above the bin walls, carry it over the quadrant, lower it and let go;
  - can resting in its quadrant: rise away (success needs the gripper off the can);
  - otherwise: descend onto the can (upright or lying, the gripper turned to keep the long hand
    off the bin walls) and close; reopen and retry when the fingers close on nothing.
No phase is remembered: the fingers' own velocity supplies the one bit of hysteresis needed
(keep reopening until fully open).
"""
from __future__ import annotations

import numpy as np

from firework_sim.experts.base import GRIPPER_CLOSE, GRIPPER_OPEN, ScriptedExpert, held_in_fingers
from firework_sim.robot_env import SimRobot

# --- can and bin geometry (robosuite PickPlace defaults) ----------------------------------------
CAN_RADIUS_M = 0.025        # can mesh half-width
CAN_HALF_HEIGHT_M = 0.04    # can mesh half-height; the body origin is the can's centre
WALL_HALF_THICKNESS_M = 0.01  # bin walls and bin 2's dividers
WALL_TOP_ABOVE_FLOOR_M = 0.08  # wall tops (z 0.90) above the bin floor top (z 0.82)
FLOOR_HALF_THICKNESS_M = 0.02  # bin floor slab: bin2_pos is its centre (both bins at one height)
# The quadrant centre is at the edge of the Panda's reach (OSC then lags and tilts): aim the can
# this far from the centre toward the robot base, still well inside the quadrant.
PLACE_AIM_OFFSET_M = np.array([-0.03, -0.045])
# Release only with the can centre this far inside the quadrant's walls (beyond its radius).
PLACE_INSIDE_MARGIN_M = 0.01

# --- motion --------------------------------------------------------------------------------------
HOVER_ABOVE_CAN_M = 0.10     # eef height above the can centre when far off to the side
GRASP_BELOW_TOP_M = 0.025    # eef this far below the can's top: upright, high enough for the hand
                             # to clear the wall tops; lying, level with the can's axis
ALIGN_TOL_M = 0.008          # horizontal eef-can error at which the eef goes all the way down
APPROACH_CONE_SLOPE = 4.0    # per metre of extra misalignment, hold this many metres higher
REALIGN_TOL_M = 0.025        # this far off and low: rise straight up first (do not sweep the can)
CLOSE_TOL_M = 0.012          # horizontal error at which open fingers may start closing
KEEP_CLOSING_TOL_M = 0.025   # once closing, keep on unless this far off (the can is in the fingers)
CLOSE_HEIGHT_TOL_M = 0.015   # eef this close above the grasp height to close
CARRY_CLEARANCE_M = 0.06     # can bottom above the wall tops while carrying
CARRY_ALIGN_TOL_M = 0.02     # horizontal can-aim error allowed while lowering into the quadrant
CARRY_REALIGN_TOL_M = 0.035  # beyond this, go back up to carry height before moving sideways
SAFE_Z_BAND_M = 0.03         # "at carry height" means within this of it
RELEASE_HEIGHT_M = 0.045     # let go with the can bottom this high above the bin floor: well
                             # inside the walls (0.08), and reachable with the hand above them
LOWER_TO_HEIGHT_M = 0.015    # aim the can bottom this high, so the release height is passed
HAND_ABOVE_WALLS_M = 0.005   # while placing, keep the hand's bottom this far above the wall tops
RETREAT_ABOVE_CAN_M = 0.12   # eef height above the placed can (success needs the eef >4.3 cm away)

# --- gripper -------------------------------------------------------------------------------------
FULLY_OPEN_M = 0.075         # finger opening (max ~0.08) that counts as open
MISSED_GRASP_M = 0.04        # closed tighter than the can diameter (0.05) without a grasp: missed
REOPENING_SPEED_M_S = 0.01   # finger opening speed that means "still reopening"
JOINT_LIMIT_MARGIN_RAD = 0.4  # arm joints this far inside their limits get full orientation control
# Nominal gripper orientation: pointing down, fingers closing along world y.
DOWN_NOMINAL = np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, -1.0]])

# --- grasp yaw -----------------------------------------------------------------------------------
LYING_TILT_RAD = np.pi / 4   # can axis tilted beyond this: grasp it across its side
MAX_YAW_DEVIATION_RAD = np.radians(40)  # squeezing a lying can this far off square still
                             # fits the fingers (chord 0.05/cos 40 = 0.065 m) and squares it up
YAW_CANDIDATES = 9           # gripper yaws tried within the allowed spread
# Panda gripper footprint around the eef site. Grasping a lying can takes the hand (its bottom
# 2.6 cm above the site) below the bin wall tops, so then the whole hand must be off the walls.
HAND_HALF_LENGTH_M = 0.106   # along the finger axis
HAND_HALF_WIDTH_M = 0.032
HAND_BOTTOM_ABOVE_EEF_M = 0.026
FINGERS_HALF_LENGTH_M = 0.05  # open fingers, along the finger axis
FINGERS_HALF_WIDTH_M = 0.011
WALL_CLEARANCE_M = 0.005     # wanted margin between that footprint and the walls


def _rot_z(angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def _wrap(angle: float) -> float:
    """Angle wrapped into [-pi, pi)."""
    return float((angle + np.pi) % (2.0 * np.pi) - np.pi)


class PickPlaceCanExpert(ScriptedExpert):
    def act(self, env: SimRobot) -> np.ndarray:
        raw = env.raw
        can_model = raw.objects[raw.object_id]
        can = self.object_pos(env, can_model.root_body)
        axis = self.body_rotation(env, can_model.root_body)[:, 2]
        eef = self.eef_pos(env)
        floor_z = raw.bin2_pos[2] + FLOOR_HALF_THICKNESS_M
        # Whole fingers, not just the pads: a can pinched by a finger's side is still in the hand
        # (chasing it as if it were loose would carry it up and away).
        held = held_in_fingers(raw, can_model)
        finger_axis = self.eef_rotation(env)[:, 0]
        current_yaw = float(np.arctan2(-finger_axis[0], finger_axis[1]))  # 0: fingers along y
        if held:
            # The can turns with the hand: keep the yaw (turning toward it would chase itself).
            target, yaw = self._carry(raw, can, axis, eef, floor_z), current_yaw
            gripper = GRIPPER_OPEN if _release(raw, can, axis, floor_z) else GRIPPER_CLOSE
        elif _in_quadrant(raw, can, floor_z):
            target = np.array([eef[0], eef[1], can[2] + RETREAT_ABOVE_CAN_M])
            yaw, gripper = current_yaw, GRIPPER_OPEN
        else:
            target, yaw, gripper = self._pick(env, raw, can, axis, eef)
        # The gripper is symmetric: of yaw and yaw + pi, turn to the nearer one.
        if abs(_wrap(current_yaw - yaw)) > np.pi / 2:
            yaw += np.pi
        # Forcing the gripper vertical can pin a joint at its limit and stall the arm (the quadrant
        # is at the edge of reach; noise can leave the arm stretched or the wrist twisted): near
        # a limit, let the orientation give.
        down = _rot_z(yaw) @ DOWN_NOMINAL
        rotation = self._joint_limit_fraction(env) * self.rotate_toward(env, down)
        return self.action(self.translate_toward(env, target), rotation, gripper)

    # --- phases ----------------------------------------------------------------------------------
    def _pick(self, env: SimRobot, raw, can: np.ndarray, axis: np.ndarray,
              eef: np.ndarray) -> tuple[np.ndarray, float, float]:
        """Eef target, gripper yaw and gripper command for grasping the loose can."""
        grasp = can + np.array([0.0, 0.0, _half_extent_z(axis) - GRASP_BELOW_TOP_M])
        yaw = _grasp_yaw(raw, grasp, axis)
        close = self._should_close(env, eef, grasp)
        return _approach(eef, grasp), yaw, GRIPPER_CLOSE if close else GRIPPER_OPEN

    @staticmethod
    def _carry(raw, can: np.ndarray, axis: np.ndarray, eef: np.ndarray,
               floor_z: float) -> np.ndarray:
        """Eef target that takes the held can over the walls, above its quadrant, and down."""
        aim = raw.target_bin_placements[raw.object_id, :2] + PLACE_AIM_OFFSET_M
        # A lying can reaches less far down than an upright one: lower it by its actual extent.
        goal = np.r_[aim, floor_z + _half_extent_z(axis) + LOWER_TO_HEIGHT_M]
        carry_z = floor_z + WALL_TOP_ABOVE_FLOOR_M + CARRY_CLEARANCE_M + CAN_HALF_HEIGHT_M
        horizontal = float(np.linalg.norm(goal[:2] - can[:2]))
        if horizontal <= CARRY_ALIGN_TOL_M:
            can_target = goal
        elif horizontal <= CARRY_REALIGN_TOL_M:
            can_target = np.r_[goal[:2], can[2]]  # small correction in place
        elif can[2] < carry_z - SAFE_Z_BAND_M:
            can_target = np.r_[can[:2], carry_z]  # clear the walls before crossing
        else:
            can_target = np.r_[goal[:2], carry_z]
        # Steer the can, not the eef: the can sits wherever the fingers happened to catch it. The
        # hand is longer than the quadrant is wide: keep it above the wall tops.
        target = eef + (can_target - can)
        target[2] = max(target[2], floor_z + WALL_TOP_ABOVE_FLOOR_M + HAND_ABOVE_WALLS_M
                        - HAND_BOTTOM_ABOVE_EEF_M)
        return target

    # --- state checks ----------------------------------------------------------------------------
    def _should_close(self, env: SimRobot, eef: np.ndarray, grasp: np.ndarray) -> bool:
        """Close when the open fingers surround the grasp point; keep closing (looser tolerance)
        once they have started; reopen fully after closing on nothing."""
        opening = self.gripper_opening(env)
        qvel = env.raw.sim.data.qvel[env.raw.robots[0]._ref_gripper_joint_vel_indexes["right"]]
        reopening = float(qvel[0] - qvel[1]) > REOPENING_SPEED_M_S and opening < FULLY_OPEN_M
        if opening < MISSED_GRASP_M or reopening:
            return False
        tol = KEEP_CLOSING_TOL_M if opening < FULLY_OPEN_M else CLOSE_TOL_M
        aligned = np.linalg.norm(eef[:2] - grasp[:2]) < tol
        return bool(aligned and eef[2] - grasp[2] < CLOSE_HEIGHT_TOL_M)

    @staticmethod
    def _joint_limit_fraction(env: SimRobot) -> float:
        """0 with an arm joint at a limit, 1 with all at least JOINT_LIMIT_MARGIN_RAD inside."""
        robot = env.raw.robots[0]
        ranges = env.raw.sim.model.jnt_range[robot._ref_joint_indexes]
        q = env.raw.sim.data.qpos[robot._ref_joint_pos_indexes]
        margin = np.minimum(q - ranges[:, 0], ranges[:, 1] - q).min()
        return float(np.clip(margin / JOINT_LIMIT_MARGIN_RAD, 0.0, 1.0))


def _approach(eef: np.ndarray, point: np.ndarray) -> np.ndarray:
    """Eef target for coming down onto `point` from above without sweeping the can sideways."""
    horizontal = float(np.linalg.norm(eef[:2] - point[:2]))
    if horizontal > REALIGN_TOL_M and eef[2] < point[2] + 0.5 * HOVER_ABOVE_CAN_M:
        return np.r_[eef[:2], point[2] + HOVER_ABOVE_CAN_M]  # off to the side and low: rise first
    # Descend inside a cone above the point: the worse the alignment, the higher.
    height = np.clip((horizontal - ALIGN_TOL_M) * APPROACH_CONE_SLOPE, 0.0, HOVER_ABOVE_CAN_M)
    return point + np.array([0.0, 0.0, height])


def _tilt(axis: np.ndarray) -> float:
    """Angle (rad) between the can's axis and the vertical."""
    return float(np.arccos(min(abs(axis[2]), 1.0)))


def _half_extent_z(axis: np.ndarray) -> float:
    """Vertical half-extent (m) of the can with its axis along `axis`."""
    return abs(axis[2]) * CAN_HALF_HEIGHT_M + np.sqrt(max(0.0, 1.0 - axis[2]**2)) * CAN_RADIUS_M


def _in_quadrant(raw, can: np.ndarray, floor_z: float) -> bool:
    """Can centre well inside its quadrant of bin 2 and resting low (not on a wall top)."""
    centre = raw.target_bin_placements[raw.object_id, :2]
    half = (np.array(raw.bin_size[:2]) / 4.0 - WALL_HALF_THICKNESS_M - CAN_RADIUS_M
            - PLACE_INSIDE_MARGIN_M)
    inside = bool(np.all(np.abs(can[:2] - centre) < half))
    return inside and can[2] < floor_z + WALL_TOP_ABOVE_FLOOR_M


def _release(raw, can: np.ndarray, axis: np.ndarray, floor_z: float) -> bool:
    """The held can is low inside its quadrant: let go."""
    low = can[2] - _half_extent_z(axis) < floor_z + RELEASE_HEIGHT_M
    return low and _in_quadrant(raw, can, floor_z)


def _compartment(raw, xy: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """(middle, inner half-size) of the bin compartment (bin 1, or a quadrant of bin 2) holding
    the point `xy`, or None."""
    size = np.asarray(raw.bin_size[:2])
    compartments = [(raw.bin1_pos[:2], size / 2.0 - WALL_HALF_THICKNESS_M)]
    compartments += [(c[:2], size / 4.0 - WALL_HALF_THICKNESS_M) for c in raw.target_bin_placements]
    return next(((m, h) for m, h in compartments if np.all(np.abs(xy[:2] - m) < h)), None)


def _grasp_yaw(raw, grasp: np.ndarray, axis: np.ndarray) -> float:
    """Gripper yaw (0: fingers close along world y) for grasping at `grasp`. An upright can takes
    any yaw, a lying one must be squeezed across its side give or take MAX_YAW_DEVIATION_RAD.
    Prefer the nominal (or square) yaw among those clear of the bin walls, else the least bad."""
    if _tilt(axis) > LYING_TILT_RAD:
        base, spread = np.arctan2(axis[1], axis[0]), MAX_YAW_DEVIATION_RAD  # across the axis
    else:
        base, spread = 0.0, np.pi / 2
    deviations = sorted(np.linspace(-spread, spread, YAW_CANDIDATES), key=abs)
    clearances = [_wall_clearance(raw, grasp, base + d) for d in deviations]
    clear = [i for i, c in enumerate(clearances) if c >= WALL_CLEARANCE_M]
    best = clear[0] if clear else int(np.argmax(clearances))
    return float(base + deviations[best])


def _wall_clearance(raw, grasp: np.ndarray, yaw: float) -> float:
    """Horizontal clearance (m, negative: overlap) between the bin walls and what of the gripper
    is below their tops with the eef at `grasp` and yaw `yaw`: the fingers, and the hand too when
    it is that low."""
    compartment = _compartment(raw, grasp)
    if compartment is None:
        return np.inf  # e.g. on a wall top: no wall to avoid
    middle, half = compartment
    wall_top = raw.bin2_pos[2] + FLOOR_HALF_THICKNESS_M + WALL_TOP_ABOVE_FLOOR_M
    if grasp[2] + HAND_BOTTOM_ABOVE_EEF_M < wall_top:
        half_length, half_width = HAND_HALF_LENGTH_M, HAND_HALF_WIDTH_M
    else:
        half_length, half_width = FINGERS_HALF_LENGTH_M, FINGERS_HALF_WIDTH_M
    finger = np.array([-np.sin(yaw), np.cos(yaw)])
    side = np.array([finger[1], -finger[0]])
    corners = [grasp[:2] + a * half_length * finger + b * half_width * side
               for a in (-1, 1) for b in (-1, 1)]
    return float(min(np.min(half - np.abs(c - middle)) for c in corners))

