"""Per-task failure predictor: a 3-class {normal, failure, human} classifier on frozen embeddings.

Input for one future: the current state z_t and the predicted change to the imagined future L steps
ahead, ẑ_{t+L} - z_t, both projected onto the task's top principal components of z (fitted on its
training states, as the OOD detector does). At run time the class probabilities are averaged over
the N sampled futures. Training uses balanced sampling (each class present gets an equal share of
every batch), since failure and human steps are rare next to normal ones.

Why not the dynamics' tokens: a task's states differ only slightly in the 128-d token (it is tuned
for prediction, not for telling states apart), and the token of the imagined future repeats most of
the current one; an MLP on [token_t, token_{t+L}] stayed near chance on held-out episodes. The
principal components keep the directions along which the task's scenes actually vary, and the
difference makes "where is this going" an explicit input.
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
FEATURE_GROUPS = 2            # [projected z_t, projected (ẑ_{t+L} - z_t)]


class FailureClassifier(nn.Module):
    def __init__(self, latent_dim: int, feature_dims: int, hidden_dim: int, dropout: float = 0.0) -> None:
        super().__init__()
        # The projection (principal components of the task's z) and the per-feature standardization
        # are fitted on the training set and saved with the weights.
        self.register_buffer("projection_mean", torch.zeros(latent_dim))
        self.register_buffer("projection", torch.zeros(feature_dims, latent_dim))
        self.register_buffer("feature_mean", torch.zeros(FEATURE_GROUPS * feature_dims))
        self.register_buffer("feature_std", torch.ones(FEATURE_GROUPS * feature_dims))
        width = FEATURE_GROUPS * feature_dims
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

    def features(self, z: np.ndarray | torch.Tensor, future_z: np.ndarray | torch.Tensor) -> torch.Tensor:
        """z (B, D), future_z (B, N, D) -> raw features (B, N, 2k)."""
        z = torch.as_tensor(z, dtype=torch.float32)
        future_z = torch.as_tensor(future_z, dtype=torch.float32)
        now = (z - self.projection_mean) @ self.projection.T                     # (B, k)
        change = (future_z - z.unsqueeze(1)) @ self.projection.T                 # (B, N, k)
        return torch.cat([now.unsqueeze(1).expand_as(change), change], dim=-1)

    def set_feature_statistics(self, features: torch.Tensor) -> None:
        flat = features.reshape(-1, features.shape[-1])
        self.feature_mean.copy_(flat.mean(dim=0))
        std = flat.std(dim=0)
        # Floor: a feature that hardly varies in training must not be blown up into noise.
        self.feature_std.copy_(std.clamp_min(float(std.median()) * STD_FLOOR_OF_MEDIAN + 1e-8))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """Raw features (..., 2k) -> class logits (..., 3)."""
        return self.net((features - self.feature_mean) / self.feature_std)


@torch.no_grad()
def predict_proba(model: FailureClassifier, z, future_z) -> np.ndarray:
    """z (B, D), imagined futures future_z (B, N, D) -> (B, 3) class probabilities averaged over
    the futures."""
    return F.softmax(model(model.features(z, future_z)), dim=-1).mean(dim=1).numpy()


def train_classifier(features: np.ndarray | torch.Tensor, labels: np.ndarray, cfg: FailureConfig, steps: int,
                     seed: int, model: FailureClassifier, fresh: bool = True
                     ) -> tuple[FailureClassifier, list[float]]:
    """features (n, N, 2k) from `model.features` (every future of a step carries the step's label);
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
