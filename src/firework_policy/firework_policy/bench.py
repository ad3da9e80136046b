"""`firework policy bench`: latency of one batched act() for K robots, and model sizes.

Uses a randomly initialized policy of the chosen preset with random goal vectors: latency depends
on sizes, not on weights (and the sentence encoder is not needed).
"""
from __future__ import annotations

import time
from typing import Any, Sequence

import numpy as np
import torch

from firework_common.schema import PROPRIO_DIM
from firework_policy.checkpoint import LoadedPolicy, build_model
from firework_policy.config import PolicyModelConfig
from firework_policy.goals import GOAL_DIM, GoalTable
from firework_policy.runtime import PolicyRunner

BENCH_TASK = "Lift"


def synthetic_runner(cfg: PolicyModelConfig, seed: int = 0) -> PolicyRunner:
    torch.manual_seed(seed)
    vectors = np.random.default_rng(seed).normal(size=(1, GOAL_DIM)).astype(np.float32)
    goals = GoalTable((BENCH_TASK,), ("lift the red cube",), vectors)
    return PolicyRunner(LoadedPolicy(build_model(cfg, goals).eval().requires_grad_(False), goals, {}))


def model_sizes(cfg: PolicyModelConfig) -> dict[str, int]:
    model = synthetic_runner(cfg).model
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    return {"total": count(model), "camera_encoders": count(model.encoders),
            "transformer": count(model.transformer), "head": count(model.head)}


def bench_policy(cfg: PolicyModelConfig, robots: Sequence[int], repeats: int = 50, seed: int = 0) -> dict[str, Any]:
    runner = synthetic_runner(cfg, seed)
    rng = np.random.default_rng(seed)
    shape = runner.expected_frame_shape
    ticks = {}
    for k in robots:
        inputs = [(f"robot_{i}", BENCH_TASK, rng.integers(0, 256, shape, dtype=np.uint8),
                   rng.normal(size=PROPRIO_DIM).astype(np.float32)) for i in range(k)]
        for _ in range(cfg.context + 3):   # fill the histories and warm up
            runner.act(inputs)
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            out = runner.act(inputs)
            times.append(time.perf_counter() - t0)
        assert out.shape == (k, 7)
        ms = np.array(times) * 1000
        ticks[str(k)] = {"p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99)),
                         "mean_ms": float(ms.mean())}
    return {"threads": torch.get_num_threads(), "context": cfg.context, "parameters": model_sizes(cfg),
            "ticks": ticks}
