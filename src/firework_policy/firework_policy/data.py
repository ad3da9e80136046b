"""Policy training data from round bags: labelled steps, Sirius weighting, context windows.

Every recorded step is a behaviour-cloning sample (observation -> executed action) with a label:
demo (operator episode from reset), robot (the robot acted), human (an operator intervening after
the robot acted) or pre-intervention (the robot steps just before a takeover).

Windows: a training sample is a window of `context` consecutive steps of one episode; causal
attention lets every step of the window be a target, so each encoded frame is used once. Windows
reach `context - 1` steps before an episode's start (padded with its first frame, exactly as the
runtime pads a robot's history) and past its end (padding that only later, masked positions see),
so every step is in exactly `context` windows. Each step's target is the chunk of the next
`chunk` executed actions of its episode (masked past the episode's end). A window is drawn with probability proportional to
the summed weight q of its steps, and step j of a drawn window gets loss weight q_j / (window sum):
the expected loss mass of each step is then proportional to its q, whatever its neighbours are.
q per label = configured share / count of that label, so the shares are what the config says.
"""
from __future__ import annotations

import enum
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from firework_common.episode_bag import read_episode
from firework_common.errors import DataError
from firework_common.manifest import load_manifest
from firework_common.schema import ACTION_DIM, PROPRIO_DIM, ControlSource
from firework_policy.config import WeightingConfig


class SampleLabel(enum.IntEnum):
    DEMO = 0
    ROBOT = 1
    HUMAN = 2              # an intervention: a human acting after the robot did
    PRE_INTERVENTION = 3   # the robot steps just before a robot -> human switch


LABEL_NAMES = {label: label.name.lower().replace("_", "-") for label in SampleLabel}


def is_demonstration(meta: dict, sources: np.ndarray) -> bool:
    """An operator episode from reset: recorded with policy 'operator', or no robot step at all."""
    return meta.get("policy") == "operator" or not (np.asarray(sources) == ControlSource.ROBOT).any()


def sample_labels(sources: np.ndarray, demonstration: bool, pre_steps: int) -> np.ndarray:
    """Per-step SampleLabel from who acted (the paper's c_t)."""
    sources = np.asarray(sources)
    n = len(sources)
    if demonstration:
        return np.full(n, SampleLabel.DEMO, dtype=np.int8)
    labels = np.full(n, SampleLabel.DEMO, dtype=np.int8)   # human steps before any robot step
    robot = sources == ControlSource.ROBOT
    robot_seen = np.cumsum(robot) > 0
    labels[robot] = SampleLabel.ROBOT
    labels[(sources == ControlSource.HUMAN) & robot_seen] = SampleLabel.HUMAN
    for switch in np.flatnonzero((sources[1:] == ControlSource.HUMAN) & robot[:-1]) + 1:
        window = labels[max(0, switch - pre_steps):switch]
        window[window == SampleLabel.ROBOT] = SampleLabel.PRE_INTERVENTION
    return labels


@dataclass
class PolicyEpisode:
    task: str
    frames: np.ndarray     # (T, cameras, H, W, 3) uint8
    proprio: np.ndarray    # (T, 9) float32
    actions: np.ndarray    # (T, 7) float32, the executed actions
    labels: np.ndarray     # (T,) SampleLabel
    path: Path

    @property
    def num_steps(self) -> int:
        return len(self.actions)


def load_policy_episode(path: Path, cameras: Sequence[str], image_size: int, pre_steps: int) -> PolicyEpisode:
    """Read one bag and check it can train the policy; DataError names what is wrong."""
    ep = read_episode(path)   # DataError for unfinished bags and bags without actions
    n = ep.num_steps
    missing = [c for c in cameras if c not in ep.images]
    if missing:
        raise DataError(f"{path}: no images for camera(s) {missing}; the bag has {sorted(ep.images)}")
    for cam in cameras:
        imgs = ep.images[cam]
        if imgs.shape[1:] != (image_size, image_size, 3):
            raise DataError(f"{path}: camera {cam!r} images are {imgs.shape[1]}x{imgs.shape[2]}x"
                            f"{imgs.shape[3]}; the policy expects {image_size}x{image_size}x3")
        if len(imgs) != n:
            raise DataError(f"{path}: {len(imgs)} {cam!r} images but {n} actions; every step needs both")
    proprio = ep.proprio()
    if len(proprio) != n or len(ep.sources) != n:
        raise DataError(f"{path}: {n} actions but {len(proprio)} robot states and {len(ep.sources)} "
                        f"control sources; every step needs all three")
    if ep.actions.shape[1:] != (ACTION_DIM,) or proprio.shape[1:] != (PROPRIO_DIM,):
        raise DataError(f"{path}: actions are {ep.actions.shape[1:]} and proprio {proprio.shape[1:]}; "
                        f"expected ({ACTION_DIM},) and ({PROPRIO_DIM},)")
    if not (np.isfinite(ep.actions).all() and np.isfinite(proprio).all()):
        raise DataError(f"{path}: actions or robot states contain NaN or inf")
    labels = sample_labels(ep.sources, is_demonstration(ep.meta, ep.sources), pre_steps)
    frames = np.stack([ep.images[c] for c in cameras], axis=1)
    return PolicyEpisode(ep.task, frames, proprio, ep.actions.astype(np.float32), labels, Path(path))


