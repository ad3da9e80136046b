"""The OOD detector measures distance in the full latent space (PCA residual included) and sees
per-map appearance summaries, so a global appearance change is out of distribution even when the
top principal components (dominated by motion) hardly move."""
from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from firework_common.errors import DataError
from firework_monitor.config import OODConfig
from firework_monitor.ood import OODDetector, appearance_summary

GROUPS, SIDE = 4, 8           # latent maps (cameras x channels) of SIDE x SIDE cells
CFG = OODConfig(pca_dims=4, clusters=16, appearance_weight=1.0, seed=0)


def blob_latents(n: int, rng: np.random.Generator, offset: float = 0.0) -> np.ndarray:
    """A bright blob (the arm) at a random cell of every map plus noise; `offset` shifts every
    cell (a lighting change)."""
    maps = rng.normal(0.0, 0.1, size=(n, GROUPS, SIDE, SIDE)) + offset
    rows, cols = rng.integers(0, SIDE, n), rng.integers(0, SIDE, n)
    maps[np.arange(n), :, rows, cols] += 3.0
    return maps.reshape(n, -1).astype(np.float32)


@pytest.fixture(scope="module")
def detector():
    return OODDetector.fit(blob_latents(2000, np.random.default_rng(0)), CFG, GROUPS)


def test_appearance_summary_is_per_map_mean_and_std():
    z = blob_latents(3, np.random.default_rng(1))
    import torch

    s = appearance_summary(torch.from_numpy(z), GROUPS).numpy()
    maps = z.reshape(3, GROUPS, -1)
    np.testing.assert_allclose(s, np.concatenate([maps.mean(-1), maps.std(-1)], -1), rtol=1e-5, atol=1e-6)


def test_a_global_appearance_shift_is_out_of_distribution(detector):
    rng = np.random.default_rng(2)
    seen = detector.distances(blob_latents(300, rng))
    shifted = detector.distances(blob_latents(300, rng, offset=0.3))
    auroc = roc_auc_score(np.r_[np.zeros(len(seen)), np.ones(len(shifted))], np.r_[seen, shifted])
    assert auroc > 0.95


def test_distance_counts_what_pca_leaves_out(detector):
    """distance^2 = nearest centroid in [PCA coordinates, appearance] + squared PCA residual."""
    import torch

    z = blob_latents(5, np.random.default_rng(3))
    centred = z - detector.mean
    coords = centred @ detector.components.T
    residual_sq = (centred ** 2).sum(-1) - (coords ** 2).sum(-1)
    app = (appearance_summary(torch.from_numpy(z), GROUPS).numpy() - detector.appearance_mean) \
        / detector.appearance_std
    feats = np.concatenate([coords, CFG.appearance_weight * app], -1)
    nearest_sq = ((feats[:, None] - detector.centroids[None]) ** 2).sum(-1).min(1)
    assert (residual_sq > 0).all()
    np.testing.assert_allclose(detector.distances(z), np.sqrt(nearest_sq + residual_sq), rtol=1e-4)


def test_score_averages_over_futures_and_round_trips(detector):
    futures = blob_latents(6, np.random.default_rng(4)).reshape(2, 3, -1)
    score = detector.score(futures)
    np.testing.assert_allclose(score, detector.distances(futures).mean(-1), rtol=1e-6)
    again = OODDetector.from_tensors(detector.tensors("Lift.ood"), "Lift.ood")
    np.testing.assert_allclose(again.score(futures), score, rtol=1e-6)
    assert again.groups == GROUPS


def test_a_detector_without_appearance_statistics_asks_for_a_refit(detector):
    old = {k: v for k, v in detector.tensors("Lift.ood").items() if "appearance" not in k}
    with pytest.raises(DataError, match="refit"):
        OODDetector.from_tensors(old, "Lift.ood")


def test_latent_size_must_split_into_the_maps():
    with pytest.raises(ValueError, match="multiple"):
        OODDetector.fit(np.zeros((50, 10), np.float32), CFG, 3)
