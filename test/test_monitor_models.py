"""World model and error predictors learn; checkpoints round-trip; bad checkpoints are refused."""
from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from firework_common.errors import DataError
from firework_monitor.config import load_monitor_config
from firework_monitor.data import ChunkSampler, StepLabel, split_episodes, step_labels
from firework_monitor.world_model import WorldModel
from synthetic_episodes import make_episodes

from firework_common.schema import ControlSource, EpisodeOutcome


@pytest.fixture(scope="module")
def tiny():
    return load_monitor_config("tiny")


@pytest.fixture(scope="module")
def trained(tiny):
    """A tiny world model trained briefly on synthetic episodes, with its loss history."""
    torch.manual_seed(0)
    episodes = make_episodes(0, 16)
    model = WorldModel(tiny.world_model)
    opt = torch.optim.AdamW(model.parameters(), lr=tiny.train.lr)
    sampler = ChunkSampler(episodes, tiny.train.chunk_length, 0)
    losses = []
    for _ in range(100):
        frames, valid = sampler.sample(4)
        out = model.loss(torch.from_numpy(frames), tiny.train, torch.from_numpy(valid))
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
        losses.append({k: float(v.detach()) for k, v in out.items()})
    return model.eval(), losses


def test_presets_have_the_documented_sizes():
    cpu, paper = load_monitor_config("cpu").world_model, load_monitor_config("paper").world_model
    assert (paper.unet_channels, paper.latent_channels, paper.latent_size) == ((32, 64), 4, 42)
    assert (paper.embed_dim, paper.transformer_layers, paper.transformer_heads) == (512, 6, 8)
    assert (paper.history, paper.horizon, paper.futures) == (10, 9, 20)
    assert cpu.futures >= 8 and cpu.horizon >= 8


def test_world_model_loss_falls(trained):
    """Reconstruction and L-step latent prediction both improve with training."""
    _, losses = trained
    first = np.mean([l["recon"] for l in losses[:10]])
    last = np.mean([l["recon"] for l in losses[-10:]])
    assert last < 0.6 * first
    assert np.mean([l["latent"] for l in losses[-10:]]) < np.mean([l["latent"] for l in losses[:10]])


def test_latent_loss_is_relative_to_repeat_last(trained):
    """Training moves the relative latent loss below 1 (= no better than repeating the last latent),
    and the residual scale tracks the size of real frame-to-frame changes."""
    model, losses = trained
    assert np.mean([l["latent"] for l in losses[-10:]]) < 1.0
    assert bool(model.dynamics.delta_scale_initialized)
    assert float(model.dynamics.delta_scale.mean()) < 1.0   # latents are standardized to unit scale


def test_chunk_sampler_marks_padding():
    """Episodes shorter than a chunk are padded with their last frame, and the padding is marked."""
    short = make_episodes(3, 1, steps=6)[0]
    frames, valid = ChunkSampler([short], 10, 0).sample(3)
    assert frames.shape[:2] == (3, 10) and valid.shape == (3, 10)
    assert valid[:, :6].all() and not valid[:, 6:].any()
    assert (frames[:, 6:] == frames[:, 5:6]).all()


def test_relative_latent_loss_ignores_padding(tiny, monkeypatch):
    """Padded (frozen) frames change neither the latent loss nor its repeat-last baseline."""
    torch.manual_seed(0)
    cfg = tiny.world_model
    n_real = cfg.history + cfg.horizon
    model = WorldModel(cfg).eval()
    torch.nn.init.normal_(model.dynamics.delta_head.weight, std=0.1)   # predict some change
    # Posterior samples at their mean: the real window's prediction must not depend on the batch.
    monkeypatch.setattr(torch, "randn_like", torch.zeros_like)
    frames = torch.from_numpy(make_episodes(4, 1, steps=n_real)[0].frames).unsqueeze(0)
    # Batched with it: a one-frame episode, padded to the chunk length (all its targets are padding).
    frozen = torch.from_numpy(make_episodes(5, 1, steps=1)[0].frames).unsqueeze(0).expand_as(frames)
    batch = torch.cat([frames, frozen])
    valid = torch.ones(2, n_real, dtype=torch.bool)
    valid[1, 1:] = False
    real = model.loss(frames, tiny.train)
    masked = model.loss(batch, tiny.train, valid)
    unmasked = model.loss(batch, tiny.train)
    assert float(real["repeat_last_mse"]) > 0
    for key in ("latent", "latent_mse", "repeat_last_mse", "kl"):
        assert torch.allclose(masked[key], real[key], rtol=1e-4), key
    # Counted as real, the frozen tail looks perfectly predictable by standing still.
    assert float(unmasked["repeat_last_mse"]) < float(real["repeat_last_mse"])


