"""Benchmark: scripted operator success from reset, and takeover success after the imperfect policy.

    .venv/bin/python bench/operator_success.py --tasks Lift,Stack --episodes 20 [--no-render] [--json]

Prints per task: success from reset, success of takeovers after 10-60 steps of the imperfect
policy, and the imperfect policy's own success. Rendering is off with --no-render (state only,
~6x faster; the experts read simulator state, so the numbers are the same).
"""
from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np

from firework_common.schema import ControlSource
from firework_sim.config import load_operator_config, load_sim_config
from firework_sim.episode import run_episode
from firework_sim.experts import make_expert
from firework_sim.imperfect import ImperfectOperator
from firework_sim.robot_env import SimRobot
from firework_sim.tasks import parse_task_list


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", default="Lift,Stack,PickPlaceCan,NutAssemblySquare,Door")
    parser.add_argument("--episodes", type=int, default=20)
    parser.add_argument("--takeover-min", type=int, default=10)
    parser.add_argument("--takeover-max", type=int, default=60)
    parser.add_argument("--seed", type=int, default=1000)
    parser.add_argument("--no-render", action="store_true")
    parser.add_argument("--modes", default="reset,takeover,imperfect")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--verbose", action="store_true", help="print each failed episode")
    args = parser.parse_args()

    sim_cfg, op_cfg = load_sim_config(), load_operator_config()
    modes = args.modes.split(",")
    results = {}
    for task in parse_task_list(args.tasks):
        robot = SimRobot(task, sim_cfg, seed=args.seed, render=not args.no_render)
        row = {}
        t0, total_steps = time.perf_counter(), 0
        for mode in modes:
            successes, lengths = 0, []
            rng = np.random.default_rng(args.seed)
            for ep in range(args.episodes):
                seed = args.seed + ep
                expert = make_expert(task.name, op_cfg)
                if mode == "reset":
                    res = run_episode(robot, expert, seed, policy_source=ControlSource.HUMAN)
                else:
                    imperfect = ImperfectOperator(make_expert(task.name, op_cfg), op_cfg.imperfect,
                                                  np.random.default_rng(seed))
                    takeover = (int(rng.integers(args.takeover_min, args.takeover_max + 1))
                                if mode == "takeover" else None)
                    res = run_episode(robot, imperfect, seed, operator=expert if takeover else None,
                                      takeover_after=takeover)
                successes += res.success
                lengths.append(res.steps)
                total_steps += res.steps
                if args.verbose and not res.success:
                    print(f"  {task.name} {mode} seed={seed} failed after {res.steps} steps "
                          f"(takeover at {res.takeover_step})", file=sys.stderr)
            row[mode] = {"success_rate": successes / args.episodes, "mean_length": float(np.mean(lengths))}
        row["steps_per_s"] = total_steps / (time.perf_counter() - t0)
        robot.close()
        results[task.name] = row
        if not args.json:
            print(task.name, "  ".join(
                f"{m}: {row[m]['success_rate']:.2f} (len {row[m]['mean_length']:.0f})" for m in modes),
                f" [{row['steps_per_s']:.0f} steps/s]", flush=True)
    if args.json:
        print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
