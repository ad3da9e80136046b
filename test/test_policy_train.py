"""`firework train policy` (from scratch, resumed after a kill, fine-tuned from the last round) and
`firework policy eval` (the learned policy drives simulated robots; episodes are recorded as bags)."""
from __future__ import annotations

import json
import pickle
import shutil

import numpy as np
import pytest
import torch
import yaml

from firework_common.cli import main
from firework_common.config import config_dir
from firework_common.episode_bag import read_episode
from firework_common.manifest import load_manifest
from firework_common.schema import ControlSource
from firework_policy.checkpoint import load_policy
from firework_policy.data import PolicyDataset
from firework_policy.train import TRAIN_STATE
from policy_synthetic import write_round


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def rounds(tmp_path_factory):
    root = tmp_path_factory.mktemp("rounds")
    r0 = write_round(root / "round_0", tasks=("Lift",), demos=3, steps=20)
    r1 = write_round(root / "round_1", tasks=("Lift", "Door"), demos=1, takeovers=2, steps=30, takeover_at=18,
                     seed=100)
    return r0, r1


def _json(capsys) -> dict:
    return json.loads(capsys.readouterr().out)


@pytest.fixture(scope="module")
def base_checkpoint(rounds, tmp_path_factory):
    out = tmp_path_factory.mktemp("ckpt") / "round_0"
    assert main(["train", "policy", "--data", str(rounds[0]), "--out", str(out), "--preset", "tiny",
                 "--steps", "30"]) == 0
    return out


def test_train_writes_a_checkpoint_with_timing_and_shares(base_checkpoint):
    policy = load_policy(base_checkpoint)
    assert policy.goals.tasks == ("Lift",) and policy.meta["step"] == 30
    assert policy.meta["label_shares"]["demo"] == 1.0
    assert policy.meta["timing"]["samples_per_s"] > 0 and policy.meta["parameters"] > 0
    assert (base_checkpoint / "policy.safetensors").is_file() and (base_checkpoint / TRAIN_STATE).is_file()


def test_killed_training_resumes_from_its_last_checkpoint(rounds, tmp_path, monkeypatch, capsys):
    out = tmp_path / "ckpt"
    real_sample = PolicyDataset.sample
    calls = {"n": 0}

    def dying_sample(self, batch_size):
        calls["n"] += 1
        if calls["n"] == 36:
            raise KeyboardInterrupt
        return real_sample(self, batch_size)

    monkeypatch.setattr(PolicyDataset, "sample", dying_sample)
    args = ["train", "policy", "--data", str(rounds[0]), "--out", str(out), "--preset", "tiny", "--steps", "40"]
    assert main(args) == 130
    assert "resumes the run" in capsys.readouterr().err
    assert load_policy(out).meta["step"] == 30            # tiny checkpoints every 30 steps
    monkeypatch.setattr(PolicyDataset, "sample", real_sample)
    assert main(args + ["--json"]) == 0
    result = _json(capsys)
    assert result["resumed_from"] == 30 and result["steps"] == 40
    assert load_policy(out).meta["step"] == 40
    # Another data set in the same --out is refused by name, not silently mixed.
    assert main(["train", "policy", "--data", str(rounds[1]), "--out", str(out), "--preset", "tiny"]) == 2
    assert "use another --out or --no-resume" in capsys.readouterr().err


def test_finetune_from_the_last_round_adds_tasks_and_weights_interventions(rounds, base_checkpoint, tmp_path, capsys):
    out = tmp_path / "round_1"
    assert main(["train", "policy", "--data", str(rounds[0]), str(rounds[1]), "--init", str(base_checkpoint),
                 "--out", str(out), "--preset", "tiny", "--json"]) == 0
    result = _json(capsys)
    assert result["steps"] == 20                                         # tiny finetune_steps
    assert result["tasks"] == ["Lift", "Door"]
    assert result["label_shares"]["human"] == pytest.approx(0.5)
    before, after = load_policy(base_checkpoint), load_policy(out)
    np.testing.assert_array_equal(after.goals.vectors[0], before.goals.vectors[0])   # Lift kept
    assert after.meta["init"] == str(base_checkpoint)
    assert main(["train", "policy", "--data", str(rounds[0]), str(rounds[1]), "--init", str(base_checkpoint),
                 "--out", str(tmp_path / "u"), "--preset", "tiny", "--weighting", "uniform", "--json"]) == 0
    uniform = _json(capsys)
    assert uniform["label_shares"]["human"] == pytest.approx(uniform["label_counts"]["human"]
                                                             / sum(uniform["label_counts"].values()))
    # The sweep knobs: another human share and another training seed, recorded in the checkpoint.
    swept = tmp_path / "swept"
    assert main(["train", "policy", "--data", str(rounds[0]), str(rounds[1]), "--init", str(base_checkpoint),
                 "--out", str(swept), "--preset", "tiny", "--human-share", "0.25", "--seed", "3", "--json"]) == 0
    assert _json(capsys)["label_shares"]["human"] == pytest.approx(0.25)
    assert load_policy(swept).meta["train"]["seed"] == 3
    assert load_policy(swept).meta["weighting"]["human_share"] == 0.25
    # Pre-intervention steps not down-weighted: they take more of the non-human mass than at 0.1.
    assert main(["train", "policy", "--data", str(rounds[0]), str(rounds[1]), "--init", str(base_checkpoint),
                 "--out", str(tmp_path / "pre1"), "--preset", "tiny", "--pre-intervention-weight", "1",
                 "--json"]) == 0
    pre1 = _json(capsys)
    assert pre1["label_shares"]["human"] == pytest.approx(0.5)
    assert pre1["label_counts"]["pre-intervention"] > 0
    assert pre1["label_shares"]["pre-intervention"] > result["label_shares"]["pre-intervention"]
    assert load_policy(tmp_path / "pre1").meta["weighting"]["pre_intervention_weight"] == 1.0