def test_imagined_futures_have_the_right_shapes_and_differ(trained, tiny):
    model, _ = trained
    cfg = tiny.world_model
    z = model.encode(torch.from_numpy(make_episodes(1, 1)[0].frames[: cfg.history]))
    futures, tokens = model.imagine(z.unsqueeze(0))
    assert futures.shape == (1, cfg.futures, cfg.horizon, cfg.latent_dim)
    assert tokens.shape == (1, cfg.futures, cfg.horizon, cfg.embed_dim)
    assert futures[0, 0].sub(futures[0, 1]).abs().max() > 0   # N futures are N samples


def test_step_labels_follow_who_acted():
    R, H = ControlSource.ROBOT, ControlSource.HUMAN
    sources = np.array([R] * 6 + [H] * 3)
    labels = step_labels(sources, EpisodeOutcome.SUCCESS, pre_steps=2)
    assert labels.tolist() == [0, 0, 0, 0, 1, 1, 2, 2, 2]
    # A demonstration from reset: nobody intervened, all normal.
    assert (step_labels(np.array([H] * 5), EpisodeOutcome.SUCCESS, 2) == StepLabel.NORMAL).all()
    # An unassisted failure: its last steps are where it went wrong.
    assert step_labels(np.array([R] * 5), EpisodeOutcome.FAILURE, 2).tolist() == [0, 0, 0, 1, 1]


def test_split_keeps_every_task_in_training():
    eps = make_episodes(2, 10)
    train, held = split_episodes(eps, 0.2, 0)
    assert len(held) == 2 and len(train) == 8
    assert not {id(e) for e in held} & {id(e) for e in train}


def test_world_model_checkpoint_round_trip(trained, tiny, tmp_path):
    from firework_monitor.train_world_model import load_world_model, save_world_model

    model, _ = trained
    save_world_model(model, tmp_path, {"step": 1})
    loaded, meta = load_world_model(tmp_path, tiny.world_model)
    assert meta["step"] == 1
    for k, v in model.state_dict().items():
        assert torch.equal(v, loaded.state_dict()[k]), k


def test_checkpoint_with_another_config_names_the_field(trained, tiny, tmp_path):
    from firework_monitor.train_world_model import load_world_model, save_world_model

    model, _ = trained
    save_world_model(model, tmp_path, {})
    other = dataclasses.replace(tiny.world_model, horizon=tiny.world_model.horizon + 1)
    with pytest.raises(DataError, match=r"world_model\.horizon is 3; expected 4"):
        load_world_model(tmp_path, other)


def test_pickled_checkpoint_is_refused(trained, tmp_path):
    from firework_monitor.train_world_model import load_world_model, save_world_model

    model, _ = trained
    save_world_model(model, tmp_path, {})
    # Replace the weights with a pickle that would run code if it were unpickled.
    marker = tmp_path / "pwned"
    torch.save({"x": _Exploit(str(marker))}, tmp_path / "world_model.safetensors")
    with pytest.raises(DataError, match="pickled checkpoints are refused"):
        load_world_model(tmp_path)
    assert not marker.exists()


class _Exploit:
    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_training_state_refuses_arbitrary_objects(tmp_path):
    from firework_common.checkpoint import load_train_state

    marker = tmp_path / "pwned"
    torch.save({"x": _Exploit(str(marker))}, tmp_path / "state.pt")
    with pytest.raises(DataError):
        load_train_state(tmp_path / "state.pt")
    assert not marker.exists()
