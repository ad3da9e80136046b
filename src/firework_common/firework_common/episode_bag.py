"""Episodes as rosbag2 (MCAP) files: the single data format from which all training data is made.

One bag per episode, written with `rosbags` (no ROS install needed) in the layout the ROS recorder
node writes too. All messages of one control step carry the same timestamp (sim time,
step / control rate), so a reader lines them up by stamp. Topics, relative to the robot namespace
(e.g. /robot_0):

    camera/<name>/image_raw   sensor_msgs/msg/Image            every step, rgb8, upright
    joint_states              sensor_msgs/msg/JointState       every step: 7 arm + 2 finger joints
    eef_pose                  geometry_msgs/msg/PoseStamped    every step: gripper pose, world frame
    action                    std_msgs/msg/Float64MultiArray   every step: the executed 7-D action
    control_source            std_msgs/msg/String              every step: "robot" or "human"
    task                      std_msgs/msg/String              once: task name
    language_goal             std_msgs/msg/String              once: the task's language goal
    episode_outcome           std_msgs/msg/String              once, last: success | failure | aborted
    /clock                    rosgraph_msgs/msg/Clock          every step (sim time)

A bag is written into `<name>.partial/` and renamed to `<name>/` only once it is closed, so a
process killed mid-episode never leaves a half-written bag under a final name.
"""
from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from rosbags.highlevel import AnyReader
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import Stores, get_typestore

from firework_common.errors import DataError
from firework_common.schema import (
    ACTION_DIM,
    ACTION_LABELS,
    ARM_JOINT_NAMES,
    GRIPPER_JOINT_NAMES,
    ControlSource,
    EpisodeOutcome,
    Observation,
)

TYPESTORE = get_typestore(Stores.ROS2_KILTED)
PARTIAL_SUFFIX = ".partial"
BAG_FORMAT = "firework-episode/1"
WORLD_FRAME = "world"
# Sim time of step 0: bag players and tools treat a zero stamp as "unset".
EPISODE_START_NS = 1_000_000_000

IMAGE = "sensor_msgs/msg/Image"
JOINT_STATE = "sensor_msgs/msg/JointState"
POSE_STAMPED = "geometry_msgs/msg/PoseStamped"
FLOAT_ARRAY = "std_msgs/msg/Float64MultiArray"
STRING = "std_msgs/msg/String"
CLOCK = "rosgraph_msgs/msg/Clock"

_SOURCE_NAMES = {ControlSource.ROBOT: "robot", ControlSource.HUMAN: "human"}
_SOURCE_BY_NAME = {v: k for k, v in _SOURCE_NAMES.items()}


def image_topic(namespace: str, camera: str) -> str:
    return f"{namespace}/camera/{camera}/image_raw"


def robot_topic(namespace: str, name: str) -> str:
    return f"{namespace}/{name}"


def _stamp(ns: int) -> Any:
    Time = TYPESTORE.types["builtin_interfaces/msg/Time"]
    return Time(sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000)


def _header(ns: int, frame: str) -> Any:
    return TYPESTORE.types["std_msgs/msg/Header"](stamp=_stamp(ns), frame_id=frame)


@dataclass(frozen=True)
class EpisodeInfo:
    """What is known about an episode before it runs."""

    robot_namespace: str
    task: str
    task_id: int
    language_goal: str
    seed: int
    control_freq_hz: int
    camera_names: tuple[str, ...]
    extra: dict[str, Any] = field(default_factory=dict)


