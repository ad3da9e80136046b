"""`firework bench monitor`: latency of one fleet tick, batched vs per-robot, and OOD scoring cost.

Uses a randomly initialized world model of the chosen preset and predictors fitted on random
embeddings: latency depends on sizes, not on weights. Reports p50/p99 of one tick for K robots,
the same K robots as a per-robot loop, k-means vs brute-force nearest neighbour at 10k/100k stored
embeddings, and the tick's achieved GFLOP/s next to a large matmul measured in the same run.
"""
from __future__ import annotations

import time
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from firework_monitor.config import MonitorConfig
from firework_monitor.failure import FailureClassifier
from firework_monitor.ood import OODDetector, brute_force_nearest
from firework_monitor.predictors import ErrorPredictors, TaskPredictors
from firework_monitor.runtime import FleetMonitor, RobotInput
from firework_monitor.world_model import WorldModel

BENCH_TASK = "Lift"
MATMUL_SIZE = 1024


def _percentiles(samples: list[float]) -> dict[str, float]:
    ms = np.array(samples) * 1000.0
    return {"p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99)),
            "mean_ms": float(ms.mean())}


def _time(fn: Callable[[], Any], repeats: int, warmup: int = 3) -> list[float]:
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def synthetic_monitor(mcfg: MonitorConfig, seed: int = 0) -> FleetMonitor:
    torch.manual_seed(seed)
    model = WorldModel(mcfg.world_model).eval()
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(max(2000, mcfg.ood.clusters * 4), mcfg.world_model.latent_dim)).astype(np.float32)
    ood = OODDetector.fit(z, mcfg.ood, mcfg.world_model.num_cameras * mcfg.world_model.latent_channels)
    ood.set_validation_scores(ood.distances(z[:500]))
    fcfg = mcfg.failure
    clf = FailureClassifier(mcfg.world_model.latent_dim, fcfg.feature_dims, fcfg.hidden_dim, fcfg.dropout)
    clf.set_projection(z, seed)
    clf.eval()
    predictors = ErrorPredictors({BENCH_TASK: TaskPredictors(clf, ood, 0.2)}, mcfg.failure, mcfg.ood,
                                 mcfg.threshold, {})
    return FleetMonitor(model, predictors, seed)


def bench_monitor(mcfg: MonitorConfig, robots: Sequence[int], repeats: int = 50,
                  bank_sizes: Sequence[int] = (10_000, 100_000)) -> dict[str, Any]:
    cfg = mcfg.world_model
    monitor = synthetic_monitor(mcfg)
    rng = np.random.default_rng(0)
    shape = (cfg.num_cameras, cfg.image_size, cfg.image_size, 3)
    result: dict[str, Any] = {"preset": mcfg.preset, "threads": torch.get_num_threads(),
                              "futures": cfg.futures, "horizon": cfg.horizon, "history": cfg.history,
                              "ticks": {}}
    a = torch.randn(MATMUL_SIZE, MATMUL_SIZE)
    mm = _time(lambda: a @ a, 10)
    result["matmul_gflops"] = 2 * MATMUL_SIZE**3 / np.median(mm) / 1e9
    for k in robots:
        inputs = [RobotInput(f"robot_{i}", BENCH_TASK, rng.integers(0, 256, shape, dtype=np.uint8))
                  for i in range(k)]
        batched = _time(lambda: monitor.tick(inputs), repeats)
        loop = _time(lambda: [monitor.tick([item]) for item in inputs], repeats)
        with FlopCounterMode(display=False) as counter:
            monitor.tick(inputs)
        flops = counter.get_total_flops()
        result["ticks"][str(k)] = {
            "batched": _percentiles(batched), "per_robot_loop": _percentiles(loop),
            "batched_speedup_p50": float(np.median(loop) / np.median(batched)),
            "gflop_per_tick": flops / 1e9,
            "achieved_gflops": flops / np.median(batched) / 1e9,
        }
    # OOD scoring of one tick's futures (K robots x N futures) against centroids vs a raw bank.
    queries = torch.randn(max(robots) * cfg.futures, mcfg.ood.pca_dims)
    centroids = torch.randn(mcfg.ood.clusters, mcfg.ood.pca_dims)
    result["ood_scoring"] = {"queries": len(queries), "clusters": mcfg.ood.clusters}
    kmeans = _time(lambda: torch.cdist(queries, centroids).min(dim=1), repeats)
    result["ood_scoring"]["kmeans"] = _percentiles(kmeans)
    for n in bank_sizes:
        bank = torch.randn(n, mcfg.ood.pca_dims)
        brute = _time(lambda: brute_force_nearest(bank, queries), max(5, repeats // 5))
        result["ood_scoring"][f"brute_force_{n}"] = {
            **_percentiles(brute), "kmeans_speedup_p50": float(np.median(brute) / np.median(kmeans))}
    return result
