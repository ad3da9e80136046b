"""Typed configuration of the simulated fleet (`config/sim.yaml`)."""
from __future__ import annotations

from dataclasses import dataclass, field

from firework_common.config import load_section


@dataclass(frozen=True)
class CameraConfig:
    """Cameras rendered for every robot.

    Args:
        names: firework camera names, in the order they appear in observations and bags.
        robosuite_names: the robosuite camera each name renders (same order as `names`).
        height: image height in pixels.
        width: image width in pixels.
    """

    names: tuple[str, ...] = ("agentview", "eye_in_hand")
    robosuite_names: tuple[str, ...] = ("agentview", "robot0_eye_in_hand")
    height: int = 84
    width: int = 84

    def __post_init__(self) -> None:
        if len(self.names) != len(self.robosuite_names):
            raise ValueError(
                f"cameras.names has {len(self.names)} entries but cameras.robosuite_names has "
                f"{len(self.robosuite_names)}; they must pair up")
        if self.height < 8 or self.width < 8:
            raise ValueError(f"cameras.height/width must be >= 8, got {self.height}x{self.width}")


@dataclass(frozen=True)
class RenderConfig:
    """Offscreen rendering settings.

    Args:
        gl_backend: MUJOCO_GL backend, "egl" or "osmesa" (both Mesa llvmpipe on a CPU).
        multisample: keep MuJoCo's offscreen multisampling (4x). Off is ~3x faster on CPU.
        reflections: keep floor/table reflections. Off is faster on CPU.
    """

    gl_backend: str = "egl"
    multisample: bool = False
    reflections: bool = False

    def __post_init__(self) -> None:
        if self.gl_backend not in ("egl", "osmesa"):
            raise ValueError(f"render.gl_backend must be 'egl' or 'osmesa', got {self.gl_backend!r}")


@dataclass(frozen=True)
class SimConfig:
    """The simulated robots.

    Args:
        robot: robosuite robot model.
        control_freq_hz: policy/control rate.
        cameras: rendered cameras.
        render: offscreen render settings.
        max_steps: per task, the step budget of one episode (the episode fails when it runs out).
        success_hold_steps: an episode ends as a success after the task predicate held this many
            consecutive steps (a lifted cube that is dropped right away is not a success).
    """

    robot: str = "Panda"
    control_freq_hz: int = 20
    cameras: CameraConfig = field(default_factory=CameraConfig)
    render: RenderConfig = field(default_factory=RenderConfig)
    max_steps: dict[str, int] = field(default_factory=dict)
    success_hold_steps: int = 3

    def __post_init__(self) -> None:
        if self.control_freq_hz <= 0:
            raise ValueError(f"control_freq_hz must be > 0, got {self.control_freq_hz}")
        for task, steps in self.max_steps.items():
            if steps <= 0:
                raise ValueError(f"max_steps.{task} must be > 0, got {steps}")


@dataclass(frozen=True)
class ImperfectConfig:
    """The imperfect operator: the scripted expert with realistic faults (stand-in failing policy).

    Args:
        noise_sigma: std of the temporally correlated (AR(1)) action noise, in action units.
        noise_correlation: AR(1) coefficient of that noise (0 = white, close to 1 = slow drift).
        object_bias_m: std of a per-episode bias added to every object position the expert sees.
        stale_action_prob: per step, probability of repeating the previous action.
        gripper_slip_prob: per step, probability of starting a gripper slip (gripper opens).
        gripper_slip_steps: how long a slip keeps the gripper open.
    """

    noise_sigma: float = 0.3
    noise_correlation: float = 0.8
    object_bias_m: float = 0.01
    stale_action_prob: float = 0.1
    gripper_slip_prob: float = 0.01
    gripper_slip_steps: int = 4

    def __post_init__(self) -> None:
        for name in ("noise_sigma", "object_bias_m", "stale_action_prob", "gripper_slip_prob"):
            if getattr(self, name) < 0:
                raise ValueError(f"imperfect.{name} must be >= 0, got {getattr(self, name)}")
        if not 0 <= self.noise_correlation < 1:
            raise ValueError(f"imperfect.noise_correlation must be in [0, 1), got {self.noise_correlation}")
        for name in ("stale_action_prob", "gripper_slip_prob"):
            if getattr(self, name) > 1:
                raise ValueError(f"imperfect.{name} must be <= 1, got {getattr(self, name)}")


@dataclass(frozen=True)
class SupervisorConfig:
    """When the supervising human takes over from a robot that is going wrong (privileged view of
    the simulator: the task's dense progress in [0, 1], robosuite's shaped reward).

    Args:
        grace_steps: no takeover during the first steps of an episode.
        stall_steps: take over when progress has not improved for this many steps.
        min_improvement: progress gain that counts as an improvement.
        regression: take over when progress falls this far below its best (e.g. a dropped object)...
        regression_steps: ...for this many consecutive steps (releasing the nut onto its peg drops the
            grasp term for a few steps before success registers; a dropped object stays down).
        deadline_fraction: take over when this share of the step budget is spent without success.
        approach_m: the gripper getting this much closer to a task object than ever before also
            counts as progress (the shaped reward's reaching term is nearly flat beyond ~10 cm).
        object_motion_m: a task object (any of its bodies) moving this far since the last progress
            also counts (carrying an object or swinging the door, which the shaped reward only sees
            near the goal).
        max_takeovers: takeovers per episode; the human who takes over for the last time finishes
            the episode (1: every takeover lasts to the end of the episode).
        hand_back_min_steps: a human who took over keeps control at least this many steps...
        hand_back_progress: ...and gives it back once the task's progress is this far above the
            best the robot had reached before the takeover (the trouble is behind it). A deadline
            takeover is never handed back: there is no time left for the robot to try again.
    """

    grace_steps: int = 10
    stall_steps: int = 15
    min_improvement: float = 0.02
    regression: float = 0.25
    regression_steps: int = 10
    deadline_fraction: float = 0.6
    approach_m: float = 0.02
    object_motion_m: float = 0.02
    max_takeovers: int = 3
    hand_back_min_steps: int = 20
    hand_back_progress: float = 0.05

    def __post_init__(self) -> None:
        if self.max_takeovers < 1:
            raise ValueError(f"supervisor.max_takeovers must be >= 1, got {self.max_takeovers}")
        if self.hand_back_min_steps < 1:
            raise ValueError(f"supervisor.hand_back_min_steps must be >= 1, got {self.hand_back_min_steps}")
        if self.hand_back_progress <= 0:
            raise ValueError(f"supervisor.hand_back_progress must be > 0, got {self.hand_back_progress}")


@dataclass(frozen=True)
class OperatorConfig:
    """The scripted operator (the simulated human).

    Args:
        position_gain: P gain from position error (m) to OSC delta action (action units).
        integral_gain: I gain; OSC leaves a few mm of steady-state error that P alone never closes.
        integral_limit: clip of the integral term, in action units.
        rotation_gain: P gain from orientation error (rad) to rotation action.
        imperfect: fault model of the imperfect operator.
        supervisor: when the operator, supervising a robot, takes over.
    """

    position_gain: float = 2.0
    integral_gain: float = 0.2
    integral_limit: float = 0.3
    rotation_gain: float = 1.0
    imperfect: ImperfectConfig = field(default_factory=ImperfectConfig)
    supervisor: SupervisorConfig = field(default_factory=SupervisorConfig)


def load_sim_config() -> SimConfig:
    return load_section(SimConfig, "sim.yaml", "sim")


def load_operator_config() -> OperatorConfig:
    return load_section(OperatorConfig, "sim.yaml", "operator")
