"""The policy at run time: one batched call per control tick for K robots.

The policy node and the in-process fleet both call `PolicyRunner.act`. It keeps each robot's last
`context` frame tokens (each frame is encoded once), pads a fresh history with the first frame (as
training does) and returns a (K, 7) action array clipped to the action box. With action chunking
the policy predicts the next `action_chunk` actions at every tick; the action executed is the
temporal ensemble (ACT) of every still-pending prediction for this step, so the robot stays
closed-loop at control rate. Bad input (wrong frame
size, layout or dtype, NaN proprioception, a task the checkpoint was not trained on) raises a
PolicyInputError naming the robot, the field and the expected value: no robot ever gets a silently
wrong action.

`LearnedActor` adapts the runner to firework_sim's Actor protocol (reset / resume / act(env)), so
`firework_sim.episode.run_episode` and `firework collect`'s workers can run the learned policy.
"""
from __future__ import annotations

import zlib
from pathlib import Path
from collections import deque
from typing import Any, NamedTuple, Sequence

import numpy as np
import torch

from firework_common.robot_history import RobotHistories
from firework_common.errors import FireworkError
from firework_common.schema import ACTION_DIM, ACTION_HIGH, ACTION_LOW, PROPRIO_DIM, Observation
from firework_policy.checkpoint import LoadedPolicy, load_policy


class PolicyInputError(FireworkError):
    """An observation the policy cannot act on."""


class PolicyInput(NamedTuple):
    robot_id: str
    task: str
    frames: np.ndarray     # (cameras, H, W, 3) uint8 RGB, cameras in the checkpoint's order
    proprio: np.ndarray    # (9,) schema.PROPRIO_LABELS


class PolicyRunner:
    def __init__(self, policy: LoadedPolicy) -> None:
        self.policy = policy
        self.model = policy.model.eval()
        self.cfg = policy.cfg
        self.goals = policy.goals
        self.expected_frame_shape = (len(self.cfg.cameras), self.cfg.image_size, self.cfg.image_size, 3)
        self._history = RobotHistories(self.cfg.context)
        self._chunks: dict[str, deque] = {}   # per robot: its last action_chunk predicted chunks, newest last
        # Weight of a prediction made `age` steps ago (index = age).
        self._ensemble_weights = np.exp(-self.cfg.ensemble_decay * np.arange(self.cfg.action_chunk))
        self._task: dict[str, str] = {}
        self._generators: dict[str, torch.Generator] = {}

    @classmethod
    def from_checkpoint(cls, directory: Path) -> "PolicyRunner":
        return cls(load_policy(directory))

    @property
    def tasks(self) -> tuple[str, ...]:
        return self.goals.tasks

    @property
    def cameras(self) -> tuple[str, ...]:
        return self.cfg.cameras

    def reset(self, robot_id: str, seed: int | None = None) -> None:
        """Forget a robot's history (new episode); `seed` seeds its sampling (gmm_eval: sample)."""
        self._forget(robot_id)
        self._task.pop(robot_id, None)
        if seed is not None:
            self._generators[robot_id] = torch.Generator().manual_seed(int(seed))

    def resume(self, robot_id: str) -> None:
        """Someone else (a human) drove the robot since its last tick: forget its frame history and
        pending action chunks, which describe states it is no longer in; keep its task and sampler."""
        self._forget(robot_id)

    def _forget(self, robot_id: str) -> None:
        self._history.forget(robot_id)
        self._chunks.pop(robot_id, None)

    def _ensemble(self, robot_id: str, chunk: np.ndarray) -> np.ndarray:
        """Store the robot's newest chunk (k, 7); -> the weighted mean of what every pending chunk
        predicts for the current step (a chunk made `age` ticks ago contributes its row `age`)."""
        pending = self._chunks.setdefault(robot_id, deque(maxlen=len(self._ensemble_weights)))
        pending.append(chunk)
        rows = np.stack([c[age] for age, c in enumerate(reversed(pending))])
        w = self._ensemble_weights[: len(rows), None]
        return (rows * w).sum(0) / w.sum()

    def check_input(self, item: Any) -> PolicyInput:
        """-> the input as a PolicyInput, or PolicyInputError naming the field and the expected value."""
        try:
            robot_id, task, frames, proprio = item
        except (TypeError, ValueError):
            raise PolicyInputError(f"each input must be (robot_id, task, frames, proprio), got "
                                   f"{type(item).__name__}") from None
        who = f"robot {robot_id!r}"
        if task not in self.goals.tasks:
            raise PolicyInputError(f"{who}: the policy was not trained on task {task!r}; it knows: "
                                   f"{', '.join(self.goals.tasks)}")
        if not isinstance(frames, np.ndarray):
            raise PolicyInputError(f"{who}: frames must be a numpy array, got {type(frames).__name__}")
        if frames.dtype != np.uint8:
            raise PolicyInputError(f"{who}: frames dtype is {frames.dtype}; expected uint8 RGB")
        if frames.shape != self.expected_frame_shape:
            hint = (" (channels first? expected channels last, RGB)"
                    if frames.ndim == 4 and frames.shape[1] == 3 else "")
            raise PolicyInputError(
                f"{who}: frames shape is {frames.shape}; expected {self.expected_frame_shape} "
                f"(cameras {list(self.cameras)}, {self.cfg.image_size}x{self.cfg.image_size} RGB){hint}")
        p = np.asarray(proprio, dtype=np.float32)
        if p.shape != (PROPRIO_DIM,):
            raise PolicyInputError(f"{who}: proprio shape is {p.shape}; expected ({PROPRIO_DIM},)")
        if not np.all(np.isfinite(p)):
            raise PolicyInputError(f"{who}: proprio contains NaN or inf: {p.tolist()}")
        return PolicyInput(str(robot_id), task, frames, p)

    @torch.no_grad()
    def act(self, inputs: Sequence[Any]) -> np.ndarray:
        """K inputs (robot_id, task, frames (cameras, H, W, 3) uint8, proprio (9,)) -> (K, 7) actions
        in [-1, 1]. Every input is checked before any robot's history changes."""
        items = [self.check_input(item) for item in inputs]
        ids = [it.robot_id for it in items]
        if len(set(ids)) != len(ids):
            raise PolicyInputError(f"robot ids must be unique within one call, got {ids}")
        if not items:
            return np.zeros((0, ACTION_DIM))
        for it in items:   # a robot switching task starts a new history
            if self._task.get(it.robot_id, it.task) != it.task:
                self._forget(it.robot_id)
            self._task[it.robot_id] = it.task
        frames = torch.from_numpy(np.stack([it.frames for it in items]))
        proprio = torch.from_numpy(np.stack([it.proprio for it in items]))
        task = torch.tensor([self.goals.index(it.task) for it in items])
        tokens = self.model.frame_tokens(frames, proprio, task)               # (K, d)
        context = torch.stack([torch.stack(self._history.push(it.robot_id, tokens[k])) for k, it in enumerate(items)])
        sample = self.cfg.head == "gmm" and self.cfg.gmm_eval == "sample"
        gens = [self._generators.get(i) for i in ids] if sample else None
        chunks = self.model.act_from_tokens(context, sample, gens).numpy().astype(np.float64)
        expected = (len(items), self.cfg.action_chunk, ACTION_DIM)
        if chunks.shape != expected or not np.all(np.isfinite(chunks)):
            raise FireworkError(f"the policy produced actions of shape {chunks.shape} "
                                f"(finite: {bool(np.all(np.isfinite(chunks)))}); expected {expected} "
                                f"finite: the checkpoint is broken")
        # Clip each prediction first: a chunk row outside the box must not pull the average.
        chunks = np.clip(chunks, ACTION_LOW, ACTION_HIGH)
        return np.stack([self._ensemble(rid, chunks[k]) for k, rid in enumerate(ids)])


