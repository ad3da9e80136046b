"""Per-task failure predictor: a 3-class {normal, failure, human} classifier on frozen embeddings.

Inputs for one imagined future, all on the task's top principal components of z (fitted on its
training states, as the OOD detector does):
  - the current state z_t;
  - the imagined change to the future L steps ahead, ẑ_{t+L} - z_t, and its length;
  - the observed change over the last `motion_lookback` steps, z_t - z_{t-lookback}, and the
    largest and mean distance of z_t from each state in that window.
At run time the class probabilities are averaged over the N sampled futures, then over the robot's
last `smoothing_ticks` ticks. Training uses balanced sampling (each class present gets an equal
share of every batch), since failure and human steps are rare next to normal ones.

Why the observed history: operators take over after a stretch without progress (hovering next to
the object, pushing at the wrong spot). One frame and one imagined future say "in the grasp phase",
not "stuck in it". Validation (classifier trained on the demos and two supervised rounds, tested on
a third): mean failure AUROC 0.61 without the history, 0.71 with it, 0.74 with 5-tick smoothing
and 16 instead of 32 components. Elapsed time would predict takeovers too (the imperfect policy
sticks at similar steps) but is a shortcut that says nothing about a new task or policy, so it is
not an input.

Why not the dynamics' tokens: a task's states differ only slightly in the 128-d token (it is tuned
for prediction, not for telling states apart); an MLP on [token_t, token_{t+L}] stayed near chance.
"""
from __future__ import annotations

from collections import deque

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from firework_monitor.config import FailureConfig
from firework_monitor.data import StepLabel

NUM_CLASSES = len(StepLabel)
STD_FLOOR_OF_MEDIAN = 0.1
PROJECTED_GROUPS = 3          # projected z_t, observed change, imagined change
SCALAR_FEATURES = 3           # largest and mean displacement in the window, imagined change length


def feature_width(feature_dims: int) -> int:
    return PROJECTED_GROUPS * feature_dims + SCALAR_FEATURES


class FailureClassifier(nn.Module):
    def __init__(self, latent_dim: int, feature_dims: int, hidden_dim: int, dropout: float = 0.0) -> None:
        super().__init__()
        # The projection (principal components of the task's z) and the per-feature standardization
        # are fitted on the training set and saved with the weights.
        self.register_buffer("projection_mean", torch.zeros(latent_dim))
        self.register_buffer("projection", torch.zeros(feature_dims, latent_dim))
        width = feature_width(feature_dims)
        self.register_buffer("feature_mean", torch.zeros(width))
        self.register_buffer("feature_std", torch.ones(width))
        self.net = nn.Sequential(
            nn.Linear(width, hidden_dim), nn.GELU(), nn.Dropout(dropout),
            nn.Linear(hidden_dim, hidden_dim), nn.GELU(), nn.Dropout(dropout),
            nn.Linear(hidden_dim, NUM_CLASSES))

    @property
    def latent_dim(self) -> int:
        return self.projection.shape[1]

    @property
    def feature_dims(self) -> int:
        return self.projection.shape[0]

    def set_projection(self, z: np.ndarray | torch.Tensor, seed: int) -> None:
        """Principal components of the task's training states z (n, D)."""
        from sklearn.decomposition import PCA

        z = np.asarray(z, dtype=np.float32)
        dims = min(self.feature_dims, z.shape[0] - 1, z.shape[1])
        pca = PCA(n_components=dims, random_state=seed).fit(z)
        self.projection_mean.copy_(torch.from_numpy(pca.mean_.astype(np.float32)))
        self.projection.zero_()
        self.projection[:dims].copy_(torch.from_numpy(pca.components_.astype(np.float32)))

    def features(self, recent_z: np.ndarray | torch.Tensor, future_z: np.ndarray | torch.Tensor) -> torch.Tensor:
        """recent_z (B, W, D): the robot's observed latents over the lookback window, oldest first,
        the last is z_t (W = motion_lookback + 1); future_z (B, N, D) -> raw features (B, N, width)."""
        recent_z = torch.as_tensor(recent_z, dtype=torch.float32)
        future_z = torch.as_tensor(future_z, dtype=torch.float32)
        if recent_z.ndim != 3 or recent_z.shape[1] < 2:
            raise ValueError(f"recent_z must be (batch, lookback + 1 >= 2, latent), got {tuple(recent_z.shape)}")
        recent = (recent_z - self.projection_mean) @ self.projection.T           # (B, W, k)
        now = recent[:, -1]
        observed = now - recent[:, 0]
        distance = (now.unsqueeze(1) - recent[:, :-1]).norm(dim=-1)              # (B, W-1)
        per_step = torch.cat([now, observed, distance.amax(dim=1, keepdim=True),
                              distance.mean(dim=1, keepdim=True)], dim=-1)
        imagined = (future_z - recent_z[:, -1:]) @ self.projection.T              # (B, N, k)
        per_step = per_step.unsqueeze(1).expand(-1, imagined.shape[1], -1)
        return torch.cat([per_step, imagined, imagined.norm(dim=-1, keepdim=True)], dim=-1)

    def set_feature_statistics(self, features: torch.Tensor) -> None:
        flat = features.reshape(-1, features.shape[-1])
        self.feature_mean.copy_(flat.mean(dim=0))
        std = flat.std(dim=0)
        # Floor: a feature that hardly varies in training must not be blown up into noise.
        self.feature_std.copy_(std.clamp_min(float(std.median()) * STD_FLOOR_OF_MEDIAN + 1e-8))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """Raw features (..., width) -> class logits (..., 3)."""
        return self.net((features - self.feature_mean) / self.feature_std)


