"""Diagnostic: how a policy's grasps went, from its recorded evaluation episodes.

    .venv/bin/python bench/grasp_events.py --eval runs/X/ft_sirius_s0_eval [more eval dirs] \
        [--tasks PickPlaceCan,Stack] [--json]

`firework policy eval` records every episode as a bag with its seed. This replays each episode's
recorded actions open-loop from the same seed (state only, no rendering; MuJoCo is deterministic,
so the replay is the episode: the replayed outcome is checked against the recorded one) and
classifies every gripper event on the task's object:
- close: the gripper command turns to "close"; a hit when the object is held within --hold-steps;
  a miss is a grasp on air (wrong place or wrong time),
- drop: the gripper opens while holding the object, not in the last --release-window steps of a
  successful episode (there it is the intended release).
A policy that fails a pick task by missing has a perception/timing problem; one that drops has a
carrying problem; one that never closes never got there.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Callable

import numpy as np

from firework_common.episode_bag import read_episode
from firework_common.schema import ACTION_LABELS
from firework_sim.config import load_sim_config
from firework_sim.experts.base import held_in_fingers
from firework_sim.robot_env import SimRobot
from firework_sim.tasks import get_task

GRIPPER = ACTION_LABELS.index("gripper")
# The object a task grasps, as robosuite names it (Door has none: it is not a pick task).
GRASPED_OBJECT: dict[str, Callable[[Any], Any]] = {
    "Lift": lambda raw: raw.cube,
    "Stack": lambda raw: raw.cubeA,
    "PickPlaceCan": lambda raw: raw.objects[raw.object_id],
    "NutAssemblySquare": lambda raw: raw.nuts[raw.nut_id],
}


def replay_task(eval_dir: Path, task: str, hold_steps: int, release_window: int) -> dict[str, Any]:
    manifest = json.loads((eval_dir / "manifest.json").read_text(encoding="utf-8"))["episodes"]
    episodes = [e for e in manifest if e["task"] == task]
    robot = SimRobot(get_task(task), load_sim_config(), seed=0, render=False)
    counts = dict(episodes=0, successes=0, never_closed=0, closes=0, hits=0, drops=0,
                  replay_disagrees=0)
    try:
        for e in episodes:
            ep = read_episode(eval_dir / e["bag"], load_images=False)
            robot.reset(seed=e["seed"])
            obj = GRASPED_OBJECT[task](robot.raw)
            held = []
            for action in ep.actions:
                robot.step(action)
                held.append(held_in_fingers(robot.raw, obj))
            success = e["outcome"] == "success"
            counts["episodes"] += 1
            counts["successes"] += success
            counts["replay_disagrees"] += robot.task_success() != success
            closed = ep.actions[:, GRIPPER] > 0
            close_steps = np.nonzero(~closed[:-1] & closed[1:])[0] + 1
            if closed[0]:
                close_steps = np.concatenate([[0], close_steps])
            open_steps = np.nonzero(closed[:-1] & ~closed[1:])[0] + 1
            counts["never_closed"] += len(close_steps) == 0
            counts["closes"] += len(close_steps)
            counts["hits"] += sum(any(held[t:t + hold_steps]) for t in close_steps)
            for t in open_steps:
                intended = success and t >= len(closed) - release_window
                counts["drops"] += held[t - 1] and not intended
    finally:
        robot.close()
    n = max(counts["episodes"], 1)
    return {**counts, "success_rate": counts["successes"] / n,
            "closes_per_episode": counts["closes"] / n,
            "hit_rate": counts["hits"] / max(counts["closes"], 1)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--eval", nargs="+", required=True, type=Path,
                        help="evaluation directories written by `firework policy eval`")
    parser.add_argument("--tasks", default="PickPlaceCan",
                        help=f"comma-separated; any of {', '.join(GRASPED_OBJECT)}")
    parser.add_argument("--hold-steps", type=int, default=15,
                        help="a close is a hit when the object is held within this many steps")
    parser.add_argument("--release-window", type=int, default=40,
                        help="an opening this close to the end of a successful episode is its release")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()]
    for t in tasks:
        if t not in GRASPED_OBJECT:
            parser.error(f"--tasks: {t!r} has no grasped object here; choose from {', '.join(GRASPED_OBJECT)}")
    for d in args.eval:
        if not (d / "manifest.json").is_file():
            parser.error(f"--eval: {d} has no manifest.json (not a `firework policy eval` directory)")
    results = {str(d): {t: replay_task(d, t, args.hold_steps, args.release_window) for t in tasks}
               for d in args.eval}
    if args.json:
        json.dump(results, sys.stdout, indent=1)
        print()
        return 0
    print(f"{'eval dir':40s} {'task':18s} {'eps':>4s} {'succ':>5s} {'closes/ep':>9s} {'hit rate':>8s} "
          f"{'never closed':>12s} {'drops':>5s} {'replay off':>10s}")
    for d, by_task in results.items():
        for t, r in by_task.items():
            print(f"{Path(d).name:40s} {t:18s} {r['episodes']:4d} {r['success_rate']:5.2f} "
                  f"{r['closes_per_episode']:9.2f} {r['hit_rate']:8.2f} {r['never_closed']:12d} "
                  f"{r['drops']:5d} {r['replay_disagrees']:10d}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
