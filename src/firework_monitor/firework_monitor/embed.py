"""Frozen world-model embeddings of recorded episodes: what the error predictors train on.

For every step t of an episode: z_t (the state embedding) and N imagined futures L steps ahead
(their last-step latent), exactly as the runtime computes them at tick t. At the
start of an episode the history is padded with the first frame, as the runtime does.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from firework_monitor.data import EpisodeData
from firework_monitor.world_model import WorldModel

ENCODE_BATCH = 64     # frames per encoder call
ROLLOUT_BATCH = 64    # histories per imagination call


@dataclass
class EpisodeEmbedding:
    z: np.ndarray             # (T, D)
    future_z: np.ndarray      # (T, N, D): imagined latent L steps ahead


def padded_histories(z: torch.Tensor | np.ndarray, history: int) -> torch.Tensor:
    """(T, D) -> (T, history, D): the window ending at each step, padded with the first latent
    (what the runtime's per-robot history holds at that step)."""
    z = torch.as_tensor(z)
    pad = z[:1].expand(history - 1, -1)
    zp = torch.cat([pad, z], dim=0)
    return zp.unfold(0, history, 1).permute(0, 2, 1)


@torch.no_grad()
def embed_episode(model: WorldModel, ep: EpisodeData, futures: int, generator: torch.Generator
                  ) -> EpisodeEmbedding:
    frames = torch.from_numpy(ep.frames)
    z = torch.cat([model.encode(frames[i:i + ENCODE_BATCH]) for i in range(0, len(frames), ENCODE_BATCH)])
    hist = padded_histories(z, model.cfg.history)
    fz = [model.imagine(hist[i:i + ROLLOUT_BATCH], futures=futures, generator=generator)[0][:, :, -1]
          for i in range(0, len(hist), ROLLOUT_BATCH)]
    return EpisodeEmbedding(z.numpy(), torch.cat(fz).numpy())
