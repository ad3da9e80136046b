"""Per-task out-of-distribution detector: PCA to l dims, k-means with c centroids.

Fitted on real state embeddings z sampled from all data so far (coverage grows every round).
Score of a state = distance of its imagined futures to the nearest centroid, averaged over the
futures. The threshold alpha_g is the theta_g-th percentile of the same score on held-out
in-distribution episodes, so the held-out scores are stored (sorted) and any percentile can be
taken at run time when theta_g adapts.

Two additions to plain "PCA + nearest centroid", both because a task's top principal components
are dominated by arm motion (the world model's latents are an autoencoder's, and the arm is what
moves), while the changes to detect are in appearance:
  - the distance is measured in the full latent space: the centroid is mapped back and the part of
    z outside the l-dim subspace (the PCA residual) counts too. A lighting or camera change moves
    every latent cell a little, mostly off the motion subspace, which PCA alone throws away;
  - k-means runs on [PCA coordinates, appearance summaries]: per camera and latent channel the
    spatial mean and standard deviation (standardized with the training statistics, weighted by
    `appearance_weight`). They ignore where things are, so motion hardly moves them, and they shift
    with global colour and brightness.
The residual adds O(D) per query next to the O(l D) projection, so run-time cost is unchanged.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from sklearn.cluster import MiniBatchKMeans
from sklearn.decomposition import PCA

from firework_common.errors import DataError
from firework_monitor.config import OODConfig

APPEARANCE_STATS = 2          # spatial mean and standard deviation per (camera, latent channel)
STD_EPS = 1e-6                # an appearance statistic constant in training is not blown up


def appearance_summary(z: torch.Tensor, groups: int) -> torch.Tensor:
    """(n, D) latents of `groups` = cameras x latent channels maps -> (n, 2 * groups): each map's
    spatial mean and standard deviation."""
    maps = z.reshape(z.shape[0], groups, -1)
    return torch.cat([maps.mean(-1), maps.std(-1, correction=0)], dim=-1)


@dataclass
class OODDetector:
    mean: np.ndarray                # (D,)
    components: np.ndarray          # (l, D)
    centroids: np.ndarray           # (c, l + 2 * groups): PCA coordinates + weighted appearance
    validation_scores: np.ndarray   # sorted held-out scores
    appearance_mean: np.ndarray     # (2 * groups,) training statistics of the appearance summaries
    appearance_std: np.ndarray      # (2 * groups,)
    appearance_weight: float

    @property
    def groups(self) -> int:
        return len(self.appearance_mean) // APPEARANCE_STATS

    @classmethod
    def fit(cls, z: np.ndarray, cfg: OODConfig, groups: int) -> "OODDetector":
        """z (n, D): training latents made of `groups` (cameras x latent channels) spatial maps."""
        if z.shape[1] % groups:
            raise ValueError(f"latent size {z.shape[1]} is not a multiple of {groups} latent maps")
        rng = np.random.default_rng(cfg.seed)
        if len(z) > cfg.max_fit_embeddings:
            z = z[rng.choice(len(z), cfg.max_fit_embeddings, replace=False)]
        z = np.asarray(z, dtype=np.float32)
        dims = min(cfg.pca_dims, z.shape[0] - 1, z.shape[1])
        pca = PCA(n_components=dims, random_state=cfg.seed).fit(z)
        app = appearance_summary(torch.from_numpy(z), groups).numpy()
        det = cls(pca.mean_.astype(np.float32), pca.components_.astype(np.float32),
                  np.zeros((0, dims + app.shape[1]), dtype=np.float32), np.zeros(0, dtype=np.float32),
                  app.mean(0).astype(np.float32), (app.std(0) + STD_EPS).astype(np.float32),
                  float(cfg.appearance_weight))
        feats, _ = det._features(torch.from_numpy(z))
        clusters = min(cfg.clusters, len(z))
        km = MiniBatchKMeans(n_clusters=clusters, random_state=cfg.seed, n_init=3,
                             batch_size=max(1024, clusters * 4)).fit(feats.numpy())
        det.centroids = km.cluster_centers_.astype(np.float32)
        return det

    def _features(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(n, D) -> k-means features (n, l + 2 groups) and squared PCA residual norms (n,)."""
        centred = z - torch.from_numpy(self.mean)
        reduced = centred @ torch.from_numpy(self.components).T
        residual_sq = (centred.square().sum(-1) - reduced.square().sum(-1)).clamp_min(0.0)
        app = (appearance_summary(z, self.groups) - torch.from_numpy(self.appearance_mean)) \
            / torch.from_numpy(self.appearance_std)
        return torch.cat([reduced, self.appearance_weight * app], dim=-1), residual_sq

    def distances(self, z: np.ndarray | torch.Tensor) -> np.ndarray:
        """(..., D) -> (...) distance to the nearest centroid in the full latent space (PCA
        coordinates and appearance to the centroid, plus the PCA residual)."""
        z = torch.as_tensor(z, dtype=torch.float32)
        lead = z.shape[:-1]
        feats, residual_sq = self._features(z.reshape(-1, z.shape[-1]))
        nearest_sq = torch.cdist(feats, torch.from_numpy(self.centroids)).min(dim=1).values.square()
        return (nearest_sq + residual_sq).sqrt().reshape(lead).numpy()

    def score(self, future_z: np.ndarray | torch.Tensor) -> np.ndarray:
        """(B, N, D) imagined futures -> (B,) mean distance over futures."""
        return self.distances(future_z).mean(axis=-1)

    def set_validation_scores(self, scores: np.ndarray) -> None:
        self.validation_scores = np.sort(np.asarray(scores, dtype=np.float32))

    def threshold(self, percentile: float) -> float:
        if len(self.validation_scores) == 0:
            raise ValueError("OOD detector has no validation scores: fit it with held-out episodes")
        return float(np.percentile(self.validation_scores, percentile))

    def tensors(self, prefix: str) -> dict[str, np.ndarray]:
        return {f"{prefix}.mean": self.mean, f"{prefix}.components": self.components,
                f"{prefix}.centroids": self.centroids, f"{prefix}.validation_scores": self.validation_scores,
                f"{prefix}.appearance_mean": self.appearance_mean,
                f"{prefix}.appearance_std": self.appearance_std,
                f"{prefix}.appearance_weight": np.array([self.appearance_weight], dtype=np.float32)}

    @classmethod
    def from_tensors(cls, tensors: dict, prefix: str) -> "OODDetector":
        if f"{prefix}.appearance_mean" not in tensors:
            raise DataError(f"{prefix}: no appearance statistics (OOD detector fitted by an older "
                            f"version); refit the predictors with `firework monitor fit`")
        get = lambda k: np.asarray(tensors[f"{prefix}.{k}"], dtype=np.float32)  # noqa: E731
        return cls(get("mean"), get("components"), get("centroids"), get("validation_scores"),
                   get("appearance_mean"), get("appearance_std"), float(get("appearance_weight")[0]))


def brute_force_nearest(reduced_bank: torch.Tensor, queries: torch.Tensor) -> torch.Tensor:
    """Nearest-neighbour distance to every stored embedding (the alternative k-means replaces)."""
    return torch.cdist(queries, reduced_bank).min(dim=1).values
