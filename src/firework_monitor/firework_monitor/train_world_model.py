"""Train the visual world model on round bags; evaluate it on held-out episodes; save/load it."""
from __future__ import annotations

import dataclasses
import math
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from firework_common.checkpoint import (
    load_checkpoint,
    load_train_state,
    save_checkpoint,
    save_train_state,
)
from firework_common.config import from_dict, to_dict
from firework_common.errors import DataError
from firework_monitor.config import MonitorConfig, WorldModelConfig
from firework_monitor.data import ChunkSampler, EpisodeData, load_rounds, split_episodes
from firework_monitor.world_model import WorldModel

CHECKPOINT_NAME = "world_model"
CHECKPOINT_KIND = "firework.world_model"
TRAIN_STATE = "world_model_train_state.pt"
HELD_OUT_FRACTION = 0.1     # episodes per task kept out of training for the final evaluation
EVAL_WINDOW_STRIDE = 4      # steps between evaluated windows in a held-out episode
OPTIONAL_BUFFERS = ("dynamics.delta_scale", "dynamics.delta_scale_initialized")
GRAD_CLIP_NORM = 1.0        # max gradient norm of each part (autoencoder, dynamics) per step


def save_world_model(model: WorldModel, directory: Path, meta: dict[str, Any]) -> None:
    save_checkpoint(directory, CHECKPOINT_NAME, model.state_dict(), CHECKPOINT_KIND,
                    {"world_model": to_dict(model.cfg)}, meta)


def load_world_model(directory: Path, expected: WorldModelConfig | None = None
                     ) -> tuple[WorldModel, dict[str, Any]]:
    """Load a frozen world model (eval mode, no gradients). `expected` checks every config field."""
    tensors, config, meta = load_checkpoint(
        directory, CHECKPOINT_NAME, CHECKPOINT_KIND,
        {"world_model": to_dict(expected)} if expected is not None else None)
    cfg = from_dict(WorldModelConfig, config["world_model"], f"{directory}/{CHECKPOINT_NAME}.json:world_model")
    model = WorldModel(cfg)
    missing, unexpected = model.load_state_dict(tensors, strict=False)
    # Checkpoints from before the residual scale existed predicted unscaled residuals: the default
    # scale (ones) reproduces them exactly.
    missing = [k for k in missing if k not in OPTIONAL_BUFFERS]
    if missing or unexpected:
        raise DataError(f"{directory}/{CHECKPOINT_NAME}.safetensors does not match the model: "
                        f"missing {missing[:3]}, unexpected {unexpected[:3]}")
    model.eval().requires_grad_(False)
    return model, meta


@torch.no_grad()
def evaluate_world_model(model: WorldModel, episodes: list[EpisodeData], seed: int = 0) -> dict[str, float]:
    """Held-out L-step latent prediction error vs "repeat the last latent", and reconstruction PSNR."""
    cfg = model.cfg
    t, horizon = cfg.history, cfg.horizon
    gen = torch.Generator().manual_seed(seed)
    pred_err, repeat_err, recon_err, n_windows = 0.0, 0.0, 0.0, 0
    per_step_pred = np.zeros(horizon)
    per_step_repeat = np.zeros(horizon)
    for ep in episodes:
        z = model.encode(torch.from_numpy(ep.frames))                       # (T_ep, D)
        recon = model.decode(z)
        target = torch.from_numpy(ep.frames).permute(0, 1, 4, 2, 3).float() / 255.0
        recon_err += float(((recon - target) ** 2).mean()) * len(z)
        starts = list(range(0, len(z) - t - horizon + 1, EVAL_WINDOW_STRIDE))
        if not starts:
            continue
        hist = torch.stack([z[s:s + t] for s in starts])
        truth = torch.stack([z[s + t:s + t + horizon] for s in starts])   # (W, L, D)
        futures, _ = model.imagine(hist, generator=gen)                   # (W, N, L, D)
        pred = futures.mean(dim=1)
        p = ((pred - truth) ** 2).mean(dim=(0, 2)).numpy()
        r = ((hist[:, -1:] - truth) ** 2).mean(dim=(0, 2)).numpy()
        per_step_pred += p * len(starts)
        per_step_repeat += r * len(starts)
        n_windows += len(starts)
    n_frames = sum(len(ep.frames) for ep in episodes)
    if n_windows == 0:
        raise DataError(f"held-out episodes are all shorter than history + horizon = {t + horizon} steps")
    per_step_pred /= n_windows
    per_step_repeat /= n_windows
    mse = recon_err / n_frames
    return {
        "latent_mse": float(per_step_pred.mean()),
        "repeat_last_latent_mse": float(per_step_repeat.mean()),
        "latent_mse_ratio_vs_repeat": float(per_step_pred.mean() / max(per_step_repeat.mean(), 1e-12)),
        "latent_mse_at_horizon": float(per_step_pred[-1]),
        "repeat_last_latent_mse_at_horizon": float(per_step_repeat[-1]),
        "reconstruction_mse": mse,
        "reconstruction_psnr_db": float(10.0 * math.log10(1.0 / max(mse, 1e-12))),
        "held_out_windows": n_windows,
        "held_out_frames": n_frames,
    }


