"""Synthetic episodes for monitor tests: a square moving across a plain scene, two cameras.

Failing episodes: from `trouble_at` on the square turns red and drifts the other way; the human
takes over `takeover_delay` steps later. The default delay equals the failure label's M
(`failure.pre_intervention_steps` in config/monitor.yaml), so the steps labelled "failure" are
exactly the visibly troubled ones; with a shorter delay part of the label marks untroubled steps.
"Unseen" episodes change the scene's lighting (background brightness) - a visual change the
monitor was never trained on.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from firework_common.schema import ControlSource, EpisodeOutcome
from firework_monitor.data import EpisodeData

SIZE = 84
SQUARE = 12


def make_episode(rng: np.random.Generator, task: str = "Lift", steps: int = 40, fails: bool = False,
                 trouble_at: int = 20, takeover_delay: int = 15, background: int = 200) -> EpisodeData:
    frames = np.zeros((steps, 2, SIZE, SIZE, 3), dtype=np.uint8)
    frames[...] = background
    x, y = rng.uniform(10, 30), rng.uniform(20, 60)
    vx = rng.uniform(0.8, 1.2)
    color = np.array([40, 160, 40], dtype=np.uint8)
    sources = np.full(steps, ControlSource.ROBOT, dtype=np.int8)
    for t in range(steps):
        if fails and t >= trouble_at:
            vx_t, col = -vx, np.array([200, 30, 30], dtype=np.uint8)
        else:
            vx_t, col = vx, color
        x = float(np.clip(x + vx_t, 0, SIZE - SQUARE))
        xi, yi = int(x), int(y)
        frames[t, 0, yi:yi + SQUARE, xi:xi + SQUARE] = col
        frames[t, 1, 30:30 + SQUARE, (xi // 2):(xi // 2) + SQUARE] = col
        if fails and t >= trouble_at + takeover_delay:
            sources[t] = ControlSource.HUMAN
    outcome = EpisodeOutcome.SUCCESS
    meta = {"camera_names": ["agentview", "eye_in_hand"], "task": task}
    return EpisodeData(task, frames, sources, outcome, meta, Path("synthetic"))


def make_episodes(seed: int, count: int, fail_share: float = 0.5, **kwargs) -> list[EpisodeData]:
    rng = np.random.default_rng(seed)
    return [make_episode(rng, fails=i < int(fail_share * count), trouble_at=int(rng.integers(12, 24)), **kwargs)
            for i in range(count)]
