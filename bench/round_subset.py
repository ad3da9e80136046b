"""Write a round directory that holds the first N episodes per task of another round (no copies).

    .venv/bin/python bench/round_subset.py --data runs/data/demos_v2 --per-task 10 --out runs/data/demos_10

The new directory's manifest lists the chosen episodes and its `episodes` entry links to the source
round's bags, so training on it reads the same files. Used by bench/weighting_ab.sh to build a weak
base policy (few demonstrations) without recording new demonstrations.
"""
from __future__ import annotations

import argparse
import os
import sys
from collections import defaultdict
from pathlib import Path

from firework_common.manifest import EPISODES_DIR, RoundManifest, load_manifest


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="source round directory")
    parser.add_argument("--per-task", type=int, required=True, help="episodes to keep per task")
    parser.add_argument("--out", type=Path, required=True, help="new round directory (must not exist)")
    args = parser.parse_args()
    if args.per_task < 1:
        sys.exit(f"round_subset: --per-task must be >= 1, got {args.per_task}")
    if args.out.exists():
        sys.exit(f"round_subset: --out {args.out} already exists")
    by_task = defaultdict(list)
    for rec in load_manifest(args.data):
        by_task[rec["task"]].append(rec)
    short = {task: len(recs) for task, recs in by_task.items() if len(recs) < args.per_task}
    if short:
        sys.exit(f"round_subset: {args.data} has fewer than {args.per_task} episodes for {short}")
    chosen = [rec for task in sorted(by_task) for rec in by_task[task][:args.per_task]]
    args.out.mkdir(parents=True)
    os.symlink(os.path.relpath(args.data.resolve() / EPISODES_DIR, args.out.resolve()), args.out / EPISODES_DIR)
    subset = RoundManifest(args.out)
    subset.episodes = chosen
    subset.save()
    print(f"{args.out}: {len(chosen)} episodes ({args.per_task} per task of {', '.join(sorted(by_task))})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
