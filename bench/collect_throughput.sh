#!/usr/bin/env bash
# Benchmark: collection throughput with two 84x84 cameras, 1 worker vs 2 workers.
#   bench/collect_throughput.sh [EPISODES_PER_TASK]   (default 4)
# Prints the JSON summaries' steps/s (total) and steps/s per worker per task.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
N=${1:-4}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
for W in 1 2; do
  .venv/bin/firework collect --episodes "$N" --workers "$W" --out "$TMP/w$W" --json 2>/dev/null \
    | .venv/bin/python -c "
import json, sys
s = json.load(sys.stdin)
per = {k: round(v['steps_per_s_per_worker'], 1) for k, v in s['tasks'].items()}
print(f\"workers={s['workers']} total steps/s={s['steps_per_s']:.1f} wall={s['wall_s']:.0f}s per-worker steps/s={per}\")"
done