class EpisodeBagWriter:
    """Writes one episode. Use as a context manager: an exception closes the bag as 'aborted'."""

    def __init__(self, path: Path, info: EpisodeInfo) -> None:
        self.final_path = Path(path)
        # The bag is written at <name>.partial/<name>/ (rosbags names the storage file after the
        # bag folder, so it keeps its final name) and moved to <name>/ when closed.
        self.partial_root = self.final_path.with_name(self.final_path.name + PARTIAL_SUFFIX)
        self.partial_path = self.partial_root / self.final_path.name
        if self.final_path.exists():
            raise DataError(f"episode bag {self.final_path} already exists; choose another --out")
        if self.partial_root.exists():  # left by a killed run: its data is incomplete, replace it
            shutil.rmtree(self.partial_root)
        self.partial_root.mkdir(parents=True)
        self.info = info
        self._step_ns = 1_000_000_000 // info.control_freq_hz
        self._writer = Writer(self.partial_path, version=9, storage_plugin=StoragePlugin.MCAP)
        self._writer.open()
        self._conns: dict[str, Any] = {}
        self._steps = 0
        self._closed = False
        ns = info.robot_namespace
        for cam in info.camera_names:
            self._add(image_topic(ns, cam), IMAGE)
        for name, msgtype in (("joint_states", JOINT_STATE), ("eef_pose", POSE_STAMPED),
                              ("action", FLOAT_ARRAY), ("control_source", STRING),
                              ("task", STRING), ("language_goal", STRING),
                              ("episode_outcome", STRING)):
            self._add(robot_topic(ns, name), msgtype)
        self._add("/clock", CLOCK)
        String = TYPESTORE.types[STRING]
        self._write(robot_topic(ns, "task"), EPISODE_START_NS, String(data=info.task))
        self._write(robot_topic(ns, "language_goal"), EPISODE_START_NS, String(data=info.language_goal))

    def _add(self, topic: str, msgtype: str) -> None:
        self._conns[topic] = self._writer.add_connection(topic, msgtype, typestore=TYPESTORE)

    def _write(self, topic: str, ns: int, msg: Any) -> None:
        conn = self._conns[topic]
        self._writer.write(conn, ns, TYPESTORE.serialize_cdr(msg, conn.msgtype))

    def write_step(self, step: int, obs: Observation, action: np.ndarray, source: ControlSource) -> None:
        """Record the observation of `step`, the action executed from it and who chose that action."""
        types = TYPESTORE.types
        ns_time = EPISODE_START_NS + step * self._step_ns
        ns = self.info.robot_namespace
        for cam in self.info.camera_names:
            img = obs.images[cam]
            if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
                raise DataError(f"camera {cam!r}: expected HxWx3 uint8, got {img.shape} {img.dtype}")
            msg = types[IMAGE](
                header=_header(ns_time, f"{ns.strip('/')}/{cam}"), height=img.shape[0], width=img.shape[1],
                encoding="rgb8", is_bigendian=0, step=img.shape[1] * 3,
                data=np.frombuffer(np.ascontiguousarray(img).tobytes(), dtype=np.uint8))
            self._write(image_topic(ns, cam), ns_time, msg)
        joints = types[JOINT_STATE](
            header=_header(ns_time, ""), name=list(ARM_JOINT_NAMES + GRIPPER_JOINT_NAMES),
            position=np.concatenate([obs.joint_pos, obs.gripper_qpos]).astype(np.float64),
            velocity=np.zeros(0), effort=np.zeros(0))
        self._write(robot_topic(ns, "joint_states"), ns_time, joints)
        x, y, z, w = (float(v) for v in obs.eef_quat)
        pose = types[POSE_STAMPED](
            header=_header(ns_time, WORLD_FRAME),
            pose=types["geometry_msgs/msg/Pose"](
                position=types["geometry_msgs/msg/Point"](x=float(obs.eef_pos[0]), y=float(obs.eef_pos[1]),
                                                          z=float(obs.eef_pos[2])),
                orientation=types["geometry_msgs/msg/Quaternion"](x=x, y=y, z=z, w=w)))
        self._write(robot_topic(ns, "eef_pose"), ns_time, pose)
        self._write(robot_topic(ns, "action"), ns_time, _action_msg(action))
        self._write(robot_topic(ns, "control_source"), ns_time, types[STRING](data=_SOURCE_NAMES[source]))
        self._write("/clock", ns_time, types[CLOCK](clock=_stamp(ns_time)))
        self._steps = max(self._steps, step + 1)

    def finish(self, outcome: EpisodeOutcome, summary: dict[str, Any] | None = None) -> Path:
        """Write the outcome, close the bag and give it its final name."""
        ns_time = EPISODE_START_NS + self._steps * self._step_ns
        self._write(robot_topic(self.info.robot_namespace, "episode_outcome"), ns_time,
                    TYPESTORE.types[STRING](data=outcome.value))
        meta = {"format": BAG_FORMAT, "robot_namespace": self.info.robot_namespace,
                "task": self.info.task, "task_id": self.info.task_id,
                "language_goal": self.info.language_goal, "seed": self.info.seed,
                "control_freq_hz": self.info.control_freq_hz,
                "camera_names": list(self.info.camera_names), "outcome": outcome.value,
                "steps": self._steps, **self.info.extra, **(summary or {})}
        self._writer.set_custom_data("firework", json.dumps(meta, sort_keys=True))
        self._writer.close()
        self._closed = True
        self.partial_path.rename(self.final_path)
        self.partial_root.rmdir()
        return self.final_path

    def __enter__(self) -> "EpisodeBagWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if not self._closed and exc_type is not None:
            # Keep what was recorded: close the bag properly, marked aborted.
            try:
                self.finish(EpisodeOutcome.ABORTED)
            except Exception:  # noqa: BLE001 - the original exception matters more
                pass


def _action_msg(action: np.ndarray) -> Any:
    types = TYPESTORE.types
    a = np.asarray(action, dtype=np.float64)
    if a.shape != (ACTION_DIM,):
        raise DataError(f"action must have shape ({ACTION_DIM},), got {a.shape}")
    dim = types["std_msgs/msg/MultiArrayDimension"](label=",".join(ACTION_LABELS), size=ACTION_DIM,
                                                      stride=ACTION_DIM)
    layout = types["std_msgs/msg/MultiArrayLayout"](dim=[dim], data_offset=0)
    return types[FLOAT_ARRAY](layout=layout, data=a)


