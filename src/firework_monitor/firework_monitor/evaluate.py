"""Offline evaluation of the monitor on recorded episodes.

For each episode the runtime's computation is replayed step by step (same padded history, same N
futures, same flag rule), then compared with what happened:
  - failure AUROC: P(failure) on robot-controlled steps, positives = the M steps before a takeover
    (or before the end of an unassisted failure), negatives = the other robot steps;
  - events: each takeover, and each failure nobody intervened in (at its last step);
  - flag recall: events with a flag onset in the `window` steps before them;
  - flag precision: flag onsets followed by an event within `window` steps;
  - lead time: steps from the first flag in the window to the event;
  - OOD AUROC: OOD scores of episodes with unseen visual changes vs in-distribution episodes.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch
from sklearn.metrics import roc_auc_score

from firework_common.schema import ControlSource, EpisodeOutcome
from firework_monitor.data import EpisodeData, StepLabel, step_labels
from firework_monitor.embed import embed_episode, padded_histories
from firework_monitor.failure import FailureFilter, predict_proba
from firework_monitor.predictors import ErrorPredictors
from firework_monitor.world_model import WorldModel


@dataclass
class EpisodeTrace:
    task: str
    failure_probability: np.ndarray
    ood_score: np.ndarray
    failure_flag: np.ndarray
    ood_flag: np.ndarray
    labels: np.ndarray
    robot_steps: np.ndarray       # bool: the robot acted
    events: list[int]

    @property
    def flag(self) -> np.ndarray:
        return self.failure_flag | self.ood_flag


def episode_events(ep: EpisodeData) -> list[int]:
    s = ep.sources
    events = list(np.flatnonzero((s[1:] == ControlSource.HUMAN) & (s[:-1] == ControlSource.ROBOT)) + 1)
    if ep.outcome is EpisodeOutcome.FAILURE and ep.robot_run and not (s == ControlSource.HUMAN).any():
        events.append(ep.num_steps - 1)
    return [int(e) for e in events]


def trace_episode(model: WorldModel, predictors: ErrorPredictors, ep: EpisodeData,
                  generator: torch.Generator) -> EpisodeTrace:
    tp = predictors.get(ep.task)
    emb = embed_episode(model, ep, model.cfg.futures, generator)
    fcfg = predictors.failure_cfg
    proba = predict_proba(tp.classifier, padded_histories(emb.z, fcfg.motion_lookback + 1), emb.future_z)
    failure_filter = FailureFilter(fcfg)
    smoothed, failure_flag = zip(*(failure_filter.update(p) for p in proba))
    proba, failure_flag = np.stack(smoothed), np.array(failure_flag)
    ood = tp.ood.score(emb.future_z)
    threshold = tp.ood.threshold(tp.ood_percentile(predictors.threshold_cfg))
    labels = step_labels(ep.sources, ep.outcome, predictors.failure_cfg.pre_intervention_steps)
    return EpisodeTrace(ep.task, proba[:, StepLabel.FAILURE], ood, failure_flag, ood > threshold, labels,
                        ep.sources == ControlSource.ROBOT, episode_events(ep))


def _auroc(scores: np.ndarray, positive: np.ndarray) -> float | None:
    if positive.all() or not positive.any():
        return None
    return float(roc_auc_score(positive, scores))


def flag_metrics(traces: Sequence[EpisodeTrace], window: int, which: str = "flag") -> dict[str, Any]:
    events = detected = onsets = true_onsets = 0
    leads = []
    for tr in traces:
        flag = getattr(tr, which) & tr.robot_steps
        onset_steps = np.flatnonzero(flag & ~np.concatenate([[False], flag[:-1]]))
        onsets += len(onset_steps)
        for o in onset_steps:
            true_onsets += any(0 <= e - o <= window for e in tr.events)
        for e in tr.events:
            events += 1
            before = np.flatnonzero(flag[max(0, e - window):e + 1])
            if len(before):
                detected += 1
                leads.append(e - (max(0, e - window) + before[0]))
    return {"events": events, "recall": detected / events if events else None,
            "flag_onsets": onsets, "precision": true_onsets / onsets if onsets else None,
            "mean_lead_steps": float(np.mean(leads)) if leads else None}


def evaluate_monitor(model: WorldModel, predictors: ErrorPredictors, episodes: Sequence[EpisodeData],
                     ood_episodes: Sequence[EpisodeData] = (), window: int | None = None,
                     seed: int = 0) -> dict[str, Any]:
    gen = torch.Generator().manual_seed(seed)
    window = window if window is not None else 2 * predictors.failure_cfg.pre_intervention_steps
    traces = [trace_episode(model, predictors, ep, gen) for ep in episodes]
    ood_traces = [trace_episode(model, predictors, ep, gen) for ep in ood_episodes]
    out: dict[str, Any] = {"window_steps": window, "tasks": {}}
    for task in sorted({t.task for t in traces} | {t.task for t in ood_traces}):
        tt = [t for t in traces if t.task == task]
        row: dict[str, Any] = {"episodes": len(tt)}
        if tt:
            robot = np.concatenate([t.robot_steps for t in tt])
            labels = np.concatenate([t.labels for t in tt])[robot]
            scores = np.concatenate([t.failure_probability for t in tt])[robot]
            keep = labels != StepLabel.HUMAN
            row["failure_auroc"] = _auroc(scores[keep], labels[keep] == StepLabel.FAILURE)
            row["flags"] = flag_metrics(tt, window)
            row["failure_flags"] = flag_metrics(tt, window, "failure_flag")
            row["ood_flags"] = flag_metrics(tt, window, "ood_flag")
        ot = [t for t in ood_traces if t.task == task]
        if ot and tt:
            ind = np.concatenate([t.ood_score for t in tt])
            odd = np.concatenate([t.ood_score for t in ot])
            row["ood_auroc"] = _auroc(np.concatenate([ind, odd]),
                                      np.concatenate([np.zeros(len(ind), bool), np.ones(len(odd), bool)]))
            row["ood_episodes"] = len(ot)
            row["ood_flag_rate_unseen"] = float(np.mean(np.concatenate([t.ood_flag for t in ot])))
            row["ood_flag_rate_in_distribution"] = float(np.mean(np.concatenate([t.ood_flag for t in tt])))
        out["tasks"][task] = row
    aurocs = [r["failure_auroc"] for r in out["tasks"].values() if r.get("failure_auroc") is not None]
    leads = [r["flags"]["mean_lead_steps"] for r in out["tasks"].values()
             if r.get("flags", {}).get("mean_lead_steps") is not None]
    out["mean_failure_auroc"] = float(np.mean(aurocs)) if aurocs else None
    out["mean_lead_steps"] = float(np.mean(leads)) if leads else None
    ood = [r["ood_auroc"] for r in out["tasks"].values() if r.get("ood_auroc") is not None]
    out["mean_ood_auroc"] = float(np.mean(ood)) if ood else None
    out["overall_flags"] = flag_metrics(traces, window)
    return out
