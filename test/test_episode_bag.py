"""Episode bags: real rosbag2 (MCAP) files that a second reader opens, with exact images."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from rosbags.highlevel import AnyReader

from firework_common.episode_bag import (
    PARTIAL_SUFFIX,
    TYPESTORE,
    EpisodeBagWriter,
    EpisodeInfo,
    read_episode,
)
from firework_common.errors import DataError
from firework_common.manifest import RoundManifest, load_manifest
from firework_common.schema import ControlSource, EpisodeOutcome, Observation

CAMS = ("agentview", "eye_in_hand")


def make_info(ns="/robot_3", seed=7, index=0):
    return EpisodeInfo(robot_namespace=ns, task="Lift", task_id=0, language_goal="lift the red cube",
                       seed=seed, control_freq_hz=20, camera_names=CAMS, extra={"index": index})


def make_obs(rng, h=84, w=84):
    return Observation(
        images={c: rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8) for c in CAMS},
        eef_pos=rng.normal(size=3), eef_quat=np.array([0.0, 1.0, 0.0, 0.0]),
        gripper_qpos=np.array([0.02, -0.02]), joint_pos=rng.normal(size=7), task_id=0)


def write_episode(path, steps=5, seed=0, outcome=EpisodeOutcome.SUCCESS):
    rng = np.random.default_rng(seed)
    obs_list, actions, sources = [], [], []
    with EpisodeBagWriter(path, make_info(seed=seed)) as bag:
        for t in range(steps):
            obs = make_obs(rng)
            action = rng.uniform(-1, 1, size=7)
            source = ControlSource.HUMAN if t >= steps // 2 else ControlSource.ROBOT
            bag.write_step(t, obs, action, source)
            obs_list.append(obs), actions.append(action), sources.append(source)
        bag.finish(outcome, {"human_steps": steps - steps // 2})
    return obs_list, np.array(actions), np.array(sources)


def test_anyreader_sees_documented_topics_and_types(tmp_path):
    write_episode(tmp_path / "ep", steps=4)
    with AnyReader([tmp_path / "ep"], default_typestore=TYPESTORE) as reader:
        topics = {c.topic: c.msgtype for c in reader.connections}
        counts = {c.topic: c.msgcount for c in reader.connections}
    ns = "/robot_3"
    assert topics == {
        f"{ns}/camera/agentview/image_raw": "sensor_msgs/msg/Image",
        f"{ns}/camera/eye_in_hand/image_raw": "sensor_msgs/msg/Image",
        f"{ns}/joint_states": "sensor_msgs/msg/JointState",
        f"{ns}/eef_pose": "geometry_msgs/msg/PoseStamped",
        f"{ns}/action": "std_msgs/msg/Float64MultiArray",
        f"{ns}/control_source": "std_msgs/msg/String",
        f"{ns}/task": "std_msgs/msg/String",
        f"{ns}/language_goal": "std_msgs/msg/String",
        f"{ns}/episode_outcome": "std_msgs/msg/String",
        "/clock": "rosgraph_msgs/msg/Clock",
    }
    assert counts[f"{ns}/action"] == 4 and counts[f"{ns}/episode_outcome"] == 1
    assert (tmp_path / "ep" / "ep.mcap").is_file()


def test_round_trip_is_exact(tmp_path):
    obs_list, actions, sources = write_episode(tmp_path / "ep", steps=6, seed=3)
    ep = read_episode(tmp_path / "ep")
    assert ep.num_steps == 6 and ep.outcome is EpisodeOutcome.SUCCESS
    for cam in CAMS:
        expected = np.stack([o.images[cam] for o in obs_list])
        assert ep.images[cam].dtype == np.uint8
        assert ep.images[cam].tobytes() == expected.tobytes()
    np.testing.assert_array_equal(ep.actions, actions)
    np.testing.assert_array_equal(ep.sources, sources.astype(np.int8))
    np.testing.assert_array_equal(ep.eef_pos, np.stack([o.eef_pos for o in obs_list]))
    assert ep.proprio().shape == (6, 9)
    assert ep.meta["seed"] == 3 and ep.meta["human_steps"] == 3 and ep.language_goal == "lift the red cube"


def test_exception_mid_episode_keeps_the_recorded_steps_as_aborted(tmp_path):
    rng = np.random.default_rng(0)
    with pytest.raises(RuntimeError):
        with EpisodeBagWriter(tmp_path / "ep", make_info()) as bag:
            bag.write_step(0, make_obs(rng), np.zeros(7), ControlSource.ROBOT)
            bag.write_step(1, make_obs(rng), np.zeros(7), ControlSource.ROBOT)
            raise RuntimeError("simulated crash")
    ep = read_episode(tmp_path / "ep")
    assert ep.outcome is EpisodeOutcome.ABORTED and ep.num_steps == 2


def test_killed_writer_leaves_finished_episodes_intact(tmp_path):
    """A process killed mid-episode: earlier episodes and the manifest stay readable."""
    script = textwrap.dedent(f"""
        import os, sys
        sys.path.insert(0, {str(os.path.dirname(__file__))!r})
        from pathlib import Path
        from test_episode_bag import write_episode, make_info, make_obs
        from firework_common.manifest import RoundManifest
        from firework_common.episode_bag import EpisodeBagWriter, read_episode
        from firework_common.schema import ControlSource
        import numpy as np
        m = RoundManifest(Path({str(tmp_path)!r}))
        m.episodes_dir.mkdir(parents=True)
        for i in range(2):
            write_episode(m.episodes_dir / f"ep{{i}}", steps=3, seed=i)
            m.add({{"index": i, "bag": f"episodes/ep{{i}}"}})
        bag = EpisodeBagWriter(m.episodes_dir / "ep2", make_info())
        bag.write_step(0, make_obs(np.random.default_rng(0)), np.zeros(7), ControlSource.ROBOT)
        os._exit(9)  # killed mid-episode: no cleanup of any kind runs
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert proc.returncode == 9, proc.stderr
    records = load_manifest(tmp_path)
    assert [r["bag"] for r in records] == ["episodes/ep0", "episodes/ep1"]
    for r in records:
        assert read_episode(tmp_path / r["bag"]).num_steps == 3
    assert (tmp_path / "episodes" / ("ep2" + PARTIAL_SUFFIX)).exists()
    assert not (tmp_path / "episodes" / "ep2").exists()
    # A rebuilt manifest lists exactly the finished bags.
    m = RoundManifest(tmp_path)
    m.rebuild()
    assert sorted(r["bag"] for r in m.episodes) == ["episodes/ep0", "episodes/ep1"]