def train_world_model(round_dirs: Sequence[Path], out_dir: Path, mcfg: MonitorConfig,
                      steps: int | None = None, resume: bool = True, show_progress: bool = True
                      ) -> dict[str, Any]:
    """Joint training; checkpoints every `checkpoint_every` steps; resumes from `out_dir`."""
    from tqdm import tqdm

    cfg, tcfg = mcfg.world_model, mcfg.train
    if steps is not None:
        tcfg = dataclasses.replace(tcfg, steps=steps)
    if tcfg.chunk_length < cfg.history + cfg.horizon:
        raise DataError(f"train.chunk_length {tcfg.chunk_length} < history + horizon "
                        f"{cfg.history + cfg.horizon}")
    torch.manual_seed(tcfg.seed)
    episodes = load_rounds(round_dirs)
    sizes = {ep.frames.shape[1:] for ep in episodes}
    expected = (cfg.num_cameras, cfg.image_size, cfg.image_size, 3)
    if sizes != {expected}:
        raise DataError(f"episode frames are {sorted(sizes)}; the {mcfg.preset} world model expects "
                        f"(cameras, H, W, 3) = {expected}")
    train_eps, held_eps = split_episodes(episodes, HELD_OUT_FRACTION, tcfg.seed)
    model = WorldModel(cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=tcfg.lr, weight_decay=tcfg.weight_decay)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    state_path = out_dir / TRAIN_STATE
    start = 0
    if resume and state_path.is_file():
        state = load_train_state(state_path)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        start = int(state["step"])
    sampler = ChunkSampler(train_eps, tcfg.chunk_length, tcfg.seed + start)
    meta_base = {"preset": mcfg.preset, "rounds": [str(p) for p in round_dirs],
                 "camera_names": list(episodes[0].meta["camera_names"]),
                 "train_episodes": len(train_eps), "held_out_episodes": len(held_eps)}

    def checkpoint(step: int) -> None:
        save_train_state(state_path, {"model": model.state_dict(), "optimizer": opt.state_dict(),
                                      "step": step})
        save_world_model(model, out_dir, {**meta_base, "step": step})

    autoencoder_params = [*model.encoder.parameters(), *model.decoder.parameters()]
    dynamics_params = list(model.dynamics.parameters())
    bar = tqdm(total=tcfg.steps, initial=start, desc="world model", unit="step", file=sys.stderr,
               disable=not show_progress, dynamic_ncols=True)
    model.train()
    history = []
    t0 = time.perf_counter()
    for step in range(start, tcfg.steps):
        frames, valid = sampler.sample(tcfg.chunks_per_batch)
        losses = model.loss(torch.from_numpy(frames), tcfg, torch.from_numpy(valid))
        opt.zero_grad(set_to_none=True)
        losses["loss"].backward()
        # Clipped per part: the autoencoder and the dynamics get disjoint gradients (the dynamics'
        # inputs are detached), and one part's large gradient must not shrink the other's step.
        for params in (autoencoder_params, dynamics_params):
            torch.nn.utils.clip_grad_norm_(params, GRAD_CLIP_NORM)
        opt.step()
        bar.update(1)
        if step % tcfg.log_every == 0 or step == tcfg.steps - 1:
            row = {k: float(v.detach()) for k, v in losses.items()}
            history.append({"step": step, **row})
            bar.set_postfix(recon=f"{row['recon']:.4f}", latent=f"{row['latent']:.3f}", kl=f"{row['kl']:.2f}")
        if (step + 1) % tcfg.checkpoint_every == 0:
            checkpoint(step + 1)
    bar.close()
    train_s = time.perf_counter() - t0
    model.eval()
    metrics = evaluate_world_model(model, held_eps, tcfg.seed) if held_eps else {}
    save_train_state(state_path, {"model": model.state_dict(), "optimizer": opt.state_dict(),
                                  "step": tcfg.steps})
    save_world_model(model, out_dir, {**meta_base, "step": tcfg.steps, "held_out": metrics})
    return {"steps": tcfg.steps, "resumed_from": start, "train_seconds": train_s,
            "loss_history": history, "held_out": metrics}