def load_policy_rounds(round_dirs: Sequence[Path], cameras: Sequence[str], image_size: int,
                       pre_steps: int, tasks: Sequence[str] | None = None,
                       show_progress: bool = False) -> list[PolicyEpisode]:
    """All finished episodes of the given rounds (optionally only some tasks)."""
    from tqdm import tqdm

    bags = []
    for round_dir in round_dirs:
        for rec in load_manifest(Path(round_dir)):
            if tasks is None or rec["task"] in tasks:
                bags.append(Path(round_dir) / rec["bag"])
    if not bags:
        raise DataError(f"no episodes found in {', '.join(map(str, round_dirs))}"
                        + (f" for tasks {list(tasks)}" if tasks else ""))
    return [load_policy_episode(b, cameras, image_size, pre_steps)
            for b in tqdm(bags, desc="read bags", unit="bag", file=sys.stderr, disable=not show_progress,
                          dynamic_ncols=True)]


def split_episodes(episodes: list[PolicyEpisode], fraction: float, seed: int
                   ) -> tuple[list[PolicyEpisode], list[PolicyEpisode]]:
    """Per task, hold out `fraction` of the episodes (never a task's last one)."""
    if fraction <= 0:
        return list(episodes), []
    rng = np.random.default_rng(seed)
    by_task: dict[str, list[PolicyEpisode]] = {}
    for ep in episodes:
        by_task.setdefault(ep.task, []).append(ep)
    train, held = [], []
    for eps in by_task.values():
        order = rng.permutation(len(eps))
        n_held = min(max(int(round(fraction * len(eps))), 1), len(eps) - 1)
        held += [eps[i] for i in order[:n_held]]
        train += [eps[i] for i in order[n_held:]]
    return train, held


def label_counts(labels: np.ndarray) -> dict[SampleLabel, int]:
    return {label: int((labels == label).sum()) for label in SampleLabel}


def label_shares(counts: dict[SampleLabel, int], cfg: WeightingConfig) -> dict[SampleLabel, float]:
    """The share of the loss mass each label gets under `cfg` (0 for labels with no steps)."""
    if cfg.mode == "uniform":
        total = sum(counts.values())
        return {label: counts[label] / total if total else 0.0 for label in SampleLabel}
    per_step = {SampleLabel.DEMO: cfg.demo_weight, SampleLabel.ROBOT: cfg.robot_weight,
                SampleLabel.PRE_INTERVENTION: cfg.pre_intervention_weight}
    rest = {label: counts[label] * w for label, w in per_step.items()}
    rest_total = sum(rest.values())
    human_share = cfg.human_share if counts[SampleLabel.HUMAN] else 0.0
    if rest_total == 0:
        human_share = 1.0 if counts[SampleLabel.HUMAN] else 0.0
    shares = {label: (1.0 - human_share) * m / rest_total if rest_total else 0.0 for label, m in rest.items()}
    shares[SampleLabel.HUMAN] = human_share
    return shares


def step_weights(labels: np.ndarray, cfg: WeightingConfig, tasks: np.ndarray | None = None) -> np.ndarray:
    """q per step: label share / label count (sums to 1 over all steps).

    With `tasks` (a task id per step) and `cfg.per_task`, the shares apply within each task and each
    task's steps keep the mass they have under uniform weighting (their share of all steps).
    """
    if tasks is not None and cfg.per_task and cfg.mode == "sirius":
        if len(tasks) != len(labels):
            raise ValueError(f"tasks has {len(tasks)} entries for {len(labels)} labels")
        q = np.zeros(len(labels), dtype=np.float64)
        for task in np.unique(tasks):
            mine = tasks == task
            q[mine] = step_weights(labels[mine], cfg) * (mine.sum() / len(labels))
        return q
    counts = label_counts(labels)
    shares = label_shares(counts, cfg)
    q = np.zeros(len(labels), dtype=np.float64)
    for label in SampleLabel:
        if counts[label]:
            q[labels == label] = shares[label] / counts[label]
    return q


def mass_shares(labels: np.ndarray, q: np.ndarray) -> dict[SampleLabel, float]:
    """The share of the loss mass each label carries under per-step weights q."""
    total = q.sum()
    return {label: float(q[labels == label].sum() / total) if total else 0.0 for label in SampleLabel}


