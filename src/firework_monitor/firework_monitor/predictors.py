"""The error predictors of all tasks, fitted on a frozen world model, saved as one checkpoint."""
from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from firework_common.checkpoint import load_checkpoint, save_checkpoint
from firework_common.config import from_dict, to_dict
from firework_common.errors import DataError, UsageError
from firework_monitor.config import FailureConfig, MonitorConfig, OODConfig, ThresholdConfig
from firework_monitor.data import EpisodeData, StepLabel, load_rounds, split_episodes, step_labels
from firework_monitor.embed import EpisodeEmbedding, embed_episode, padded_histories
from firework_monitor.failure import FailureClassifier, train_classifier
from firework_monitor.ood import OODDetector
from firework_monitor.threshold import adaptive_percentile
from firework_monitor.world_model import WorldModel

CHECKPOINT_NAME = "predictors"
CHECKPOINT_KIND = "firework.error_predictors"
FEATURE_VERSION = 2     # 2: the failure classifier also sees the observed recent motion


@dataclass
class TaskPredictors:
    classifier: FailureClassifier
    ood: OODDetector
    intervention_ratio: float     # p_H of the task in the newest round

    def ood_percentile(self, cfg: ThresholdConfig) -> float:
        return adaptive_percentile(self.intervention_ratio, cfg)


@dataclass
class ErrorPredictors:
    tasks: dict[str, TaskPredictors]
    failure_cfg: FailureConfig
    ood_cfg: OODConfig
    threshold_cfg: ThresholdConfig
    world_model_config: dict[str, Any]

    def get(self, task: str) -> TaskPredictors:
        try:
            return self.tasks[task]
        except KeyError:
            raise UsageError(f"no error predictors for task {task!r}; fitted tasks: "
                             f"{', '.join(sorted(self.tasks))}") from None

    def save(self, directory: Path, meta: dict[str, Any] | None = None) -> None:
        tensors: dict[str, Any] = {}
        tasks_meta = {}
        for name, tp in self.tasks.items():
            for k, v in tp.classifier.state_dict().items():
                tensors[f"{name}.classifier.{k}"] = v
            for k, v in tp.ood.tensors(f"{name}.ood").items():
                tensors[k] = torch.from_numpy(np.ascontiguousarray(v))
            tasks_meta[name] = {"intervention_ratio": tp.intervention_ratio,
                                "ood_percentile": tp.ood_percentile(self.threshold_cfg),
                                "latent_dim": tp.classifier.latent_dim,
                                "feature_dims": tp.classifier.feature_dims,
                                "feature_version": FEATURE_VERSION}
        config = {"failure": to_dict(self.failure_cfg), "ood": to_dict(self.ood_cfg),
                  "threshold": to_dict(self.threshold_cfg), "world_model": self.world_model_config,
                  "tasks": tasks_meta}
        save_checkpoint(directory, CHECKPOINT_NAME, tensors, CHECKPOINT_KIND, config, meta)

    @classmethod
    def load(cls, directory: Path, world_model: WorldModel | None = None) -> "ErrorPredictors":
        from firework_common.checkpoint import check_config_matches

        tensors, config, _ = load_checkpoint(directory, CHECKPOINT_NAME, CHECKPOINT_KIND)
        if world_model is not None:
            check_config_matches(config["world_model"], to_dict(world_model.cfg),
                                 f"{directory}/{CHECKPOINT_NAME}.json: world_model (the predictors were "
                                 f"fitted on another world model)")
        failure_cfg = from_dict(FailureConfig, config["failure"], "predictors.json:failure")
        tasks = {}
        for name, tmeta in config["tasks"].items():
            if tmeta.get("feature_version") != FEATURE_VERSION:
                raise DataError(f"{directory}/{CHECKPOINT_NAME}.json: tasks.{name} has failure-classifier "
                                f"feature_version {tmeta.get('feature_version')!r}, expected {FEATURE_VERSION} "
                                f"(fitted by an older version on other inputs); refit with `firework monitor fit`")
            clf = FailureClassifier(tmeta["latent_dim"], tmeta["feature_dims"], failure_cfg.hidden_dim,
                                    failure_cfg.dropout)
            prefix = f"{name}.classifier."
            clf.load_state_dict({k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)})
            clf.eval().requires_grad_(False)
            tasks[name] = TaskPredictors(clf, OODDetector.from_tensors(tensors, f"{name}.ood"),
                                         float(tmeta["intervention_ratio"]))
        return cls(tasks, failure_cfg, from_dict(OODConfig, config["ood"], "predictors.json:ood"),
                   from_dict(ThresholdConfig, config["threshold"], "predictors.json:threshold"),
                   config["world_model"])


def intervention_ratio(episodes: Sequence[EpisodeData]) -> float:
    """p_H: share of steps a human intervened on, over episodes where a robot acted."""
    runs = [ep for ep in episodes if ep.robot_run]
    total = sum(ep.num_steps for ep in runs)
    if total == 0:
        return 1.0   # nothing deployed yet: treat as fully supervised (round 0)
    human = sum(int(np.sum(step_labels(ep.sources, ep.outcome, 0) == StepLabel.HUMAN)) for ep in runs)
    return human / total


