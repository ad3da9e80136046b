#!/usr/bin/env bash
# Benchmark (issue 5): does fine-tuning with intervention weighting (Sirius) beat fine-tuning on the
# same episodes unweighted? One round of the fleet loop, then a paired comparison on the same seeds:
#   1. a base policy from DEMOS_PER_TASK demonstrations per task (a subset of DEMOS, or recorded)
#   2. round 1: the base policy deployed, the scripted operator taking over when it gets stuck
#   3. fine-tune from the base on demos + round 1 twice: --weighting sirius and --weighting uniform,
#      once per training seed
#   4. evaluate both autonomously on the same seeds; `firework policy compare` (McNemar exact test)
#      per training seed, then pooled over the training seeds (`--repeats`)
# The base policy is evaluated on the same seeds too, so the table shows what the round added.
# ROUNDS > 1 continues the loop as the paper does: round r is deployed half under the sirius and
# half under the uniform fine-tune of round r-1 (training seed 0), so both arms fine-tune on the
# same episodes; each arm then fine-tunes from its own round r-1 checkpoint (per training seed) on
# demos + all rounds, and the pair is evaluated and compared again.
# Env: DEMOS (a demonstration round; recorded if unset), DEMOS_PER_TASK (10), BASE_STEPS (4000),
# ROUND_EPISODES per task (20), ROUND_SEED (130000), FT_STEPS (1500), FT_SEEDS (training seeds of the
# fine-tunes, "0 1 2 3 4": with three, a 2-point difference was not separable from seed noise),
# EVAL_EPISODES per task (20), EVAL_SEED (100000), WORKERS (2), OUT
# (runs/weighting_ab-<timestamp>), ROUNDS (1), PRESET (cpu; the policy preset of the base, whose
# sizes every fine-tune keeps). A finished stage is skipped when the script is run again with the
# same OUT. The defaults take about 2.5 h on 2 cores (measured: 11 min of base training, 8 min per
# 100-episode evaluation, ~24 min per training seed: a 5 min fine-tune pair, two evaluations;
# PRESET=mid: ~3 h, 21 min of base training, ~25 min per training seed); each further round adds
# about 2 h (~8 min of deployment, ~25 min per training seed).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
DEMOS_PER_TASK=${DEMOS_PER_TASK:-10}
BASE_STEPS=${BASE_STEPS:-4000}
ROUND_EPISODES=${ROUND_EPISODES:-20}
ROUND_SEED=${ROUND_SEED:-130000}
FT_STEPS=${FT_STEPS:-1500}
FT_SEEDS=${FT_SEEDS:-0 1 2 3 4}
EVAL_EPISODES=${EVAL_EPISODES:-20}
EVAL_SEED=${EVAL_SEED:-100000}
WORKERS=${WORKERS:-2}
ROUNDS=${ROUNDS:-1}
PRESET=${PRESET:-cpu}
OUT=${OUT:-runs/weighting_ab-$(date +%Y%m%d-%H%M%S)}
FW=.venv/bin/firework
mkdir -p "$OUT"
step() { printf '\n== %s\n' "$*"; }

step "1/4 base policy from $DEMOS_PER_TASK demonstrations per task ($BASE_STEPS steps)"
# A stage's JSON summary appears only when it finished (a killed one reruns, and training resumes).
finished() { [ -f "$OUT/$1.json" ]; }
run_to() { local name=$1; shift; "$@" --json > "$OUT/$name.json.tmp" && mv "$OUT/$name.json.tmp" "$OUT/$name.json"; }
if ! finished demos; then
  rm -rf "$OUT/demos"
  if [ -n "${DEMOS:-}" ]; then
    .venv/bin/python bench/round_subset.py --data "$DEMOS" --per-task "$DEMOS_PER_TASK" --out "$OUT/demos"
    echo "{\"subset_of\": \"$DEMOS\", \"per_task\": $DEMOS_PER_TASK}" > "$OUT/demos.json"
  else
    run_to demos $FW collect --policy operator --episodes "$DEMOS_PER_TASK" --workers "$WORKERS" --out "$OUT/demos"
  fi
fi
finished base || run_to base $FW train policy --data "$OUT/demos" --preset "$PRESET" --steps "$BASE_STEPS" --out "$OUT/base"

step "1/4 the base policy alone on the evaluation seeds (what fine-tuning starts from)"
finished base_eval || { rm -rf "$OUT/base_eval"; run_to base_eval $FW policy eval --checkpoint "$OUT/base" \
  --episodes "$EVAL_EPISODES" --seed "$EVAL_SEED" --workers "$WORKERS" --out "$OUT/base_eval"; }