def test_reading_a_partial_bag_is_refused(tmp_path):
    (tmp_path / ("ep" + PARTIAL_SUFFIX)).mkdir()
    with pytest.raises(DataError, match="unfinished"):
        read_episode(tmp_path / ("ep" + PARTIAL_SUFFIX))


def test_not_a_bag_is_a_clear_error(tmp_path):
    with pytest.raises(DataError, match="not a rosbag2 directory"):
        read_episode(tmp_path)


def test_bag_without_actions_is_refused(tmp_path):
    with EpisodeBagWriter(tmp_path / "ep", make_info()) as bag:
        bag.finish(EpisodeOutcome.FAILURE)
    with pytest.raises(DataError, match="without actions"):
        read_episode(tmp_path / "ep")


def test_existing_bag_is_never_overwritten(tmp_path):
    write_episode(tmp_path / "ep")
    with pytest.raises(DataError, match="already exists"):
        EpisodeBagWriter(tmp_path / "ep", make_info())


def test_wrong_image_dtype_is_refused(tmp_path):
    rng = np.random.default_rng(0)
    obs = make_obs(rng)
    obs.images["agentview"] = obs.images["agentview"].astype(np.float32)
    with pytest.raises(DataError, match="agentview.*uint8"):
        with EpisodeBagWriter(tmp_path / "ep", make_info()) as bag:
            bag.write_step(0, obs, np.zeros(7), ControlSource.ROBOT)
