"""Train the policy on round bags (behaviour cloning with Sirius weighting); fine-tune from the
previous round's checkpoint; resumable after a kill."""
from __future__ import annotations

import dataclasses
import math
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from firework_common.checkpoint import load_train_state, save_train_state
from firework_common.config import to_dict
from firework_common.errors import DataError
from firework_policy.checkpoint import build_model, load_policy, save_policy
from firework_policy.config import PolicyConfig, WeightingConfig
from firework_policy.data import (
    LABEL_NAMES,
    PolicyDataset,
    label_counts,
    load_policy_rounds,
    mass_shares,
    split_episodes,
)
from firework_policy.goals import goal_table
from firework_policy.model import BCTransformer, random_shift

TRAIN_STATE = "policy_train_state.pt"
VALIDATION_BATCHES = 20


def lr_at(step: int, total: int, peak: float, warmup: int, min_fraction: float) -> float:
    """Linear warm-up, then cosine decay to peak * min_fraction (a pure function of the step, so a
    resumed run continues the same schedule)."""
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return peak * (min_fraction + (1 - min_fraction) * 0.5 * (1 + math.cos(math.pi * progress)))


def _registry_order(tasks: set[str]) -> list[str]:
    from firework_sim.tasks import TASKS

    known = [t.name for t in TASKS if t.name in tasks]
    return known + sorted(tasks - set(known))


@torch.no_grad()
def validation_loss(model: BCTransformer, dataset: PolicyDataset, batch_size: int, seed: int) -> dict[str, float]:
    """Uniformly weighted held-out loss and action MSE (raw action units, most likely mode)."""
    was_training = model.training
    model.eval()
    dataset.rng = np.random.default_rng(seed)
    nll, mse, total = 0.0, 0.0, 0.0
    for _ in range(VALIDATION_BATCHES):
        frames, proprio, task, actions, weights, chunk_mask = dataset.tensors(dataset.sample(batch_size))
        h = model(frames, proprio, task)
        per = model.head.nll(h, model.normalize_actions(actions), chunk_mask)
        # Action error of the step's own action (the chunk's first row, always valid).
        pred = model.denormalize_actions(model.head.act(h.flatten(0, 1), False)[:, 0]).unflatten(0, h.shape[:2])
        err = (pred.clamp(-1, 1) - actions[:, :, 0]).pow(2).mean(-1)
        nll += float((per * weights).sum())
        mse += float((err * weights).sum())
        total += float(weights.sum())
    model.train(was_training)
    return {"loss": nll / total, "action_mse": mse / total}


