"""Fit theta_g = a + b exp(-c p_H) from episodes of several tasks.

Per task: replay the monitor on its episodes, find the OOD percentile whose flags best match the
steps where a human was actually needed (the M steps before a takeover and the takeover itself),
and measure the task's intervention ratio p_H. Then fit the curve through the per-task points.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch

from firework_monitor.config import ThresholdConfig
from firework_monitor.data import EpisodeData, StepLabel
from firework_monitor.evaluate import trace_episode
from firework_monitor.predictors import ErrorPredictors, intervention_ratio
from firework_monitor.threshold import best_percentile, fit_threshold_curve
from firework_monitor.world_model import WorldModel


def fit_adaptive_threshold(model: WorldModel, predictors: ErrorPredictors, episodes: Sequence[EpisodeData],
                           seed: int = 0) -> tuple[ThresholdConfig, dict[str, Any]]:
    gen = torch.Generator().manual_seed(seed)
    points = {}
    for task in sorted({ep.task for ep in episodes}):
        task_eps = [ep for ep in episodes if ep.task == task and ep.robot_run]
        if not task_eps:
            continue
        traces = [trace_episode(model, predictors, ep, gen) for ep in task_eps]
        scores = np.concatenate([t.ood_score for t in traces])
        needs_human = np.isin(np.concatenate([t.labels for t in traces]), (StepLabel.FAILURE, StepLabel.HUMAN))
        theta, f1 = best_percentile(scores, needs_human, predictors.get(task).ood.validation_scores)
        points[task] = {"p_h": intervention_ratio(task_eps), "best_percentile": theta, "f1": f1}
    p_h = np.array([p["p_h"] for p in points.values()])
    theta = np.array([p["best_percentile"] for p in points.values()])
    fit = fit_threshold_curve(p_h, theta)
    old = predictors.threshold_cfg
    cfg = ThresholdConfig(a=fit.a, b=fit.b, c=fit.c, min_percentile=old.min_percentile,
                          max_percentile=old.max_percentile)
    report = {"a": fit.a, "b": fit.b, "c": fit.c, "rmse": fit.rmse, "direction": fit.direction,
              "matches_paper_intuition": fit.direction == "falls", "points": points,
              "published_constants": {"a": 95.2, "b": -17.7, "c": 3.2, "direction": "rises"}}
    return cfg, report
