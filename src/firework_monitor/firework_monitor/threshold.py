"""Adaptive OOD threshold: theta_g = a + b * exp(-c * p_H).

theta_g is the percentile of held-out in-distribution OOD scores above which a state of task g is
flagged; p_H is the task's human intervention ratio in the last round. The paper's intuition: a task
that needed little help (low p_H) gets a looser boundary (higher percentile, fewer flags); a weak task
a tighter one. With b > 0 and c > 0 the curve falls as p_H grows, which is that intuition; the
published constants (a=95.2, b=-17.7, c=3.2) make it rise instead. `fit_threshold_curve` derives
(a, b, c) from data and `direction` says which way a fit goes.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import curve_fit

from firework_monitor.config import ThresholdConfig

PERCENTILE_GRID = np.concatenate([np.arange(50.0, 95.0, 1.0), np.arange(95.0, 99.95, 0.25)])


def theta_curve(p_h: np.ndarray | float, a: float, b: float, c: float) -> np.ndarray:
    return a + b * np.exp(-c * np.asarray(p_h, dtype=np.float64))


def adaptive_percentile(p_h: float, cfg: ThresholdConfig) -> float:
    return float(np.clip(theta_curve(p_h, cfg.a, cfg.b, cfg.c), cfg.min_percentile, cfg.max_percentile))


def direction(a: float, b: float, c: float) -> str:
    """'falls' (the paper's stated intuition), 'rises' (the published constants) or 'flat'."""
    slope = -b * c  # d theta / d p_H at p_H = 0, same sign everywhere
    if abs(slope) < 1e-9:
        return "flat"
    return "falls" if slope < 0 else "rises"


def best_percentile(scores: np.ndarray, needs_human: np.ndarray, validation_scores: np.ndarray,
                    grid: np.ndarray = PERCENTILE_GRID) -> tuple[float, float]:
    """The percentile whose flags (score above that percentile of the held-out scores) best match
    the steps where a human was needed (F1). -> (percentile, F1)."""
    needs_human = np.asarray(needs_human, dtype=bool)
    best = (float(grid[-1]), -1.0)
    for theta in grid:
        flags = scores > np.percentile(validation_scores, theta)
        tp = np.sum(flags & needs_human)
        precision = tp / max(flags.sum(), 1)
        recall = tp / max(needs_human.sum(), 1)
        f1 = 0.0 if tp == 0 else 2 * precision * recall / (precision + recall)
        if f1 > best[1]:
            best = (float(theta), float(f1))
    return best


@dataclass
class CurveFit:
    a: float
    b: float
    c: float
    rmse: float

    @property
    def direction(self) -> str:
        return direction(self.a, self.b, self.c)


def fit_threshold_curve(p_h: np.ndarray, theta: np.ndarray, c_max: float = 50.0) -> CurveFit:
    """Least-squares fit of theta = a + b exp(-c p_H) through per-task (p_H, best percentile) points."""
    p_h, theta = np.asarray(p_h, dtype=np.float64), np.asarray(theta, dtype=np.float64)
    if len(p_h) < 3:
        raise ValueError(f"fitting (a, b, c) needs at least 3 (p_H, theta) points, got {len(p_h)}")
    best = None
    # The exponential fit has local minima in c: start from several decay rates.
    for c0 in (0.5, 2.0, 5.0, 15.0):
        try:
            params, _ = curve_fit(theta_curve, p_h, theta, p0=(theta.mean(), 0.0, c0),
                                  bounds=([-np.inf, -np.inf, 0.0], [np.inf, np.inf, c_max]), maxfev=20000)
        except RuntimeError:
            continue
        rmse = float(np.sqrt(np.mean((theta_curve(p_h, *params) - theta) ** 2)))
        if best is None or rmse < best.rmse:
            best = CurveFit(*map(float, params), rmse)
    if best is None:
        raise ValueError("the threshold curve fit did not converge")
    return best
