#!/usr/bin/env bash
# The README's main job. Until the fleet learning loop exists, it runs the largest real thing that
# does: a simulated round of data collection on all five tasks, with progress bars:
#   round_0: scripted-operator demonstrations (the paper's D0),
#   round_1: the imperfect (failing) policy with operator takeovers (deployment data with c_t).
# Environment knobs: EPISODES (per task, default 10), WORKERS (default 2), OUT (default runs/).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bash "$ROOT/scripts/setup.sh"
cd "$ROOT"
EPISODES=${EPISODES:-10}
WORKERS=${WORKERS:-2}
OUT=${OUT:-runs/$(date +%Y%m%d-%H%M%S)}
mkdir -p "$OUT"
echo "== round 0: operator demonstrations ($EPISODES per task) -> $OUT/round_0"
.venv/bin/firework collect --episodes "$EPISODES" --workers "$WORKERS" --policy operator --out "$OUT/round_0"
echo "== round 1: imperfect policy, operator takes over after 10-60 steps -> $OUT/round_1"
.venv/bin/firework collect --episodes "$EPISODES" --workers "$WORKERS" --policy imperfect \
  --takeover-after 10-60 --seed 100000 --out "$OUT/round_1"