def observation_of(robot: Any) -> Observation:
    """The SimRobot's current observation (the one the last reset/step returned)."""
    if hasattr(robot, "observation"):
        return robot.observation()
    if getattr(robot, "_last_obs", None) is None:
        raise PolicyInputError("the robot has no observation yet: reset it first")
    return robot._to_observation(robot._last_obs)


class LearnedActor:
    """firework_sim.episode.Actor for one SimRobot driven by a PolicyRunner."""

    def __init__(self, runner: PolicyRunner, task: str, robot_id: str = "robot") -> None:
        runner.goals.check_tasks([task])
        self.runner, self.task, self.robot_id = runner, task, robot_id

    def reset(self, env: Any) -> None:
        # Sampling seed from the episode's initial state: the same evaluation seed gives the same
        # episode whichever worker runs it.
        state = np.asarray(env.raw.sim.data.qpos, dtype=np.float64).tobytes() if hasattr(env, "raw") else b""
        self.runner.reset(self.robot_id, seed=zlib.crc32(state))

    def resume(self, env: Any) -> None:
        self.runner.resume(self.robot_id)

    def act(self, env: Any) -> np.ndarray:
        obs = observation_of(env)
        missing = [c for c in self.runner.cameras if c not in obs.images]
        if missing:
            raise PolicyInputError(f"the robot renders cameras {sorted(obs.images)}; the policy needs "
                                   f"{list(self.runner.cameras)} (missing {missing})")
        frames = np.stack([obs.images[c] for c in self.runner.cameras])
        return self.runner.act([(self.robot_id, self.task, frames, obs.proprio())])[0]


class LearnedActorFactory:
    """Picklable maker of LearnedActors for collection workers (firework_sim.collect): each worker
    loads the checkpoint once, on its first episode, with `threads` torch threads."""

    def __init__(self, checkpoint: Path, threads: int = 1) -> None:
        self.checkpoint = Path(checkpoint)
        self.threads = threads
        self._runner: PolicyRunner | None = None

    def __getstate__(self) -> dict:
        return {"checkpoint": self.checkpoint, "threads": self.threads, "_runner": None}

    def runner(self) -> PolicyRunner:
        if self._runner is None:
            torch.set_num_threads(self.threads)
            self._runner = PolicyRunner.from_checkpoint(self.checkpoint)
        return self._runner

    def __call__(self, task: Any) -> LearnedActor:
        name = getattr(task, "name", task)
        return LearnedActor(self.runner(), name, robot_id=f"robot_{name}")