@torch.no_grad()
def predict_proba(model: FailureClassifier, recent_z, future_z) -> np.ndarray:
    """recent_z (B, W, D) observed window ending at z_t, imagined futures future_z (B, N, D) ->
    (B, 3) class probabilities averaged over the futures (one tick, before smoothing)."""
    return F.softmax(model(model.features(recent_z, future_z)), dim=-1).mean(dim=1).numpy()


def train_classifier(features: np.ndarray | torch.Tensor, labels: np.ndarray, cfg: FailureConfig, steps: int,
                     seed: int, model: FailureClassifier, fresh: bool = True
                     ) -> tuple[FailureClassifier, list[float]]:
    """features (n, N, width) from `model.features` (every future of a step carries the step's label);
    labels (n,). `fresh`: set the standardization from these features; fine-tuning (fresh=False)
    keeps the previous classifier's statistics, so its input scale does not change."""
    if len(features) != len(labels):
        raise ValueError(f"features ({len(features)}) and labels ({len(labels)}) differ in length")
    gen = torch.Generator().manual_seed(seed)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    feats = torch.as_tensor(features, dtype=torch.float32)
    labels_t = torch.as_tensor(labels, dtype=torch.long)
    if fresh:
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


class FailureFilter:
    """Per robot: smooths the class probabilities over the last `smoothing_ticks` ticks, then
    applies Sirius-Fleet's flag rule to the smoothed estimate: flag when "failure" is the most
    likely class in at least `flag_votes` of the last `flag_window` ticks, or when the failure
    probability alone exceeds `probability_threshold`."""

    def __init__(self, cfg: FailureConfig) -> None:
        self.cfg = cfg
        self.recent_proba: deque[np.ndarray] = deque(maxlen=cfg.smoothing_ticks)
        self.recent_votes: deque[bool] = deque(maxlen=cfg.flag_window)

    def update(self, proba: np.ndarray) -> tuple[np.ndarray, bool]:
        """One tick's class probabilities -> (smoothed probabilities, flag)."""
        self.recent_proba.append(np.asarray(proba, dtype=np.float64))
        smoothed = np.mean(self.recent_proba, axis=0)
        self.recent_votes.append(int(np.argmax(smoothed)) == StepLabel.FAILURE)
        flag = (sum(self.recent_votes) >= self.cfg.flag_votes
                or float(smoothed[StepLabel.FAILURE]) > self.cfg.probability_threshold)
        return smoothed, flag
