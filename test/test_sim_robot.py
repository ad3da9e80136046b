"""The simulated robot: real robosuite physics and rendering behind firework's observation schema."""
from __future__ import annotations

import numpy as np
import pytest

from firework_common.errors import EnvironmentSetupError
from firework_sim.tasks import get_task

pytestmark = pytest.mark.sim


@pytest.fixture(scope="module")
def lift_robot(sim_config):
    from firework_sim.robot_env import SimRobot

    robot = SimRobot(get_task("Lift"), sim_config, seed=0)
    yield robot
    robot.close()


def test_observation_matches_the_schema(lift_robot, sim_config):
    obs = lift_robot.reset(seed=1)
    h, w = sim_config.cameras.height, sim_config.cameras.width
    assert set(obs.images) == set(sim_config.cameras.names)
    for img in obs.images.values():
        assert img.shape == (h, w, 3) and img.dtype == np.uint8 and img.flags.c_contiguous
    assert obs.proprio().shape == (9,) and obs.joint_pos.shape == (7,)
    assert abs(np.linalg.norm(obs.eef_quat) - 1.0) < 1e-6
    assert obs.task_id == 0


def test_images_are_upright(lift_robot):
    """In the wrist camera the gripper fingers (dark) sit at the bottom of an upright image."""
    obs = lift_robot.reset(seed=1)
    gray = obs.images["eye_in_hand"].astype(float).mean(axis=2)
    rows = gray.shape[0]
    assert gray[int(0.85 * rows):].mean() < gray[: rows // 2].mean() - 30


def test_seeded_reset_reproduces_object_placement(lift_robot):
    cube = lift_robot.raw.cube.root_body
    body = lift_robot.raw.sim.model.body_name2id(cube)

    def placement(seed):
        lift_robot.reset(seed=seed)
        return np.array(lift_robot.raw.sim.data.body_xpos[body])

    a, b, c = placement(5), placement(6), placement(5)
    np.testing.assert_allclose(a, c)
    assert np.linalg.norm(a - b) > 1e-4


def test_action_moves_the_arm_and_counts_steps(lift_robot):
    obs0 = lift_robot.reset(seed=2)
    obs = obs0
    for _ in range(10):
        obs = lift_robot.step(np.array([0, 0, 1.0, 0, 0, 0, -1]))
    assert obs.eef_pos[2] - obs0.eef_pos[2] > 0.05
    assert lift_robot.steps == 10 and not lift_robot.succeeded


def test_wrong_action_shape_is_refused(lift_robot):
    lift_robot.reset(seed=0)
    with pytest.raises(ValueError, match=r"shape \(7,\)"):
        lift_robot.step(np.zeros(6))
    with pytest.raises(ValueError, match="NaN"):
        lift_robot.step(np.array([np.nan] * 7))


def test_missing_gl_library_names_the_fix(monkeypatch):
    import ctypes.util

    from firework_sim import robot_env

    monkeypatch.setattr(ctypes.util, "find_library", lambda name: None)
    with pytest.raises(EnvironmentSetupError, match="apt-get install libosmesa6"):
        robot_env.check_gl_backend("osmesa")


@pytest.mark.parametrize("change", ["lighting", "camera", "color"])
def test_visual_changes_alter_the_pictures_not_the_physics(change, sim_config, lift_robot):
    from firework_sim.robot_env import SimRobot
    from firework_sim.visual_changes import apply_visual_change

    changed = SimRobot(get_task("Lift"), sim_config, seed=0)
    try:
        apply_visual_change(changed, change)
        a, b = lift_robot.reset(seed=4), changed.reset(seed=4)
        np.testing.assert_allclose(a.eef_pos, b.eef_pos)
        cube = lift_robot.raw.sim.model.body_name2id(lift_robot.raw.cube.root_body)
        np.testing.assert_allclose(lift_robot.raw.sim.data.body_xpos[cube], changed.raw.sim.data.body_xpos[cube])
        diff = np.abs(a.images["agentview"].astype(int) - b.images["agentview"].astype(int)).max(axis=2)
        assert (diff > 40).sum() >= 10, f"{change} left the agentview picture unchanged"
    finally:
        changed.close()


def test_unknown_visual_change_lists_the_known_ones(lift_robot):
    from firework_common.errors import UsageError
    from firework_sim.visual_changes import apply_visual_change

    with pytest.raises(UsageError, match="lighting, camera, color"):
        apply_visual_change(lift_robot, "fog")


def test_each_robot_renders_its_own_scene_when_several_share_a_process(lift_robot, sim_config):
    """A collection worker holds one robot per task: a robot made later must not change what an
    earlier one renders (robosuite renders into whichever GL context is current)."""
    from firework_sim.robot_env import SimRobot

    before = lift_robot.reset(seed=7).images
    other = SimRobot(get_task("Door"), sim_config, seed=0)
    try:
        other.reset(seed=1)
        after = lift_robot.reset(seed=7).images
        for cam in before:
            np.testing.assert_array_equal(before[cam], after[cam], err_msg=cam)
        red = before["agentview"].astype(int)
        # The red cube is in the picture: some pixels are clearly red (not the table's white/grey).
        assert ((red[..., 0] - red[..., 2] > 60) & (red[..., 0] > 100)).sum() >= 4
    finally:
        other.close()