def train_policy(round_dirs: Sequence[Path], out_dir: Path, pcfg: PolicyConfig, steps: int | None = None,
                 init: Path | None = None, resume: bool = True, show_progress: bool = True,
                 tasks: Sequence[str] | None = None) -> dict[str, Any]:
    """Train from scratch, or fine-tune from `init` (the previous round's checkpoint), on all the
    given rounds. Checkpoints every `checkpoint_every` steps; resumes from `out_dir`'s train state."""
    from tqdm import tqdm

    tcfg, wcfg = pcfg.train, pcfg.weighting
    previous = load_policy(init) if init is not None else None
    cfg = previous.cfg if previous is not None else pcfg.model
    total_steps = steps if steps is not None else (tcfg.finetune_steps if previous else tcfg.steps)
    peak_lr = tcfg.finetune_lr if previous else tcfg.lr
    if total_steps < 1:
        raise DataError(f"steps must be >= 1, got {total_steps}")
    torch.manual_seed(tcfg.seed)

    episodes = load_policy_rounds(round_dirs, cfg.cameras, cfg.image_size, wcfg.pre_intervention_steps,
                                  tasks, show_progress)
    data_tasks = {ep.task for ep in episodes}
    if previous is not None:
        goals = previous.goals.extended(_registry_order(data_tasks - set(previous.goals.tasks)))
    else:
        goals = goal_table(_registry_order(data_tasks))
    train_eps, held_eps = split_episodes(episodes, tcfg.validation_fraction, tcfg.seed)
    del episodes
    dataset = PolicyDataset(train_eps, goals.tasks, cfg.context, wcfg, tcfg.seed, cfg.action_chunk)
    held = (PolicyDataset(held_eps, goals.tasks, cfg.context, WeightingConfig(mode="uniform"), tcfg.seed,
                          cfg.action_chunk) if held_eps else None)
    num_train_eps = len(train_eps)
    del train_eps, held_eps

    model = build_model(cfg, goals)
    if previous is not None:
        state = previous.model.state_dict()
        state["goal_vectors"] = model.goal_vectors.clone()   # rows of new tasks appended
        model.load_state_dict(state)
    else:
        model.set_statistics(**dataset.statistics())
    opt = torch.optim.AdamW(model.parameters(), lr=peak_lr, weight_decay=tcfg.weight_decay)

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    state_path = out_dir / TRAIN_STATE
    rounds = [str(Path(p).resolve()) for p in round_dirs]
    start = 0
    if resume and state_path.is_file():
        state = load_train_state(state_path)
        if list(state["tasks"]) != list(goals.tasks) or list(state["rounds"]) != rounds:
            raise DataError(f"{out_dir} holds a run on rounds {list(state['rounds'])} and tasks "
                            f"{list(state['tasks'])}; this one is on {rounds} and {list(goals.tasks)}: "
                            f"use another --out or --no-resume")
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        start = int(state["step"])
        torch.manual_seed(tcfg.seed + start)
        dataset.rng = np.random.default_rng(tcfg.seed + start)

    counts = {LABEL_NAMES[k]: v for k, v in label_counts(dataset.labels).items()}
    shares = {LABEL_NAMES[k]: v for k, v in mass_shares(dataset.labels, dataset.q).items()}
    params = sum(p.numel() for p in model.parameters())
    meta_base = {"preset": pcfg.preset, "rounds": rounds, "init": str(init) if init else None,
                 "weighting": to_dict(wcfg), "train": to_dict(dataclasses.replace(tcfg, steps=total_steps)),
                 "train_episodes": num_train_eps, "train_steps_in_data": dataset.num_steps,
                 "label_counts": counts, "label_shares": shares, "parameters": params}

    def checkpoint(step: int, extra: dict[str, Any] | None = None) -> None:
        save_train_state(state_path, {"model": model.state_dict(), "optimizer": opt.state_dict(),
                                      "step": step, "tasks": list(goals.tasks), "rounds": rounds})
        save_policy(model, goals, out_dir, {**meta_base, "step": step, **(extra or {})})

    bar = tqdm(total=total_steps, initial=start, desc="policy", unit="step", file=sys.stderr,
               disable=not show_progress, dynamic_ncols=True)
    model.train()
    history = []
    frames_seen, t0 = 0, time.perf_counter()
    for step in range(start, total_steps):
        for group in opt.param_groups:
            group["lr"] = lr_at(step, total_steps, peak_lr, tcfg.warmup_steps, tcfg.min_lr_fraction)
        frames, proprio, task, actions, weights, chunk_mask = dataset.tensors(dataset.sample(tcfg.batch_size))
        if cfg.random_shift:
            frames = random_shift(frames, cfg.random_shift)
        loss, _ = model.loss(frames, proprio, task, actions, weights, chunk_mask)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), tcfg.grad_clip)
        opt.step()
        frames_seen += int((weights > 0).sum())
        bar.update(1)
        if step % tcfg.log_every == 0 or step == total_steps - 1:
            rate = frames_seen / max(time.perf_counter() - t0, 1e-9)
            history.append({"step": step, "loss": float(loss.detach()), "lr": opt.param_groups[0]["lr"]})
            bar.set_postfix_str(f"loss {float(loss.detach()):.3f} | {rate:.0f} samples/s")
        if (step + 1) % tcfg.checkpoint_every == 0 and step + 1 < total_steps:
            checkpoint(step + 1)
    bar.close()
    train_s = time.perf_counter() - t0
    model.eval()
    val = validation_loss(model, held, tcfg.batch_size, tcfg.seed) if held is not None else {}
    timing = {"train_seconds": train_s, "samples_per_s": frames_seen / max(train_s, 1e-9),
              "windows_per_s": (total_steps - start) * tcfg.batch_size / max(train_s, 1e-9),
              "torch_threads": torch.get_num_threads()}
    checkpoint(total_steps, {"validation": val, "timing": timing})
    return {"steps": total_steps, "resumed_from": start, **timing, "parameters": params,
            "tasks": list(goals.tasks), "label_counts": counts, "label_shares": shares,
            "validation": val, "loss_history": history, "out": str(out_dir)}
