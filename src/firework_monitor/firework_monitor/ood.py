"""Per-task out-of-distribution detector: PCA to l dims, k-means with c centroids.

Fitted on real state embeddings z sampled from all data so far (coverage grows every round).
Score of a state = distance of its imagined futures to the nearest centroid, averaged over the
futures. The threshold alpha_g is the theta_g-th percentile of the same score on held-out
in-distribution episodes, so the held-out scores are stored (sorted) and any percentile can be
taken at run time when theta_g adapts.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from sklearn.cluster import MiniBatchKMeans
from sklearn.decomposition import PCA

from firework_monitor.config import OODConfig


@dataclass
class OODDetector:
    mean: np.ndarray                # (D,)
    components: np.ndarray          # (l, D)
    centroids: np.ndarray           # (c, l)
    validation_scores: np.ndarray   # sorted held-out scores

    @classmethod
    def fit(cls, z: np.ndarray, cfg: OODConfig) -> "OODDetector":
        rng = np.random.default_rng(cfg.seed)
        if len(z) > cfg.max_fit_embeddings:
            z = z[rng.choice(len(z), cfg.max_fit_embeddings, replace=False)]
        dims = min(cfg.pca_dims, z.shape[0] - 1, z.shape[1])
        pca = PCA(n_components=dims, random_state=cfg.seed).fit(z)
        reduced = pca.transform(z)
        clusters = min(cfg.clusters, len(reduced))
        km = MiniBatchKMeans(n_clusters=clusters, random_state=cfg.seed, n_init=3,
                             batch_size=max(1024, clusters * 4)).fit(reduced)
        return cls(pca.mean_.astype(np.float32), pca.components_.astype(np.float32),
                   km.cluster_centers_.astype(np.float32), np.zeros(0, dtype=np.float32))

    def distances(self, z: np.ndarray | torch.Tensor) -> np.ndarray:
        """(..., D) -> (...) distance to the nearest centroid after PCA."""
        z = torch.as_tensor(z, dtype=torch.float32)
        lead = z.shape[:-1]
        reduced = (z.reshape(-1, z.shape[-1]) - torch.from_numpy(self.mean)) @ torch.from_numpy(self.components).T
        d = torch.cdist(reduced, torch.from_numpy(self.centroids)).min(dim=1).values
        return d.reshape(lead).numpy()

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
                f"{prefix}.centroids": self.centroids, f"{prefix}.validation_scores": self.validation_scores}

    @classmethod
    def from_tensors(cls, tensors: dict, prefix: str) -> "OODDetector":
        get = lambda k: np.asarray(tensors[f"{prefix}.{k}"], dtype=np.float32)  # noqa: E731
        return cls(get("mean"), get("components"), get("centroids"), get("validation_scores"))


def brute_force_nearest(reduced_bank: torch.Tensor, queries: torch.Tensor) -> torch.Tensor:
    """Nearest-neighbour distance to every stored embedding (the alternative k-means replaces)."""
    return torch.cdist(queries, reduced_bank).min(dim=1).values