def embed_all(model: WorldModel, episodes: Sequence[EpisodeData], futures: int, seed: int,
              show_progress: bool = True) -> list[EpisodeEmbedding]:
    from tqdm import tqdm

    gen = torch.Generator().manual_seed(seed)
    return [embed_episode(model, ep, futures, gen)
            for ep in tqdm(episodes, desc="embed episodes", unit="ep", file=sys.stderr,
                           disable=not show_progress, dynamic_ncols=True)]


def fit_predictors_on_rounds(model: WorldModel, round_dirs: Sequence[Path], mcfg: MonitorConfig,
                             previous: ErrorPredictors | None = None, tasks: Sequence[str] | None = None,
                             show_progress: bool = True) -> tuple[ErrorPredictors, dict[str, Any]]:
    """`fit_predictors` on the episodes of `round_dirs` (oldest first; the last is the newest)."""
    return fit_predictors(model, load_rounds(round_dirs, tasks), Path(round_dirs[-1]), mcfg, previous,
                          show_progress)


def fit_predictors(model: WorldModel, episodes: Sequence[EpisodeData], newest: Path, mcfg: MonitorConfig,
                   previous: ErrorPredictors | None = None, show_progress: bool = True
                   ) -> tuple[ErrorPredictors, dict[str, Any]]:
    """Fit failure classifiers, OOD detectors and p_H for every task in `episodes`.

    The OOD detector covers all data so far. The failure classifier trains on all of it; with
    `previous`, it instead starts from the previous classifier and is fine-tuned on the newest
    round's episodes (those recorded in `newest`), as in the paper. p_H comes from the newest round."""
    futures = model.cfg.futures
    report: dict[str, Any] = {}
    fitted = {}
    for task in sorted({ep.task for ep in episodes}):
        task_eps = [ep for ep in episodes if ep.task == task]
        train_eps, val_eps = split_episodes(task_eps, mcfg.ood.validation_fraction, mcfg.ood.seed)
        if not val_eps:
            raise DataError(f"task {task}: needs at least 2 episodes (one held out for the OOD threshold)")
        emb = dict(zip(map(id, task_eps), embed_all(model, task_eps, futures, mcfg.ood.seed, show_progress)))
        ood = OODDetector.fit(np.concatenate([emb[id(ep)].z for ep in train_eps]), mcfg.ood,
                                model.cfg.num_cameras * model.cfg.latent_channels)
        ood.set_validation_scores(np.concatenate([ood.score(emb[id(ep)].future_z) for ep in val_eps]))

        def labelled(clf: FailureClassifier, eps):
            window = mcfg.failure.motion_lookback + 1
            feats = torch.cat([clf.features(padded_histories(emb[id(ep)].z, window), emb[id(ep)].future_z)
                               for ep in eps])
            labels = np.concatenate([step_labels(ep.sources, ep.outcome, mcfg.failure.pre_intervention_steps)
                                     for ep in eps])
            return feats, labels

        prev = previous.tasks.get(task) if previous is not None else None
        fcfg = mcfg.failure
        if prev is not None:
            # Fine-tuning keeps the previous projection and statistics: same inputs as before.
            clf = FailureClassifier(prev.classifier.latent_dim, prev.classifier.feature_dims,
                                    fcfg.hidden_dim, fcfg.dropout)
            clf.load_state_dict(prev.classifier.state_dict())
            newest_eps = [ep for ep in task_eps if ep.round_dir == newest]
            feats, labels = labelled(clf, newest_eps or task_eps)
            clf, losses = train_classifier(feats, labels, fcfg, fcfg.finetune_steps, mcfg.ood.seed, clf,
                                           fresh=False)
        else:
            clf = FailureClassifier(model.cfg.latent_dim, fcfg.feature_dims, fcfg.hidden_dim, fcfg.dropout)
            clf.set_projection(np.concatenate([emb[id(ep)].z for ep in task_eps]), mcfg.ood.seed)
            feats, labels = labelled(clf, task_eps)
            clf, losses = train_classifier(feats, labels, fcfg, fcfg.steps, mcfg.ood.seed, clf)
        p_h = intervention_ratio([ep for ep in task_eps if ep.round_dir == newest])
        fitted[task] = TaskPredictors(clf, ood, p_h)
        report[task] = {"episodes": len(task_eps), "class_counts": np.bincount(labels, minlength=3).tolist(),
                        "classifier_loss_first": losses[0], "classifier_loss_last": float(np.mean(losses[-20:])),
                        "intervention_ratio": p_h,
                        "ood_percentile": fitted[task].ood_percentile(mcfg.threshold),
                        "finetuned": prev is not None}
    predictors = ErrorPredictors(fitted, mcfg.failure, mcfg.ood, mcfg.threshold, to_dict(model.cfg))
    return predictors, report


def with_threshold(predictors: ErrorPredictors, cfg: ThresholdConfig) -> ErrorPredictors:
    return dataclasses.replace(predictors, threshold_cfg=cfg)
