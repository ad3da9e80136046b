"""The BC-Transformer learns; checkpoints round-trip exactly; the runtime only ever returns (K, 7)
actions in [-1, 1] and names what is wrong with bad input."""
from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from firework_common.config import config_dir, read_yaml
from firework_common.errors import ConfigError, DataError
from firework_policy.checkpoint import CHECKPOINT_NAME, LoadedPolicy, build_model, load_policy, save_policy
from firework_policy.config import PolicyModelConfig, PolicyTrainConfig, WeightingConfig, load_policy_config
from firework_policy.data import PolicyDataset, SampleLabel
from firework_policy.goals import GOAL_DIM, GoalTable
from firework_policy.model import random_shift
from firework_policy.runtime import PolicyInputError, PolicyRunner
from policy_synthetic import synthetic_step

TASKS = ("Lift", "Door")


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Small models run fastest on one thread (and the machine's cores are shared)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def tiny():
    return load_policy_config("tiny")


@pytest.fixture(scope="module")
def goals():
    """Stand-in goal vectors (the real encoder is tested in test_policy_data)."""
    rng = np.random.default_rng(0)
    v = rng.normal(size=(len(TASKS), GOAL_DIM)).astype(np.float32)
    return GoalTable(TASKS, ("lift the red cube", "open the door"), v / np.linalg.norm(v, axis=1, keepdims=True))


def synthetic_episodes(count: int, steps: int = 20, seed: int = 0):
    from firework_policy.data import PolicyEpisode

    rng = np.random.default_rng(seed)
    out = []
    for i in range(count):
        task = TASKS[i % 2]
        pos = rng.uniform(5, 69, size=2)
        frames, proprio, actions = [], [], []
        for t in range(steps):
            obs, a = synthetic_step(rng, task, pos, t)
            frames.append(np.stack([obs.images["agentview"], obs.images["eye_in_hand"]]))
            proprio.append(obs.proprio())
            actions.append(a)
            pos = np.clip(pos + 4 * a[:2], 0, 74)
        out.append(PolicyEpisode(task, np.stack(frames), np.stack(proprio),
                                 np.stack(actions).astype(np.float32),
                                 np.full(steps, SampleLabel.DEMO, dtype=np.int8), None))
    return out


def train_tiny_policy(cfg, goals, dataset, steps: int, augment: bool):
    """Train a fresh model of `cfg` on `dataset` (16 windows per step); -> (model in eval mode, losses)."""
    torch.manual_seed(0)
    model = build_model(cfg, goals)
    model.set_statistics(**dataset.statistics())
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(steps):
        frames, proprio, task, actions, weights, chunk_mask = dataset.tensors(dataset.sample(16))
        if augment:
            frames = random_shift(frames, cfg.random_shift)
        loss, _ = model.loss(frames, proprio, task, actions, weights, chunk_mask)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    return model.eval(), losses


@pytest.fixture(scope="module")
def trained(tiny, goals):
    """A tiny policy trained briefly on synthetic episodes, with its loss history."""
    cfg = tiny.model
    dataset = PolicyDataset(synthetic_episodes(8), TASKS, cfg.context, WeightingConfig(), 0, cfg.action_chunk)
    model, losses = train_tiny_policy(cfg, goals, dataset, steps=150, augment=True)
    model.requires_grad_(False)
    return LoadedPolicy(model, goals, {"note": "test"}), losses


def test_presets_load_and_yaml_sets_every_field():
    data = read_yaml(config_dir() / "policy.yaml")
    assert set(data["presets"]) == {"cpu", "mid", "paper", "tiny"}
    for preset in data["presets"]:
        pcfg = load_policy_config(preset)
        for cls, section in ((PolicyModelConfig, "model"), (PolicyTrainConfig, "train")):
            missing = {f.name for f in dataclasses.fields(cls)} - set(data["presets"][preset][section])
            assert not missing, f"presets.{preset}.{section} lacks {missing}"
        assert pcfg.model.cameras == ("agentview", "eye_in_hand")
    missing = {f.name for f in dataclasses.fields(WeightingConfig)} - set(data["weighting"])
    assert not missing
    paper = load_policy_config("paper").model
    assert (paper.embed_dim, paper.transformer_layers, paper.transformer_heads, paper.context) == (512, 6, 8, 10)
    assert paper.stage_channels == (64, 128, 256, 512) and paper.head == "gmm" and paper.gmm_modes == 5
    # mid is cpu at twice the width and nothing else, so a comparison between them is about size
    cpu, mid = load_policy_config("cpu"), load_policy_config("mid")
    widths = ("stem_channels", "stage_channels", "camera_feature_dim", "goal_feature_dim", "embed_dim")
    assert mid.train == cpu.train
    assert dataclasses.replace(mid.model, **{f: getattr(cpu.model, f) for f in widths}) == cpu.model
    assert mid.model.embed_dim == 2 * cpu.model.embed_dim
    assert mid.model.stage_channels == tuple(2 * c for c in cpu.model.stage_channels)


def test_unknown_preset_and_key_are_named(tmp_path):
    with pytest.raises(ConfigError, match="unknown policy preset 'gpu'; available: cpu, mid, paper, tiny"):
        load_policy_config("gpu")
    bad = tmp_path / "policy.yaml"
    bad.write_text("presets:\n  cpu:\n    model:\n      embed_dimm: 3\n")
    with pytest.raises(ConfigError, match=r"embed_dimm"):
        load_policy_config("cpu", path=bad)


def test_loss_falls_on_a_small_set(trained):
    _, losses = trained
    assert np.mean(losses[-15:]) < np.mean(losses[:15]) - 1.0


def test_trained_policy_follows_the_image(trained):
    """The square left of centre -> move right (+x); right of centre -> move left."""
    policy, _ = trained
    runner = PolicyRunner(policy)
    rng = np.random.default_rng(1)
    dx = []
    for i, x in enumerate((8.0, 66.0)):
        obs, _ = synthetic_step(rng, "Lift", np.array([x, 37.0]), 8)
        frames = np.stack([obs.images["agentview"], obs.images["eye_in_hand"]])
        for _ in range(3):
            a = runner.act([(f"r{i}", "Lift", frames, obs.proprio())])
        dx.append(a[0, 0])
    assert dx[0] > 0.2 and dx[1] < -0.2


def test_checkpoint_round_trip_is_exact(trained, tmp_path):
    policy, _ = trained
    save_policy(policy.model, policy.goals, tmp_path, {"step": 7})
    loaded = load_policy(tmp_path, expected=policy.cfg)
    a, b = policy.model.state_dict(), loaded.model.state_dict()
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert loaded.goals.tasks == TASKS and loaded.meta["step"] == 7
    np.testing.assert_array_equal(loaded.goals.vectors, policy.goals.vectors)
    frames = np.random.default_rng(0).integers(0, 256, (2, 84, 84, 3), dtype=np.uint8)
    x = [("r", "Door", frames, np.zeros(9))]
    np.testing.assert_array_equal(PolicyRunner(policy).act(x), PolicyRunner(loaded).act(x))
    # A different expected config names the field that differs.
    with pytest.raises(DataError, match=r"model\.embed_dim is 32; expected 64"):
        load_policy(tmp_path, expected=dataclasses.replace(policy.cfg, embed_dim=64))


def test_pickled_or_mismatched_checkpoints_are_refused(trained, tmp_path):
    policy, _ = trained
    save_policy(policy.model, policy.goals, tmp_path, {})
    torch.save(policy.model.state_dict(), tmp_path / f"{CHECKPOINT_NAME}.safetensors")   # a pickle
    with pytest.raises(DataError, match="pickled checkpoints are refused"):
        load_policy(tmp_path)
    save_policy(policy.model, policy.goals, tmp_path, {})
    meta = json.loads((tmp_path / f"{CHECKPOINT_NAME}.json").read_text())
    meta["config"]["model"]["keypoints"] = 9
    (tmp_path / f"{CHECKPOINT_NAME}.json").write_text(json.dumps(meta))
    with pytest.raises(DataError, match="does not match its config"):
        load_policy(tmp_path)
    with pytest.raises(DataError, match="no checkpoint 'policy'"):
        load_policy(tmp_path / "nothing")


def test_act_returns_k_actions_in_range_and_keeps_histories(trained):
    policy, _ = trained
    runner = PolicyRunner(policy)
    rng = np.random.default_rng(0)
    inputs = [(f"robot_{k}", TASKS[k % 2], rng.integers(0, 256, (2, 84, 84, 3), dtype=np.uint8),
               rng.normal(size=9)) for k in range(4)]
    for _ in range(5):
        out = runner.act(inputs)
        assert out.shape == (4, 7) and out.dtype == np.float64
        assert np.all(out >= -1) and np.all(out <= 1) and np.all(np.isfinite(out))
    assert set(runner._history.snapshot()) == {f"robot_{k}" for k in range(4)}
    assert all(len(h) == policy.cfg.context for h in runner._history.snapshot().values())
    # Batched == one robot at a time (histories are per robot).
    solo = PolicyRunner(policy)
    for _ in range(5):
        single = np.concatenate([solo.act([x]) for x in inputs])
    np.testing.assert_allclose(single, out, atol=1e-5)
    runner.reset("robot_0")
    assert "robot_0" not in runner._history.snapshot()
    assert runner.act([]).shape == (0, 7)


def test_extreme_outputs_are_clipped(trained):
    policy, _ = trained
    model = build_model(policy.cfg, policy.goals)
    model.load_state_dict(policy.model.state_dict())
    model.action_mean.fill_(50.0)                         # a policy that wants far outside the box
    runner = PolicyRunner(LoadedPolicy(model.eval(), policy.goals, {}))
    out = runner.act([("r", "Lift", np.zeros((2, 84, 84, 3), np.uint8), np.zeros(9))])
    assert out.shape == (1, 7) and np.all(out == 1.0)


@pytest.mark.parametrize("frames, proprio, match", [
    (np.zeros((2, 64, 64, 3), np.uint8), np.zeros(9), r"frames shape is \(2, 64, 64, 3\); expected \(2, 84, 84, 3\)"),
    (np.zeros((2, 3, 84, 84), np.uint8), np.zeros(9), "channels first"),
    (np.zeros((1, 84, 84, 3), np.uint8), np.zeros(9), r"cameras \['agentview', 'eye_in_hand'\]"),
    (np.zeros((2, 84, 84, 3), np.float32), np.zeros(9), "dtype is float32; expected uint8"),
    (np.zeros((2, 84, 84, 3), np.uint8), np.zeros(7), r"proprio shape is \(7,\); expected \(9,\)"),
    (np.zeros((2, 84, 84, 3), np.uint8), np.full(9, np.nan), "proprio contains NaN"),
])
def test_bad_input_is_named_and_changes_nothing(trained, frames, proprio, match):
    policy, _ = trained
    runner = PolicyRunner(policy)
    good = ("ok", "Lift", np.zeros((2, 84, 84, 3), np.uint8), np.zeros(9))
    with pytest.raises(PolicyInputError, match=match):
        runner.act([good, ("bad", "Lift", frames, proprio)])
    assert runner._history.snapshot() == {}           # the whole call was refused before any state changed


def test_unknown_task_names_the_known_tasks(trained):
    runner = PolicyRunner(trained[0])
    with pytest.raises(PolicyInputError, match=r"robot 'r': the policy was not trained on task 'Stack'; "
                                               r"it knows: Lift, Door"):
        runner.act([("r", "Stack", np.zeros((2, 84, 84, 3), np.uint8), np.zeros(9))])
    with pytest.raises(PolicyInputError, match="unique"):
        x = ("r", "Lift", np.zeros((2, 84, 84, 3), np.uint8), np.zeros(9))
        runner.act([x, x])


def test_action_chunks_are_temporally_ensembled(trained):
    """With chunking, the executed action averages what the pending chunks predict for this step
    (a chunk made `age` ticks ago contributes its row `age`, weighted exp(-decay * age))."""
    policy, _ = trained
    cfg = dataclasses.replace(policy.cfg, action_chunk=3, ensemble_decay=0.5)
    model = build_model(cfg, policy.goals).eval()
    runner = PolicyRunner(LoadedPolicy(model, policy.goals, {}))
    # Chunk predicted at tick n: row i = 0.1 * (n + 1) + 0.01 * i in every action dimension.
    tick = {"n": 0}

    def fake_chunks(tokens, sample=False, generators=None):
        n = tick["n"]
        tick["n"] += 1
        rows = 0.1 * (n + 1) + 0.01 * torch.arange(3, dtype=torch.float32)
        return rows[None, :, None].expand(len(tokens), 3, 7).clone()

    model.act_from_tokens = fake_chunks
    x = [("r", "Lift", np.zeros((2, 84, 84, 3), np.uint8), np.zeros(9))]
    outs = [runner.act(x)[0, 0] for _ in range(4)]
    w = np.exp(-0.5 * np.arange(3))
    assert outs[0] == pytest.approx(0.1)
    assert outs[1] == pytest.approx((0.2 * w[0] + 0.11 * w[1]) / w[:2].sum())
    # Tick 3: chunks of ticks 3, 2, 1 (the one of tick 0 has no row for this step any more).
    assert outs[3] == pytest.approx((0.4 * w[0] + 0.31 * w[1] + 0.22 * w[2]) / w.sum())
    runner.reset("r")                                   # a new episode forgets pending chunks
    assert runner.act(x)[0, 0] == pytest.approx(0.5)
    runner.act(x)
    runner.resume("r")                                  # so does control coming back from a human
    assert runner.act(x)[0, 0] == pytest.approx(0.7)
    assert len(runner._history.snapshot()["r"]) == policy.cfg.context


@pytest.mark.parametrize("head", ["gmm", "deterministic"])
def test_chunked_policy_learns_and_acts(tiny, goals, head):
    """A chunked policy's loss falls (with either head) and act() still returns one (K, 7) action
    per robot."""
    cfg = dataclasses.replace(tiny.model, action_chunk=4, head=head)
    dataset = PolicyDataset(synthetic_episodes(6), TASKS, cfg.context, WeightingConfig(), 0, cfg.action_chunk)
    _, _, _, actions, _, chunk_mask = dataset.tensors(dataset.sample(16))
    assert actions.shape == (16, cfg.context, 4, 7) and chunk_mask.shape == (16, cfg.context, 4)
    model, losses = train_tiny_policy(cfg, goals, dataset, steps=80, augment=False)
    if head == "gmm":      # negative log-likelihood: falls by nats
        assert np.mean(losses[-10:]) < np.mean(losses[:10]) - 1.0
    else:                  # squared error in normalized units: falls to a fraction
        assert np.mean(losses[-10:]) < 0.5 * np.mean(losses[:10])
    out = PolicyRunner(LoadedPolicy(model, goals, {})).act(
        [("a", "Lift", np.zeros((2, 84, 84, 3), np.uint8), np.zeros(9)),
         ("b", "Door", np.zeros((2, 84, 84, 3), np.uint8), np.zeros(9))])
    assert out.shape == (2, 7) and np.all(np.abs(out) <= 1)


def test_deterministic_head_ignores_chunk_rows_past_the_episode_end():
    from firework_policy.model import ACTION_DIM, DeterministicHead

    head = DeterministicHead(8, chunk=3)
    h = torch.randn(2, 8)
    target = head.act(h).detach().clone()
    target[:, 2] += 5.0                                   # wrong only in the last row
    mask = torch.tensor([[1.0, 1.0, 0.0], [1.0, 1.0, 1.0]])
    per = head.nll(h, target, mask).detach()
    assert per[0] == pytest.approx(0.0, abs=1e-6)          # the masked row does not count
    assert per[1] == pytest.approx(25.0 * ACTION_DIM / 3)  # mean over the 3 real rows
