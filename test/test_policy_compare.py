"""Paired policy comparison: pairing by (task, seed), the exact sign test, and the CLI's errors."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from firework_common.errors import DataError
from firework_common.manifest import RoundManifest
from firework_policy.compare import (binomial_one_sided_p, binomial_two_sided_p, compare_outcomes,
                                     load_outcomes)

FIREWORK = [sys.executable, "-m", "firework_common.cli"]


def write_eval(round_dir, results, human_steps=0):
    """An eval round directory whose manifest records `results`: {(task, seed): success}."""
    manifest = RoundManifest(round_dir)
    round_dir.mkdir(parents=True, exist_ok=True)
    for i, ((task, seed), ok) in enumerate(results.items()):
        manifest.add({"bag": f"episodes/{i:05d}_{task}", "index": i, "task": task, "seed": seed,
                      "outcome": "success" if ok else "failure", "human_steps": human_steps,
                      "policy": "learned", "steps": 10})
    return round_dir


def test_sign_test_matches_hand_computed_values():
    # 8 wins, 2 losses: P(X >= 8 | n=10) = (45 + 10 + 1) / 1024
    assert binomial_one_sided_p(8, 2) == pytest.approx(56 / 1024)
    assert binomial_two_sided_p(8, 2) == pytest.approx(112 / 1024)
    assert binomial_two_sided_p(2, 8) == pytest.approx(112 / 1024)
    assert binomial_two_sided_p(5, 5) == 1.0
    assert binomial_two_sided_p(0, 0) == 1.0 and binomial_one_sided_p(0, 0) == 1.0
    assert binomial_one_sided_p(0, 3) == 1.0


def test_pairs_by_task_and_seed_and_counts_discordant_pairs():
    a = {("Lift", 1): True, ("Lift", 2): True, ("Lift", 3): False, ("Door", 1): True, ("Door", 9): True}
    b = {("Lift", 1): True, ("Lift", 2): False, ("Lift", 3): True, ("Door", 1): False, ("Stack", 1): True}
    result = compare_outcomes(a, b)
    lift, door, overall = result["tasks"]["Lift"], result["tasks"]["Door"], result["overall"]
    assert (lift["pairs"], lift["a_only"], lift["b_only"]) == (3, 1, 1)
    assert (door["pairs"], door["a_only"], door["b_only"]) == (1, 1, 0)
    assert "Stack" not in result["tasks"]
    assert (overall["pairs"], overall["success_a"], overall["success_b"]) == (4, 3, 2)
    assert (result["unpaired_a"], result["unpaired_b"]) == (1, 1)
    assert overall["p_a_better"] == pytest.approx(binomial_one_sided_p(2, 1))


def test_disjoint_seeds_are_an_error():
    with pytest.raises(DataError, match="share no"):
        compare_outcomes({("Lift", 1): True}, {("Lift", 2): True})


def test_load_outcomes_reads_manifests_and_refuses_duplicates_and_takeovers(tmp_path):
    first = write_eval(tmp_path / "a1", {("Lift", 1): True, ("Lift", 2): False})
    second = write_eval(tmp_path / "a2", {("Lift", 3): True})
    assert load_outcomes([first, second]) == {("Lift", 1): True, ("Lift", 2): False, ("Lift", 3): True}
    with pytest.raises(DataError, match="appears twice"):
        load_outcomes([first, first])
    supervised = write_eval(tmp_path / "s", {("Lift", 1): True}, human_steps=4)
    with pytest.raises(DataError, match="human steps"):
        load_outcomes([supervised])


def test_cli_prints_the_paired_table_and_names_a_missing_directory(tmp_path):
    a = write_eval(tmp_path / "a", {("Nut", s): s < 8 for s in range(10)})
    b = write_eval(tmp_path / "b", {("Nut", s): s < 2 for s in range(10)})
    proc = subprocess.run([*FIREWORK, "policy", "compare", "--a", str(a), "--b", str(b), "--json"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert (result["overall"]["a_only"], result["overall"]["b_only"]) == (6, 0)
    assert result["overall"]["p_a_better"] == pytest.approx(1 / 64)

    proc = subprocess.run([*FIREWORK, "policy", "compare", "--a", str(a), "--b", str(tmp_path / "nope")],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "nope" in proc.stderr and "Traceback" not in proc.stderr


def test_repeats_pair_the_kth_evaluations_and_pool_them(tmp_path):
    # Two training seeds of A and B, each evaluated on the same 10 Nut seeds.
    a = [write_eval(tmp_path / f"a{k}", {("Nut", s): s < 6 for s in range(10)}) for k in range(2)]
    b = [write_eval(tmp_path / "b0", {("Nut", s): s < 3 for s in range(10)}),
         write_eval(tmp_path / "b1", {("Nut", s): 1 <= s < 7 for s in range(10)})]
    with pytest.raises(DataError, match="appears twice"):   # without --repeats the seeds collide
        load_outcomes(a)
    proc = subprocess.run([*FIREWORK, "policy", "compare", "--repeats", "--a", *map(str, a),
                           "--b", *map(str, b), "--json"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert [(r["a_only"], r["b_only"]) for r in result["repeats"].values()] == [(3, 0), (1, 1)]
    overall = result["overall"]
    assert (overall["pairs"], overall["success_a"], overall["success_b"]) == (20, 12, 9)
    assert (overall["a_only"], overall["b_only"]) == (4, 1)
    assert overall["p_a_better"] == pytest.approx(binomial_one_sided_p(4, 1))

    proc = subprocess.run([*FIREWORK, "policy", "compare", "--repeats", "--a", *map(str, a),
                           "--b", str(b[0])], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "--repeats" in proc.stderr and "Traceback" not in proc.stderr