@dataclass
class Batch:
    index: np.ndarray      # (B, T) step indices into the dataset (padding repeats the edge step)
    weights: np.ndarray    # (B, T) loss weights (0 on padding); each window sums to 1
    task: np.ndarray       # (B,) goal-table row
    episode_end: np.ndarray  # (B,) index of the last step of each window's episode


class PolicyDataset:
    """The episodes' steps in flat arrays, and a sampler of weighted context windows over them."""

    def __init__(self, episodes: list[PolicyEpisode], task_names: Sequence[str], context: int,
                 weighting: WeightingConfig, seed: int, chunk: int = 1) -> None:
        if not episodes:
            raise DataError("no episodes to train the policy on")
        unknown = sorted({ep.task for ep in episodes} - set(task_names))
        if unknown:
            raise DataError(f"episodes of task(s) {unknown} but the policy's tasks are {list(task_names)}")
        if chunk < 1:
            raise ValueError(f"chunk must be >= 1, got {chunk}")
        self.context, self.chunk = context, chunk
        self.frames = np.concatenate([ep.frames for ep in episodes])
        self.proprio = np.concatenate([ep.proprio for ep in episodes])
        self.actions = np.concatenate([ep.actions for ep in episodes])
        self.labels = np.concatenate([ep.labels for ep in episodes])
        lengths = np.array([ep.num_steps for ep in episodes])
        starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
        ends = starts + lengths - 1
        task_rows = np.array([list(task_names).index(ep.task) for ep in episodes])
        self.step_task = np.repeat(task_rows, lengths)
        self.q = step_weights(self.labels, weighting, self.step_task)
        if self.q.sum() <= 0:
            raise DataError(f"no step has a positive weight under weighting {weighting}; label counts "
                            f"{self.counts()}")
        # Windows: first step f in [start - context + 1, end] of every episode.
        n_win = lengths + context - 1
        ep_of_win = np.repeat(np.arange(len(episodes)), n_win)
        offset = np.arange(n_win.sum()) - np.repeat(np.cumsum(n_win) - n_win, n_win)
        self.win_first = starts[ep_of_win] - context + 1 + offset
        self.win_start, self.win_end = starts[ep_of_win], ends[ep_of_win]
        self.win_task = task_rows[ep_of_win]
        cum = np.concatenate([[0.0], np.cumsum(self.q)])
        lo = np.maximum(self.win_first, self.win_start)
        hi = np.minimum(self.win_first + context - 1, self.win_end)
        mass = cum[hi + 1] - cum[lo]
        self.win_mass = mass
        self.win_p = mass / mass.sum()
        self.rng = np.random.default_rng(seed)

    @property
    def num_steps(self) -> int:
        return len(self.labels)

    def counts(self) -> dict[str, int]:
        return {LABEL_NAMES[k]: v for k, v in label_counts(self.labels).items()}

    def sample(self, batch_size: int) -> Batch:
        w = self.rng.choice(len(self.win_p), size=batch_size, p=self.win_p)
        j = self.win_first[w, None] + np.arange(self.context)
        start, end = self.win_start[w, None], self.win_end[w, None]
        valid = (j >= start) & (j <= end)
        index = np.clip(j, start, end)
        weights = np.where(valid, self.q[index], 0.0) / self.win_mass[w, None]
        return Batch(index, weights.astype(np.float32), self.win_task[w], self.win_end[w])

    def tensors(self, batch: Batch):
        """-> torch (frames uint8 (B,T,C,H,W,3), proprio (B,T,9), task (B,), action chunks (B,T,k,7),
        weights (B,T), chunk mask (B,T,k))."""
        import torch

        future = batch.index[..., None] + np.arange(self.chunk)                 # (B, T, k)
        end = batch.episode_end[:, None, None]
        chunk_mask = (future <= end).astype(np.float32)
        actions = self.actions[np.minimum(future, end)]
        return (torch.from_numpy(self.frames[batch.index]), torch.from_numpy(self.proprio[batch.index]),
                torch.from_numpy(batch.task), torch.from_numpy(actions),
                torch.from_numpy(batch.weights), torch.from_numpy(chunk_mask))

    def statistics(self) -> dict[str, np.ndarray]:
        return {"proprio_mean": self.proprio.mean(0), "proprio_std": self.proprio.std(0),
                "action_mean": self.actions.mean(0), "action_std": self.actions.std(0)}


def realized_shares(dataset: PolicyDataset, batches: int, batch_size: int) -> dict[str, float]:
    """The loss-mass share of each label over `batches` sampled batches (what training sees)."""
    mass = np.zeros(len(SampleLabel))
    for _ in range(batches):
        b = dataset.sample(batch_size)
        np.add.at(mass, dataset.labels[b.index].ravel(), b.weights.ravel())
    mass /= mass.sum()
    return {LABEL_NAMES[label]: float(mass[label]) for label in SampleLabel}
