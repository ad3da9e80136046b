"""One simulated robot: a robosuite Panda on one task, OSC pose delta control at 20 Hz, fast CPU rendering.

robosuite is imported lazily: MUJOCO_GL must be set before mujoco loads, and the rest of firework
(bags, CLIs' argument checking) must work on machines without a GL library.
"""
from __future__ import annotations

import ctypes.util
import logging
import os
from typing import Any

import numpy as np

from firework_common.errors import EnvironmentSetupError
from firework_common.schema import Observation, check_action
from firework_sim.config import SimConfig
from firework_sim.tasks import TaskSpec

_GL_LIBRARIES = {
    "egl": ("EGL", "apt-get install libegl1 libegl-mesa0 libgl1-mesa-dri"),
    "osmesa": ("OSMesa", "apt-get install libosmesa6"),
}


def check_gl_backend(backend: str) -> None:
    """Fail with a one-line fix when the headless GL library for `backend` is missing."""
    lib, fix = _GL_LIBRARIES[backend]
    if ctypes.util.find_library(lib) is None:
        raise EnvironmentSetupError(
            f"rendering backend {backend!r} needs lib{lib}, which is not installed; fix: {fix} "
            f"(or run scripts/setup.sh), or set sim.render.gl_backend to the other backend")


def _import_robosuite(backend: str) -> Any:
    existing = os.environ.get("MUJOCO_GL")
    if existing and existing != backend:
        logging.getLogger(__name__).warning(
            "MUJOCO_GL=%s is set in the environment; using it instead of %s", existing, backend)
    else:
        os.environ["MUJOCO_GL"] = backend
        os.environ.setdefault("PYOPENGL_PLATFORM", backend)
    check_gl_backend(os.environ["MUJOCO_GL"])
    import robosuite
    import robosuite.macros as macros

    # Upright images (robosuite renders upside-down by default).
    macros.IMAGE_CONVENTION = "opencv"
    # robosuite logs a controller-config warning at every reset: keep errors only.
    logging.getLogger("robosuite_logs").setLevel(logging.ERROR)
    return robosuite


class SimRobot:
    """A robosuite robot that speaks firework's observation/action schema.

    `raw` is the robosuite environment: the scripted operator reads simulator state from it.
    """

    def __init__(self, task: TaskSpec, cfg: SimConfig, seed: int | None = None,
                 render: bool = True) -> None:
        robosuite = _import_robosuite(cfg.render.gl_backend)
        from robosuite.controllers import load_composite_controller_config

        self.task = task
        self.cfg = cfg
        self.max_steps = cfg.max_steps.get(task.name)
        if self.max_steps is None:
            raise EnvironmentSetupError(f"sim.max_steps has no entry for task {task.name!r}")
        controller = load_composite_controller_config(controller="BASIC", robot=cfg.robot)
        self.raw = robosuite.make(
            task.robosuite_env,
            robots=cfg.robot,
            controller_configs=controller,
            has_renderer=False,
            # render=False (state only, ~6x faster) is for tuning and benchmarking the operator.
            has_offscreen_renderer=render,
            use_camera_obs=render,
            use_object_obs=True,
            camera_names=list(cfg.cameras.robosuite_names),
            camera_heights=cfg.cameras.height,
            camera_widths=cfg.cameras.width,
            control_freq=cfg.control_freq_hz,
            # Soft resets: hard resets with cameras take ~2 s and leak memory.
            hard_reset=False,
            horizon=self.max_steps + 1,
            ignore_done=True,
            reward_shaping=False,
            seed=seed,
        )
        self.render = render
        if render:
            self._configure_rendering()
        self.steps = 0
        self._success_streak = 0
        self._last_obs: dict[str, Any] | None = None

    def _configure_rendering(self) -> None:
        import mujoco

        ctx = self.raw.sim._render_context_offscreen
        if not self.cfg.render.multisample:
            # The offscreen buffer's sample count is fixed when the GL context is made: remake it.
            self.raw.sim.model.vis.quality.offsamples = 0
            ctx.gl_ctx.make_current()
            ctx.con.free()
            ctx._set_mujoco_context_and_buffers()
        if not self.cfg.render.reflections:
            ctx.scn.flags[mujoco.mjtRndFlag.mjRND_REFLECTION] = 0

    def make_render_context_current(self) -> None:
        """Make this robot's GL context the current one before rendering.

        robosuite makes a render context current only when it creates it, and renders into whatever
        context is current. With several robots in one process (a collection worker holds one per
        task) every robot but the newest then rendered with another scene's textures and buffers:
        wrong colours (Lift's red cube came out grey-blue). Switching is cheap (no upload)."""
        if self.render:
            self.raw.sim._render_context_offscreen.gl_ctx.make_current()

    def reset(self, seed: int | None = None) -> Observation:
        """Soft reset; `seed` makes the object placement of this episode reproducible."""
        if seed is not None:
            # Placement samplers hold a reference to env.rng: reseed it in place.
            self.raw.rng.bit_generator.state = np.random.default_rng(seed).bit_generator.state
        self.make_render_context_current()
        self._last_obs = self.raw.reset()
        self.steps = 0
        self._success_streak = 0
        return self._to_observation(self._last_obs)

    def step(self, action: np.ndarray) -> Observation:
        a = check_action(action)
        self.make_render_context_current()
        self._last_obs, _, _, _ = self.raw.step(a)
        self.steps += 1
        self._success_streak = self._success_streak + 1 if self.raw._check_success() else 0
        return self._to_observation(self._last_obs)

    def task_success(self) -> bool:
        """The task predicate right now."""
        return bool(self.raw._check_success())

    @property
    def succeeded(self) -> bool:
        """Success that has held `success_hold_steps` consecutive steps."""
        return self._success_streak >= self.cfg.success_hold_steps

    @property
    def out_of_steps(self) -> bool:
        return self.steps >= self.max_steps

    def _to_observation(self, obs: dict[str, Any]) -> Observation:
        images = {
            name: np.ascontiguousarray(obs[f"{rs_name}_image"])
            for name, rs_name in zip(self.cfg.cameras.names, self.cfg.cameras.robosuite_names)
        } if self.render else {}
        return Observation(
            images=images,
            eef_pos=np.asarray(obs["robot0_eef_pos"], dtype=np.float64),
            eef_quat=np.asarray(obs["robot0_eef_quat"], dtype=np.float64),
            gripper_qpos=np.asarray(obs["robot0_gripper_qpos"], dtype=np.float64),
            joint_pos=np.asarray(obs["robot0_joint_pos"], dtype=np.float64),
            task_id=self.task.task_id,
        )

    def close(self) -> None:
        self.raw.close()
