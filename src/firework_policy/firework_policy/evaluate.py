"""Autonomous success of a policy checkpoint in simulation, episodes recorded as a round of bags
(firework_sim.collect with policy "learned"), so the same episodes can feed the monitor."""
from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any, Sequence

from firework_common.errors import DataError
from firework_policy.checkpoint import load_policy
from firework_policy.runtime import LearnedActorFactory

# Evaluation seeds start far from collection's default seeds (0, 1, ...), so evaluation
# episodes are never the training demonstrations' initial states.
DEFAULT_EVAL_SEED = 100_000


def learned_actor_factory(checkpoint: Path, tasks: Sequence[str], sim_cfg: Any) -> LearnedActorFactory:
    """The collection workers' maker of learned actors, after checking here (not in the workers)
    that the checkpoint loads, knows the tasks and sees the cameras the simulator renders."""
    policy = load_policy(checkpoint)
    policy.goals.check_tasks(tasks)
    cams, size = policy.cfg.cameras, policy.cfg.image_size
    missing = [c for c in cams if c not in sim_cfg.cameras.names]
    if missing or (sim_cfg.cameras.height, sim_cfg.cameras.width) != (size, size):
        raise DataError(f"the policy needs cameras {list(cams)} at {size}x{size}; config/sim.yaml renders "
                        f"{list(sim_cfg.cameras.names)} at {sim_cfg.cameras.height}x{sim_cfg.cameras.width}")
    return LearnedActorFactory(checkpoint)


def evaluate_policy(checkpoint: Path, tasks: Sequence[str], episodes: int, out: Path, workers: int = 1,
                    seed: int = DEFAULT_EVAL_SEED, show_progress: bool = True) -> dict[str, Any]:
    """Run `episodes` per task with the policy alone; -> collect's summary plus success per task."""
    from tqdm import tqdm

    from firework_sim.collect import CollectSettings, collect, summarize
    from firework_sim.config import load_operator_config, load_sim_config
    from firework_sim.robot_env import check_gl_backend
    from firework_sim.tasks import get_task

    sim_cfg = load_sim_config()
    factory = learned_actor_factory(checkpoint, tasks, sim_cfg)
    check_gl_backend(sim_cfg.render.gl_backend)
    settings = CollectSettings(sim_cfg, load_operator_config(), "learned", None, actor_factory=factory)
    specs = [get_task(t) for t in tasks]
    records = []
    t0 = time.perf_counter()
    bar = tqdm(total=episodes * len(specs), desc="policy eval", unit="ep", file=sys.stderr,
               disable=not show_progress, dynamic_ncols=True)
    try:
        for rec in collect(Path(out), specs, episodes, settings, workers, seed):
            records.append(rec)
            bar.set_postfix_str(f"{rec['task']} {rec['outcome']}")
            bar.update(1)
    finally:
        bar.close()
    summary = summarize(records, time.perf_counter() - t0, workers)
    success = {name: t["success_rate"] for name, t in summary["tasks"].items()}
    summary.update(checkpoint=str(checkpoint), out=str(out), seed=seed, success=success,
                   average_success=sum(success.values()) / max(len(success), 1),
                   seeds=sorted(r["seed"] for r in records),
                   trained_step=load_policy(checkpoint).meta.get("step"))
    return summary