def test_cli_refuses_bad_arguments_in_one_line(rounds, base_checkpoint, tmp_path, capsys):
    assert main(["train", "policy", "--data", str(tmp_path), "--out", str(tmp_path / "x")]) == 2
    assert "not a round directory" in capsys.readouterr().err
    assert main(["train", "policy", "--data", str(rounds[0]), "--out", str(tmp_path / "x"),
                 "--init", str(tmp_path)]) == 2
    assert "no policy checkpoint there" in capsys.readouterr().err
    assert main(["train", "policy", "--data", str(rounds[0]), "--out", str(tmp_path / "x"),
                 "--human-share", "1.5"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "human_share must be in [0, 1), got 1.5" in err
    assert main(["train", "policy", "--data", str(rounds[0]), "--out", str(tmp_path / "x"),
                 "--weighting", "uniform", "--human-share", "0.3"]) == 2
    assert "--human-share applies to sirius weighting" in capsys.readouterr().err
    assert main(["train", "policy", "--data", str(rounds[0]), "--out", str(tmp_path / "x"),
                 "--pre-intervention-weight", "-1"]) == 2
    assert "pre_intervention_weight must be >= 0, got -1.0" in capsys.readouterr().err
    assert main(["train", "policy", "--data", str(rounds[0]), "--out", str(tmp_path / "x"),
                 "--weighting", "uniform", "--pre-intervention-weight", "1"]) == 2
    assert "--pre-intervention-weight applies to sirius weighting" in capsys.readouterr().err
    assert main(["policy", "eval", "--checkpoint", str(base_checkpoint), "--tasks", "Stack",
                 "--episodes", "1", "--out", str(tmp_path / "e")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not trained on task(s) Stack; it knows: Lift" in err


def test_actor_factory_pickles_without_its_model(base_checkpoint):
    from firework_policy.runtime import LearnedActorFactory

    factory = LearnedActorFactory(base_checkpoint)
    factory.runner()
    clone = pickle.loads(pickle.dumps(factory))
    assert clone._runner is None and clone.checkpoint == base_checkpoint


@pytest.fixture(scope="module")
def robosuite_imported(sim_config):
    """Import robosuite outside capsys: its log handler keeps the stderr of the test that imports it."""
    from firework_sim.robot_env import _import_robosuite

    _import_robosuite(sim_config.render.gl_backend)


@pytest.mark.sim
def test_policy_eval_drives_sim_robots_and_records_bags(robosuite_imported, base_checkpoint, tmp_path,
                                                        monkeypatch, capsys):
    cfg = tmp_path / "config"
    shutil.copytree(config_dir(), cfg)
    sim = yaml.safe_load((cfg / "sim.yaml").read_text())
    sim["sim"]["max_steps"]["Lift"] = 12                                 # a short episode is enough
    (cfg / "sim.yaml").write_text(yaml.safe_dump(sim))
    monkeypatch.setenv("FIREWORK_CONFIG_DIR", str(cfg))
    out = tmp_path / "eval"
    assert main(["policy", "eval", "--checkpoint", str(base_checkpoint), "--tasks", "Lift", "--episodes", "1",
                 "--seed", "7", "--out", str(out), "--json"]) == 0
    summary = _json(capsys)
    assert summary["success"] == {"Lift": 0.0} and summary["seeds"] == [7]
    assert summary["tasks"]["Lift"]["steps"] == 12 and summary["tasks"]["Lift"]["human_steps"] == 0
    (record,) = load_manifest(out)
    ep = read_episode(out / record["bag"])
    assert ep.meta["policy"] == "learned" and ep.num_steps == 12
    assert (ep.sources == ControlSource.ROBOT).all()
    assert ep.actions.shape == (12, 7) and np.abs(ep.actions).max() <= 1.0
