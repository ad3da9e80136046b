"""The fleet monitor: one batched call per control tick for all robots.

frames of K robots in -> per robot: failure probability, OOD score, OOD threshold, flag, and which
predictor fired. The monitor node and the in-process fleet call exactly this. A robot whose input
is unusable (wrong frame size, layout or dtype, NaNs in proprioception, unknown task) gets a flagged
"cannot assess" estimate; the tick never raises for one robot's bad input.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from firework_common.robot_history import RobotHistories
from firework_monitor.data import StepLabel
from firework_monitor.failure import FailureFilter, predict_proba
from firework_monitor.predictors import ErrorPredictors
from firework_monitor.world_model import WorldModel

FIRED_FAILURE = "failure"
FIRED_OOD = "ood"
FIRED_INVALID = "cannot_assess"


@dataclass(frozen=True)
class RobotInput:
    robot_id: str
    task: str
    frames: np.ndarray                 # (cameras, H, W, 3) uint8 RGB
    proprio: np.ndarray | None = None  # optional; checked for NaN/inf


@dataclass(frozen=True)
class RiskEstimate:
    robot_id: str
    task: str
    valid: bool
    failure_probability: float
    ood_score: float
    ood_threshold: float
    ood_percentile: float
    flag: bool
    fired: tuple[str, ...]             # subset of (failure, ood) or (cannot_assess,)
    reason: str = ""                   # why an estimate is invalid


class FleetMonitor:
    def __init__(self, world_model: WorldModel, predictors: ErrorPredictors, seed: int = 0) -> None:
        self.model = world_model.eval()
        self.predictors = predictors
        self.cfg = world_model.cfg
        self.expected_frame_shape = (self.cfg.num_cameras, self.cfg.image_size, self.cfg.image_size, 3)
        # One latent history per robot, long enough for the dynamics (the last `history`) and for
        # the failure classifier's observed-motion window (the last motion_lookback + 1).
        self._failure_window = predictors.failure_cfg.motion_lookback + 1
        self._history = RobotHistories(max(self.cfg.history, self._failure_window))
        self._filters: dict[str, FailureFilter] = {}
        self._generator = torch.Generator().manual_seed(seed)

    def reset(self, robot_id: str) -> None:
        """Forget a robot's history (new episode)."""
        self._history.forget(robot_id)
        self._filters.pop(robot_id, None)

    def check_input(self, item: RobotInput) -> str:
        """'' if usable, else a message naming the field and the expected value."""
        f = item.frames
        if not isinstance(f, np.ndarray):
            return f"frames must be a numpy array, got {type(f).__name__}"
        if f.dtype != np.uint8:
            return f"frames dtype is {f.dtype}; expected uint8"
        if f.shape != self.expected_frame_shape:
            hint = " (channels first? expected channels last, RGB)" if f.ndim == 4 and f.shape[1] == 3 else ""
            return f"frames shape is {f.shape}; expected {self.expected_frame_shape}{hint}"
        if item.proprio is not None and not np.all(np.isfinite(item.proprio)):
            return "proprio contains NaN or inf"
        if item.task not in self.predictors.tasks:
            return f"unknown task {item.task!r}; fitted tasks: {', '.join(sorted(self.predictors.tasks))}"
        return ""

    @torch.no_grad()
    def tick(self, inputs: Sequence[RobotInput]) -> list[RiskEstimate]:
        results: list[RiskEstimate | None] = [None] * len(inputs)
        valid_idx = []
        for i, item in enumerate(inputs):
            problem = self.check_input(item)
            if problem:
                results[i] = RiskEstimate(item.robot_id, item.task, False, float("nan"), float("nan"),
                                          float("nan"), float("nan"), True, (FIRED_INVALID,), problem)
            else:
                valid_idx.append(i)
        if valid_idx:
            frames = torch.from_numpy(np.stack([inputs[i].frames for i in valid_idx]))
            z = self.model.encode(frames)                                       # (K, D)
            hist = torch.stack([torch.stack(self._history.push(inputs[i].robot_id, z[j]))
                                for j, i in enumerate(valid_idx)])                 # (K, window, D)
            future_z, _ = self.model.imagine(hist[:, -self.cfg.history:], generator=self._generator)
            last_z = future_z[:, :, -1]                                          # (K, N, D)
            recent = hist[:, -self._failure_window:]
            for j, i in enumerate(valid_idx):
                results[i] = self._assess(inputs[i], recent[j:j + 1], last_z[j:j + 1])
        return results  # type: ignore[return-value]

    def _assess(self, item: RobotInput, recent_z, future_z) -> RiskEstimate:
        tp = self.predictors.tasks[item.task]
        proba = predict_proba(tp.classifier, recent_z, future_z)[0]
        failure_filter = self._filters.setdefault(item.robot_id, FailureFilter(self.predictors.failure_cfg))
        proba, failure_flag = failure_filter.update(proba)
        score = float(tp.ood.score(future_z)[0])
        percentile = tp.ood_percentile(self.predictors.threshold_cfg)
        threshold = tp.ood.threshold(percentile)
        fired = tuple(name for name, hit in ((FIRED_FAILURE, failure_flag), (FIRED_OOD, score > threshold))
                      if hit)
        return RiskEstimate(item.robot_id, item.task, True, float(proba[StepLabel.FAILURE]), score,
                            threshold, percentile, bool(fired), fired)