step "2/4 round 1: base policy deployed under supervision ($ROUND_EPISODES per task, seed $ROUND_SEED)"
finished round_1 || { rm -rf "$OUT/round_1"; run_to round_1 $FW collect --policy learned --checkpoint "$OUT/base" \
  --takeover-on-failure --episodes "$ROUND_EPISODES" --seed "$ROUND_SEED" --workers "$WORKERS" --out "$OUT/round_1"; }

# Fine-tuning runs differ by several points of success with the training seed alone, so every
# seed in FT_SEEDS gives one sirius/uniform pair, and each pair is compared on the same episodes.
# Stage names of round R end in suffix R: nothing for round 1, _r<R> after it.
suffix() { if [ "$1" -gt 1 ]; then echo "_r$1"; fi; }
# finetune_round R DATA...: fine-tune both arms of every training seed (from the base in round 1,
# from the arm's own round R-1 checkpoint after it) on DATA, evaluate and compare.
finetune_round() {
  local R=$1; shift
  local SUF; SUF=$(suffix "$R")
  for S in $FT_SEEDS; do
    step "3/4 round $R: fine-tune on demos + rounds 1..$R, training seed $S: sirius and uniform side by side ($FT_STEPS steps each)"
    PIDS=()
    for W in sirius uniform; do
      local INIT="$OUT/base"; [ "$R" -gt 1 ] && INIT="$OUT/ft_${W}_s$S$(suffix $((R - 1)))"
      finished "ft_${W}_s$S$SUF" || { run_to "ft_${W}_s$S$SUF" $FW train policy --data "$@" \
        --init "$INIT" --preset "$PRESET" --weighting "$W" --seed "$S" --steps "$FT_STEPS" --out "$OUT/ft_${W}_s$S$SUF" & PIDS+=($!); }
    done
    for P in "${PIDS[@]}"; do wait "$P"; done   # set -e: a failed fine-tune stops the script here

    step "4/4 round $R, training seed $S: evaluate both on seeds $EVAL_SEED+ ($EVAL_EPISODES per task), compare pairwise"
    for W in sirius uniform; do
      finished "ft_${W}_s$S${SUF}_eval" || { rm -rf "$OUT/ft_${W}_s$S${SUF}_eval"; run_to "ft_${W}_s$S${SUF}_eval" \
        $FW policy eval --checkpoint "$OUT/ft_${W}_s$S$SUF" --episodes "$EVAL_EPISODES" --seed "$EVAL_SEED" \
        --workers "$WORKERS" --out "$OUT/ft_${W}_s$S${SUF}_eval"; }
    done
    $FW policy compare --a "$OUT/ft_sirius_s$S${SUF}_eval" --b "$OUT/ft_uniform_s$S${SUF}_eval"
    echo "A = sirius, B = uniform (round $R, training seed $S)"
  done
  step "round $R, all training seeds ($FT_SEEDS) pooled: each sirius/uniform pair on its own episodes, one test"
  local A=() B=()
  for S in $FT_SEEDS; do A+=("$OUT/ft_sirius_s$S${SUF}_eval"); B+=("$OUT/ft_uniform_s$S${SUF}_eval"); done
  $FW policy compare --repeats --a "${A[@]}" --b "${B[@]}"
  $FW policy compare --repeats --a "${A[@]}" --b "${B[@]}" --json > "$OUT/compare_pooled$SUF.json"
  echo "A = sirius, B = uniform (round $R)"
}

DATA=("$OUT/demos" "$OUT/round_1")
finetune_round 1 "${DATA[@]}"
FIRST_SEED=${FT_SEEDS%% *}
for R in $(seq 2 "$ROUNDS"); do
  PREV=$(suffix $((R - 1)))
  HALF=$(( (ROUND_EPISODES + 1) / 2 ))
  for W in sirius uniform; do
    # Distinct seeds per round and per collecting arm: no episode repeats another round's or the evaluation's.
    RSEED=$(( ROUND_SEED + 1000 * R )); [ "$W" = uniform ] && RSEED=$(( RSEED + 500 ))
    step "2/4 round $R: the $W fine-tune of round $((R - 1)) (training seed $FIRST_SEED) deployed under supervision ($HALF per task, seed $RSEED)"
    finished "round_${R}_$W" || { rm -rf "$OUT/round_${R}_$W"; run_to "round_${R}_$W" $FW collect --policy learned \
      --checkpoint "$OUT/ft_${W}_s$FIRST_SEED$PREV" --takeover-on-failure --episodes "$HALF" --seed "$RSEED" \
      --workers "$WORKERS" --out "$OUT/round_${R}_$W"; }
    DATA+=("$OUT/round_${R}_$W")
  done
  finetune_round "$R" "${DATA[@]}"
done
echo "everything is in $OUT"
