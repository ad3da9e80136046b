"""The monitor CLIs end to end on small synthetic round bags: train, fit, fit-threshold, eval, bench."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from policy_synthetic import write_round

FIREWORK = [sys.executable, "-m", "firework_common.cli"]


def run_cli(*args):
    proc = subprocess.run([*FIREWORK, *map(str, args)], capture_output=True, text=True, timeout=600)
    return proc


@pytest.fixture(scope="module")
def rounds(tmp_path_factory):
    root = tmp_path_factory.mktemp("monitor_cli")
    r0 = write_round(root / "round_0", tasks=("Lift", "Door", "Stack"), demos=2, takeovers=3, steps=24,
                     takeover_at=14, seed=0)
    held = write_round(root / "held", tasks=("Lift", "Door", "Stack"), demos=0, takeovers=2, steps=24,
                       takeover_at=12, seed=100)
    return root, r0, held


def test_train_fit_threshold_eval(rounds):
    root, r0, held = rounds
    wm, pred = root / "wm", root / "pred"
    proc = run_cli("train", "world-model", "--data", r0, "--out", wm, "--preset", "tiny", "--steps", "12", "--json")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["steps"] == 12 and "reconstruction_psnr_db" in result["held_out"]
    assert (wm / "world_model.safetensors").is_file() and (wm / "world_model.json").is_file()
    assert "world model" in proc.stderr          # progress bar

    proc = run_cli("monitor", "fit", "--world-model", wm, "--data", r0, "--out", pred, "--json")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert set(report) == {"Lift", "Door", "Stack"}
    assert all(r["class_counts"][1] > 0 and r["class_counts"][2] > 0 for r in report.values())

    proc = run_cli("monitor", "fit-threshold", "--world-model", wm, "--predictors", pred, "--data", r0, "--json")
    assert proc.returncode == 0, proc.stderr
    fit = json.loads(proc.stdout)
    assert fit["direction"] in ("falls", "rises", "flat") and len(fit["points"]) == 3

    proc = run_cli("monitor", "eval", "--world-model", wm, "--predictors", pred, "--data", held, "--json")
    assert proc.returncode == 0, proc.stderr
    ev = json.loads(proc.stdout)
    assert set(ev["tasks"]) == {"Lift", "Door", "Stack"}
    assert ev["overall_flags"]["events"] == 6


def test_resumed_training_continues_from_its_checkpoint(rounds):
    root, r0, _ = rounds
    wm = root / "wm_resume"
    assert run_cli("train", "world-model", "--data", r0, "--out", wm, "--preset", "tiny", "--steps", "6").returncode == 0
    proc = run_cli("train", "world-model", "--data", r0, "--out", wm, "--preset", "tiny", "--steps", "9", "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["resumed_from"] == 6


def test_bad_inputs_are_one_line_errors(rounds, tmp_path):
    root, r0, _ = rounds
    proc = run_cli("train", "world-model", "--data", tmp_path, "--out", tmp_path / "wm", "--preset", "tiny")
    assert proc.returncode == 2 and "no manifest.json" in proc.stderr and "Traceback" not in proc.stderr
    proc = run_cli("train", "world-model", "--data", r0, "--out", tmp_path / "wm", "--preset", "huge")
    assert proc.returncode == 2 and "unknown world-model preset 'huge'" in proc.stderr
    proc = run_cli("monitor", "eval", "--world-model", tmp_path, "--predictors", tmp_path, "--data", r0)
    assert proc.returncode == 2 and "no checkpoint 'world_model'" in proc.stderr


def test_bench_monitor_reports_latencies():
    proc = run_cli("bench", "monitor", "--preset", "tiny", "--robots", "1,2", "--repeats", "3", "--json")
    assert proc.returncode == 0, proc.stderr
    r = json.loads(proc.stdout)
    assert set(r["ticks"]) == {"1", "2"}
    assert r["ticks"]["2"]["batched"]["p99_ms"] > 0 and r["matmul_gflops"] > 0
    assert r["ood_scoring"]["brute_force_100000"]["kmeans_speedup_p50"] > 1