@dataclass
class Episode:
    """An episode read back from its bag; arrays are indexed by step."""

    path: Path
    meta: dict[str, Any]
    task: str
    language_goal: str
    outcome: EpisodeOutcome
    images: dict[str, np.ndarray]      # camera -> (T, H, W, 3) uint8
    joint_positions: np.ndarray        # (T, 9): 7 arm + 2 fingers
    eef_pos: np.ndarray                # (T, 3)
    eef_quat: np.ndarray               # (T, 4) xyzw
    actions: np.ndarray                # (T, 7)
    sources: np.ndarray                # (T,) ControlSource values

    @property
    def num_steps(self) -> int:
        return len(self.actions)

    def proprio(self) -> np.ndarray:
        """(T, 9): eef position, eef quaternion, gripper fingers (schema.PROPRIO_LABELS)."""
        return np.concatenate([self.eef_pos, self.eef_quat, self.joint_positions[:, 7:9]], axis=1
                              ).astype(np.float32)


def read_episode_meta(path: Path) -> dict[str, Any]:
    """The firework metadata of an episode bag (custom_data in metadata.yaml), without reading messages."""
    try:
        info = yaml.safe_load((Path(path) / "metadata.yaml").read_text(encoding="utf-8"))
        meta = json.loads(info["rosbag2_bagfile_information"]["custom_data"]["firework"])
    except (OSError, KeyError, TypeError, ValueError, yaml.YAMLError) as exc:
        raise DataError(f"{path} is not a firework episode bag (no custom_data.firework in "
                        f"metadata.yaml: {exc!r})") from exc
    if meta.get("format") != BAG_FORMAT:
        raise DataError(f"{path}: episode format {meta.get('format')!r}, expected {BAG_FORMAT!r}")
    return meta


def read_episode(path: Path, load_images: bool = True) -> Episode:
    """Read a firework episode bag with rosbags' AnyReader (no ROS install needed)."""
    path = Path(path)
    if path.name.endswith(PARTIAL_SUFFIX):
        raise DataError(f"{path} is an unfinished episode (its writer was killed); it is not read")
    if not (path / "metadata.yaml").is_file():
        raise DataError(f"{path} is not a rosbag2 directory (no metadata.yaml)")
    meta = read_episode_meta(path)
    ns = meta["robot_namespace"]
    try:
        reader = AnyReader([path], default_typestore=TYPESTORE)
        reader.open()
    except Exception as exc:  # noqa: BLE001 - rosbags raises several types for broken bags
        raise DataError(f"cannot open episode bag {path}: {exc}") from exc
    try:
        by_topic: dict[str, list[tuple[int, Any]]] = {}
        wanted = [c for c in reader.connections
                  if load_images or not c.topic.endswith("/image_raw")]
        for conn, stamp, raw in reader.messages(connections=wanted):
            by_topic.setdefault(conn.topic, []).append((stamp, reader.deserialize(raw, conn.msgtype)))
    finally:
        reader.close()

    def series(name: str) -> list[Any]:
        return [m for _, m in sorted(by_topic.get(name, []), key=lambda x: x[0])]

    actions = series(robot_topic(ns, "action"))
    if not actions:
        raise DataError(f"{path} has no messages on {robot_topic(ns, 'action')}: an episode without actions")
    images = {}
    if load_images:
        for cam in meta["camera_names"]:
            msgs = series(image_topic(ns, cam))
            images[cam] = np.stack([np.asarray(m.data, dtype=np.uint8).reshape(m.height, m.width, 3)
                                    for m in msgs])
    joints = series(robot_topic(ns, "joint_states"))
    poses = series(robot_topic(ns, "eef_pose"))
    outcome_msgs = series(robot_topic(ns, "episode_outcome"))
    return Episode(
        path=path, meta=meta, task=meta["task"], language_goal=meta["language_goal"],
        outcome=EpisodeOutcome(outcome_msgs[-1].data if outcome_msgs else meta["outcome"]),
        images=images,
        joint_positions=np.stack([np.asarray(m.position, dtype=np.float64) for m in joints]),
        eef_pos=np.array([[p.pose.position.x, p.pose.position.y, p.pose.position.z] for p in poses]),
        eef_quat=np.array([[p.pose.orientation.x, p.pose.orientation.y, p.pose.orientation.z,
                            p.pose.orientation.w] for p in poses]),
        actions=np.stack([np.asarray(m.data, dtype=np.float64) for m in actions]),
        sources=np.array([_SOURCE_BY_NAME[m.data] for m in series(robot_topic(ns, "control_source"))],
                         dtype=np.int8),
    )
