"""Per-task failure predictor: a 3-class {normal, failure, human} classifier on frozen embeddings.

Input for one future: [token of the current state, token of that imagined future L steps ahead].
At run time the class probabilities are averaged over the N sampled futures. Training uses balanced
sampling (each class present gets an equal share of every batch), since failure and human steps are
rare next to normal ones.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from firework_monitor.config import FailureConfig
from firework_monitor.data import StepLabel

NUM_CLASSES = len(StepLabel)
STD_FLOOR_OF_MEDIAN = 0.1


class FailureClassifier(nn.Module):
    def __init__(self, token_dim: int, hidden_dim: int) -> None:
        super().__init__()
        # Per-feature standardization with the training set's statistics (saved with the weights):
        # states of one task differ only slightly in the world model's frozen embedding, and an
        # MLP on the raw features barely moves from chance.
        self.register_buffer("feature_mean", torch.zeros(2 * token_dim))
        self.register_buffer("feature_std", torch.ones(2 * token_dim))
        self.net = nn.Sequential(
            nn.Linear(2 * token_dim, hidden_dim), nn.GELU(),
            nn.Linear(hidden_dim, hidden_dim), nn.GELU(), nn.Linear(hidden_dim, NUM_CLASSES))

    def set_feature_statistics(self, features: torch.Tensor) -> None:
        flat = features.reshape(-1, features.shape[-1])
        self.feature_mean.copy_(flat.mean(dim=0))
        std = flat.std(dim=0)
        # Floor: a feature that hardly varies in training must not be blown up into noise.
        self.feature_std.copy_(std.clamp_min(float(std.median()) * STD_FLOOR_OF_MEDIAN + 1e-8))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.net((features - self.feature_mean) / self.feature_std)


def pair_features(token: np.ndarray | torch.Tensor, future_token: np.ndarray | torch.Tensor) -> torch.Tensor:
    """token (B, d), future_token (B, N, d) -> features (B, N, 2d)."""
    token = torch.as_tensor(token, dtype=torch.float32)
    future_token = torch.as_tensor(future_token, dtype=torch.float32)
    return torch.cat([token.unsqueeze(1).expand_as(future_token), future_token], dim=-1)


@torch.no_grad()
def predict_proba(model: FailureClassifier, token, future_token) -> np.ndarray:
    """-> (B, 3) class probabilities averaged over the futures."""
    return F.softmax(model(pair_features(token, future_token)), dim=-1).mean(dim=1).numpy()


def train_classifier(features: np.ndarray, labels: np.ndarray, cfg: FailureConfig, steps: int,
                     seed: int, init: FailureClassifier | None = None) -> tuple[FailureClassifier, list[float]]:
    """features (n, N, 2d) (every future of a step carries the step's label); labels (n,).
    `init` continues from an earlier classifier (fine-tuning on the newest round)."""
    if len(features) != len(labels):
        raise ValueError(f"features ({len(features)}) and labels ({len(labels)}) differ in length")
    gen = torch.Generator().manual_seed(seed)
    token_dim = features.shape[-1] // 2
    model = init if init is not None else FailureClassifier(token_dim, cfg.hidden_dim)
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    feats = torch.as_tensor(features, dtype=torch.float32)
    labels_t = torch.as_tensor(labels, dtype=torch.long)
    if init is None:   # fine-tuning keeps the previous statistics: same input scale as before
        model.set_feature_statistics(feats)
    # Balanced sampling: every class present gets the same expected share of a batch.
    counts = torch.bincount(labels_t, minlength=NUM_CLASSES).float()
    weights = torch.where(counts[labels_t] > 0, 1.0 / counts[labels_t], torch.zeros(()))
    losses = []
    for _ in range(steps):
        idx = torch.multinomial(weights, cfg.batch_size, replacement=True, generator=gen)
        fut = torch.randint(feats.shape[1], (cfg.batch_size,), generator=gen)
        logits = model(feats[idx, fut])
        loss = F.cross_entropy(logits, labels_t[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    model.eval()
    return model, losses


class FlagVoter:
    """Sirius-Fleet's rule, per robot: flag when "failure" is the most likely class in at least
    `votes` of the last `window` ticks, or when the failure probability alone exceeds
    `probability_threshold`."""

    def __init__(self, cfg: FailureConfig) -> None:
        self.cfg = cfg
        self.recent: list[bool] = []

    def reset(self) -> None:
        self.recent = []

    def update(self, proba: np.ndarray) -> bool:
        self.recent = (self.recent + [int(np.argmax(proba)) == StepLabel.FAILURE])[-self.cfg.flag_window:]
        return sum(self.recent) >= self.cfg.flag_votes or float(proba[StepLabel.FAILURE]) > \
            self.cfg.probability_threshold
