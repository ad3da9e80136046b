"""Diagnostic: how well a policy checkpoint fits the actions of recorded episodes, per action dimension.

    .venv/bin/python bench/policy_fit.py --checkpoint runs/data/policy_v4 --data runs/data/demos_v2 \
        [--episodes 6] [--json]

For each task, R^2 of the first action of the predicted chunk (the head's deterministic output:
the mean, or the most likely GMM component's mean) against the recorded action, per dimension,
over the last `--episodes` episodes of the task in `--data`. On the training demos this separates
"the model cannot fit the data" from "closed-loop errors compound": a translation R^2 near 0 on
training frames means the former (the GMM head on 70-d chunks: Stack's y action R^2 -0.08).
Each frame is scored as a one-frame window; for a policy with a longer context the R^2 is a lower
bound.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from firework_common.episode_bag import read_episode
from firework_common.manifest import load_manifest
from firework_policy.checkpoint import load_policy

DIMS = ("x", "y", "z", "roll", "pitch", "yaw", "gripper")


@torch.no_grad()
def task_r2(policy, round_dir: Path, records: list[dict], task: str) -> dict[str, float]:
    model, cams = policy.model.eval(), policy.cfg.cameras
    recorded, predicted = [], []
    for rec in records:
        ep = read_episode(round_dir / rec["bag"])
        frames = torch.from_numpy(np.stack([ep.images[c] for c in cams], axis=1))
        proprio = torch.from_numpy(ep.proprio())
        task_ids = torch.full((len(proprio),), policy.goals.index(task))
        # Every frame on its own (a one-frame window), as the cpu preset (context 1) runs.
        tokens = model.frame_tokens(frames, proprio, task_ids)[:, None]
        predicted.append(model.act_from_tokens(tokens)[:, 0].numpy())
        recorded.append(ep.actions)
    e, p = np.concatenate(recorded), np.concatenate(predicted)
    r2 = 1 - ((e - p) ** 2).sum(0) / np.maximum(((e - e.mean(0)) ** 2).sum(0), 1e-9)
    return {name: float(v) for name, v in zip(DIMS, r2)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, required=True)
    parser.add_argument("--data", type=Path, required=True, help="a round directory")
    parser.add_argument("--episodes", type=int, default=6, help="last N episodes per task")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    policy = load_policy(args.checkpoint)
    records = load_manifest(args.data)
    result = {}
    for task in sorted({r["task"] for r in records}):
        if task not in policy.goals.tasks:
            continue
        result[task] = task_r2(policy, args.data, [r for r in records if r["task"] == task][-args.episodes:], task)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        for task, r2 in result.items():
            print(f"{task:18s} " + " ".join(f"{k} {v:+.2f}" for k, v in r2.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
