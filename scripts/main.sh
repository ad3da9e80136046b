#!/usr/bin/env bash
# The README's main job: one simulated fleet learning round-trip on CPU, every stage with progress.
#   1. round 0: scripted-operator demonstrations on all five tasks (the paper's D0)
#   2. train the multi-task policy on round 0
#   3. round 1: the policy deployed, the operator supervising and taking over when it goes wrong
#   4. train the visual world model on rounds 0-1, fit the error predictors (failure + OOD, p_H)
#   5. round 2: the imperfect stand-in policy under supervision, held out: evaluate the monitor on it
#   6. fine-tune the policy on rounds 0-1 with intervention weighting; evaluate it autonomously
# Sizes (environment): EPISODES per task per round (default 10), WORKERS (2), POLICY_STEPS (1500),
# FINETUNE_STEPS (500), WM_STEPS (1000), EVAL_EPISODES (5), OUT (runs/<timestamp>).
# The defaults take roughly 30-40 minutes on 2 cores; the real presets' numbers are in the issues.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bash "$ROOT/scripts/setup.sh"
cd "$ROOT"
EPISODES=${EPISODES:-10}
WORKERS=${WORKERS:-2}
POLICY_STEPS=${POLICY_STEPS:-1500}
FINETUNE_STEPS=${FINETUNE_STEPS:-500}
WM_STEPS=${WM_STEPS:-1000}
EVAL_EPISODES=${EVAL_EPISODES:-5}
OUT=${OUT:-runs/$(date +%Y%m%d-%H%M%S)}
FW=.venv/bin/firework
mkdir -p "$OUT"
step() { printf '\n== %s\n' "$*"; }

step "1/6 round 0: operator demonstrations ($EPISODES per task) -> $OUT/round_0"
$FW collect --episodes "$EPISODES" --workers "$WORKERS" --policy operator --out "$OUT/round_0"

step "2/6 train the policy on round 0 ($POLICY_STEPS steps) -> $OUT/policy_0"
$FW train policy --data "$OUT/round_0" --out "$OUT/policy_0" --steps "$POLICY_STEPS"

step "3/6 round 1: policy deployed, operator takes over on failure -> $OUT/round_1"
$FW collect --episodes "$EPISODES" --workers "$WORKERS" --policy learned --checkpoint "$OUT/policy_0" \
  --takeover-on-failure --seed 100000 --out "$OUT/round_1"

step "4/6 world model on rounds 0-1 ($WM_STEPS steps) and error predictors"
$FW train world-model --data "$OUT/round_0" "$OUT/round_1" --out "$OUT/world_model" --steps "$WM_STEPS"
$FW monitor fit --world-model "$OUT/world_model" --data "$OUT/round_0" "$OUT/round_1" --out "$OUT/predictors"

step "5/6 held-out round: imperfect policy under supervision; monitor evaluation"
$FW collect --episodes "$EVAL_EPISODES" --workers "$WORKERS" --policy imperfect --takeover-on-failure \
  --seed 200000 --out "$OUT/heldout"
$FW monitor eval --world-model "$OUT/world_model" --predictors "$OUT/predictors" --data "$OUT/heldout" \
  --json > "$OUT/monitor_eval.json"
.venv/bin/python - "$OUT/monitor_eval.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
for task, row in r["tasks"].items():
    f = row.get("flags", {})
    print(f"  {task:<18} failure AUROC {row.get('failure_auroc')}  flag recall {f.get('recall')}  "
          f"precision {f.get('precision')}  lead {f.get('mean_lead_steps')} steps")
PY

step "6/6 fine-tune the policy on rounds 0-1 (intervention-weighted) and evaluate it"
$FW train policy --data "$OUT/round_0" "$OUT/round_1" --init "$OUT/policy_0" --out "$OUT/policy_1" \
  --steps "$FINETUNE_STEPS"
$FW policy eval --checkpoint "$OUT/policy_1" --episodes "$EVAL_EPISODES" --workers "$WORKERS"
echo
echo "done: everything is in $OUT"
