"""`firework collect`: end to end through the real CLI, plus its bad-input behaviour."""
from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from rosbags.highlevel import AnyReader

from firework_common.episode_bag import TYPESTORE, read_episode
from firework_common.manifest import load_manifest

pytestmark = pytest.mark.sim
FIREWORK = [sys.executable, "-m", "firework_common.cli"]


def run_cli(*args, timeout=300):
    return subprocess.run([*FIREWORK, *args], capture_output=True, text=True, timeout=timeout)


def assert_one_line_error(proc, *fragments):
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in proc.stderr.strip().splitlines() if line]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("firework: error:")
    assert "Traceback" not in proc.stderr
    for fragment in fragments:
        assert fragment in lines[0]


def test_collect_with_two_workers_writes_readable_bags_and_a_summary(tmp_path):
    out = tmp_path / "round_0"
    proc = run_cli("collect", "--tasks", "Lift,Door", "--episodes", "1", "--workers", "2",
                   "--policy", "imperfect", "--takeover-after", "10-20", "--out", str(out), "--json")
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["episodes"] == 2 and set(summary["tasks"]) == {"Lift", "Door"}
    for t in summary["tasks"].values():
        assert 0.0 <= t["success_rate"] <= 1.0 and t["steps_per_s_per_worker"] > 0
        assert 0.0 < t["human_step_ratio"] < 1.0  # the policy acted first, then the operator
        assert t["takeovers"] == 1                 # a fixed-step takeover is never handed back
    records = load_manifest(out)
    assert sorted(r["task"] for r in records) == ["Door", "Lift"]
    for r in records:
        bag = out / r["bag"]
        with AnyReader([bag], default_typestore=TYPESTORE) as reader:
            assert any(c.msgtype == "sensor_msgs/msg/Image" for c in reader.connections)
        ep = read_episode(bag)
        assert ep.num_steps == r["steps"]
        assert ep.sources[0] == 0 and ep.sources[-1] == 1
        assert 10 <= r["takeover_step"] <= 20
    assert "collect" in proc.stderr  # the progress bar


def test_unknown_task_is_one_line_naming_the_known_tasks(tmp_path):
    proc = run_cli("collect", "--tasks", "Lift,Lfit", "--episodes", "1", "--out", str(tmp_path / "r"))
    assert_one_line_error(proc, "Lfit", "known tasks: Lift, Stack")
    assert not (tmp_path / "r").exists()


def test_missing_output_parent_is_one_line(tmp_path):
    proc = run_cli("collect", "--tasks", "Lift", "--episodes", "1", "--out", str(tmp_path / "no" / "r"))
    assert_one_line_error(proc, "does not exist")


def test_takeover_without_imperfect_policy_is_refused(tmp_path):
    proc = run_cli("collect", "--tasks", "Lift", "--episodes", "1", "--out", str(tmp_path / "r"),
                   "--takeover-after", "20")
    assert_one_line_error(proc, "--policy imperfect")


def test_disk_error_mid_run_keeps_finished_episodes(tmp_path, monkeypatch, capsys):
    """ENOSPC while writing the second episode: exit 2, one line, first episode intact."""
    from firework_common import cli, episode_bag

    real_write_step = episode_bag.EpisodeBagWriter.write_step
    calls = {"episodes": 0}

    def failing_write_step(self, step, *args, **kwargs):
        if step == 0:
            calls["episodes"] += 1
        if calls["episodes"] == 2 and step == 3:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self.partial_path))
        return real_write_step(self, step, *args, **kwargs)

    monkeypatch.setattr(episode_bag.EpisodeBagWriter, "write_step", failing_write_step)
    out = tmp_path / "r"
    rc = cli.main(["collect", "--tasks", "Lift", "--episodes", "2", "--out", str(out)])
    err = capsys.readouterr().err
    assert rc == 2
    assert "No space left on device" in err and "Traceback" not in err
    records = load_manifest(out)
    assert len(records) == 1
    assert read_episode(out / records[0]["bag"]).num_steps == records[0]["steps"]


def test_killed_collection_leaves_finished_episodes_readable(tmp_path):
    out = tmp_path / "r"
    proc = subprocess.Popen([*FIREWORK, "collect", "--tasks", "Lift", "--episodes", "20", "--out", str(out)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            if (out / "manifest.json").exists() and len(load_manifest(out)) >= 2:
                break
            assert proc.poll() is None, "collection ended before it could be killed"
            time.sleep(0.2)
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    records = load_manifest(out)
    assert len(records) >= 2
    for r in records:
        ep = read_episode(out / r["bag"])
        assert ep.num_steps == r["steps"] and ep.outcome.value == r["outcome"]
    finished = {p.name for p in (out / "episodes").iterdir() if not p.name.endswith(".partial")}
    assert finished >= {Path(r["bag"]).name for r in records}
