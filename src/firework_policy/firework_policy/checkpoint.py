"""Policy checkpoints: weights, dataset statistics and goal vectors in policy.safetensors; model
config, task list and language goals in policy.json (firework_common.checkpoint: never unpickled)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from firework_common.checkpoint import load_checkpoint, save_checkpoint
from firework_common.config import from_dict, to_dict
from firework_common.errors import DataError
from firework_policy.config import PolicyModelConfig
from firework_policy.goals import ENCODER_NAME, GOAL_DIM, GoalTable
from firework_policy.model import BCTransformer

CHECKPOINT_NAME = "policy"
CHECKPOINT_KIND = "firework.policy"


@dataclass
class LoadedPolicy:
    model: BCTransformer          # eval mode, no gradients
    goals: GoalTable
    meta: dict[str, Any]

    @property
    def cfg(self) -> PolicyModelConfig:
        return self.model.cfg


def build_model(cfg: PolicyModelConfig, goals: GoalTable) -> BCTransformer:
    model = BCTransformer(cfg, len(goals.tasks))
    model.goal_vectors.copy_(_as_tensor(goals.vectors))
    return model


def _as_tensor(a: np.ndarray):
    import torch

    return torch.as_tensor(np.asarray(a, dtype=np.float32))


def save_policy(model: BCTransformer, goals: GoalTable, directory: Path, meta: dict[str, Any]) -> Path:
    config = {"model": to_dict(model.cfg), "tasks": list(goals.tasks), "goals": list(goals.goals),
              "goal_encoder": ENCODER_NAME}
    return save_checkpoint(directory, CHECKPOINT_NAME, model.state_dict(), CHECKPOINT_KIND, config, meta)


def load_policy(directory: Path, expected: PolicyModelConfig | None = None) -> LoadedPolicy:
    """Load a trained policy; `expected` checks every model config field. DataError names what is wrong."""
    directory = Path(directory)
    tensors, config, meta = load_checkpoint(
        directory, CHECKPOINT_NAME, CHECKPOINT_KIND,
        {"model": to_dict(expected)} if expected is not None else None)
    where = f"{directory / CHECKPOINT_NAME}.json"
    for key in ("model", "tasks", "goals"):
        if key not in config:
            raise DataError(f"{where}: config has no {key!r}")
    cfg = from_dict(PolicyModelConfig, config["model"], f"{where}:model")
    tasks, goals = tuple(config["tasks"]), tuple(config["goals"])
    if len(tasks) != len(goals) or not tasks:
        raise DataError(f"{where}: {len(tasks)} tasks but {len(goals)} goals")
    vectors = tensors.get("goal_vectors")
    if vectors is None or tuple(vectors.shape) != (len(tasks), GOAL_DIM):
        raise DataError(f"{directory / CHECKPOINT_NAME}.safetensors: goal_vectors are "
                        f"{None if vectors is None else tuple(vectors.shape)}; expected "
                        f"({len(tasks)}, {GOAL_DIM}) for tasks {list(tasks)}")
    model = BCTransformer(cfg, len(tasks))
    try:
        model.load_state_dict(tensors, strict=True)
    except RuntimeError as exc:
        first = str(exc).splitlines()[:3]
        raise DataError(f"{directory / CHECKPOINT_NAME}.safetensors does not match its config: "
                        f"{' '.join(first)}") from exc
    model.eval().requires_grad_(False)
    return LoadedPolicy(model, GoalTable(tasks, goals, vectors.numpy().copy()), meta)
