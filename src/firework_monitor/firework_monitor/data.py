"""Monitor training data, made from round bags: frames, per-step labels, episode splits, chunks."""
from __future__ import annotations

import enum
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from firework_common.episode_bag import read_episode
from firework_common.errors import DataError
from firework_common.manifest import load_manifest
from firework_common.schema import ControlSource, EpisodeOutcome


class StepLabel(enum.IntEnum):
    """The failure predictor's three classes."""

    NORMAL = 0
    FAILURE = 1   # the M steps before a human takeover (or before an unassisted failure's end)
    HUMAN = 2     # a human intervening (demonstrations from reset are NORMAL: nobody intervened)


@dataclass
class EpisodeData:
    task: str
    frames: np.ndarray       # (T, C, H, W, 3) uint8, cameras in the bag's camera order
    sources: np.ndarray      # (T,) ControlSource
    outcome: EpisodeOutcome
    meta: dict
    round_dir: Path

    @property
    def num_steps(self) -> int:
        return len(self.frames)

    @property
    def takeover_step(self) -> int | None:
        """First robot -> human switch, or None."""
        switches = np.flatnonzero((self.sources[1:] == ControlSource.HUMAN)
                                  & (self.sources[:-1] == ControlSource.ROBOT))
        return int(switches[0] + 1) if len(switches) else None

    @property
    def robot_run(self) -> bool:
        """Did a robot act in this episode (as opposed to a demonstration from reset)?"""
        return bool((self.sources == ControlSource.ROBOT).any())


def step_labels(sources: np.ndarray, outcome: EpisodeOutcome, pre_steps: int) -> np.ndarray:
    """Per-step {normal, failure, human} labels from who acted (the paper's c_t).

    Steps a human controls after a robot acted are HUMAN; the `pre_steps` robot steps before each
    robot -> human switch are FAILURE. A robot-only episode that failed gets FAILURE on its last
    `pre_steps` steps: nobody intervened, but that is where it went wrong."""
    sources = np.asarray(sources)
    labels = np.full(len(sources), StepLabel.NORMAL, dtype=np.int64)
    robot_seen = np.cumsum(sources == ControlSource.ROBOT) > 0
    labels[(sources == ControlSource.HUMAN) & robot_seen] = StepLabel.HUMAN
    for switch in np.flatnonzero((sources[1:] == ControlSource.HUMAN) & (sources[:-1] == ControlSource.ROBOT)) + 1:
        lo = max(0, switch - pre_steps)
        window = labels[lo:switch]
        window[window == StepLabel.NORMAL] = StepLabel.FAILURE
    if (outcome is EpisodeOutcome.FAILURE and robot_seen.any()
            and not (sources == ControlSource.HUMAN).any()):
        labels[-pre_steps:] = StepLabel.FAILURE
    return labels


def load_rounds(round_dirs: Sequence[Path], tasks: Sequence[str] | None = None,
                camera_names: Sequence[str] | None = None) -> list[EpisodeData]:
    """All finished episodes of the given rounds (optionally only some tasks)."""
    episodes = []
    for round_dir in round_dirs:
        round_dir = Path(round_dir)
        for rec in load_manifest(round_dir):
            if tasks is not None and rec["task"] not in tasks:
                continue
            ep = read_episode(round_dir / rec["bag"])
            cams = list(camera_names) if camera_names is not None else list(ep.meta["camera_names"])
            missing = [c for c in cams if c not in ep.images]
            if missing:
                raise DataError(f"{ep.path}: no images for camera(s) {missing}; has {sorted(ep.images)}")
            frames = np.stack([ep.images[c] for c in cams], axis=1)
            episodes.append(EpisodeData(ep.task, frames, ep.sources, ep.outcome, ep.meta, round_dir))
    if not episodes:
        raise DataError(f"no episodes found in {', '.join(map(str, round_dirs))}"
                        + (f" for tasks {list(tasks)}" if tasks else ""))
    return episodes


def split_episodes(episodes: list[EpisodeData], fraction: float, seed: int
                   ) -> tuple[list[EpisodeData], list[EpisodeData]]:
    """Per task, hold out `fraction` of the episodes (at least one when a task has two or more)."""
    rng = np.random.default_rng(seed)
    train, held = [], []
    by_task: dict[str, list[EpisodeData]] = {}
    for ep in episodes:
        by_task.setdefault(ep.task, []).append(ep)
    for task_eps in by_task.values():
        order = rng.permutation(len(task_eps))
        n_held = int(round(fraction * len(task_eps)))
        if len(task_eps) >= 2:
            n_held = min(max(n_held, 1), len(task_eps) - 1)
        else:
            n_held = 0
        held += [task_eps[i] for i in order[:n_held]]
        train += [task_eps[i] for i in order[n_held:]]
    return train, held


class ChunkSampler:
    """Random contiguous chunks of `length` frames; short episodes are padded with their last frame
    (the world holds still after an episode ends). `sample` also returns which frames are real, so
    losses can leave the padding out: a padded tail is perfectly predicted by "repeat the last
    latent", and a loss measured relative to that baseline would divide by ~0 there."""

    def __init__(self, episodes: list[EpisodeData], length: int, seed: int) -> None:
        if not episodes:
            raise DataError("no episodes to sample world-model chunks from")
        self.episodes = episodes
        self.length = length
        self.rng = np.random.default_rng(seed)
        weights = np.array([max(ep.num_steps - length + 1, 1) for ep in episodes], dtype=np.float64)
        self.p = weights / weights.sum()

    def sample(self, count: int) -> tuple[np.ndarray, np.ndarray]:
        """-> frames (count, length, C, H, W, 3) uint8 and valid (count, length) bool (False = padding)."""
        out, valid = [], np.ones((count, self.length), dtype=bool)
        for row, i in enumerate(self.rng.choice(len(self.episodes), size=count, p=self.p)):
            frames = self.episodes[i].frames
            start = int(self.rng.integers(0, max(len(frames) - self.length, 0) + 1))
            chunk = frames[start:start + self.length]
            if len(chunk) < self.length:
                valid[row, len(chunk):] = False
                pad = np.repeat(chunk[-1:], self.length - len(chunk), axis=0)
                chunk = np.concatenate([chunk, pad])
            out.append(chunk)
        return np.stack(out), valid
