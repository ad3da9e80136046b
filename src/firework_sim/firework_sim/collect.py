"""Collect episodes in simulation into a round directory of rosbag2 files plus a manifest.

Episodes are spread over worker processes (one robosuite instance per task per worker; workers are
the fleet's robots: worker k records under namespace /robot_k). The parent process owns the
manifest and the progress bar; each worker closes an episode's bag before reporting it, so a kill
at any moment loses at most the episodes in flight.
"""
from __future__ import annotations

import multiprocessing as mp
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from firework_common.episode_bag import EpisodeBagWriter, EpisodeInfo
from firework_common.errors import DataError
from firework_common.manifest import EPISODES_DIR, RoundManifest
from firework_common.schema import ControlSource, EpisodeOutcome
from firework_sim.config import OperatorConfig, SimConfig
from firework_sim.tasks import TaskSpec, get_task

POLICIES = ("operator", "imperfect", "learned")


@dataclass(frozen=True)
class TakeoverSpec:
    """When the operator takes over from the imperfect policy: a fixed step or a uniform range."""

    low: int
    high: int

    @classmethod
    def parse(cls, text: str) -> "TakeoverSpec":
        parts = text.split("-")
        try:
            values = [int(p) for p in parts]
        except ValueError:
            raise ValueError(f"--takeover-after must be N or LOW-HIGH steps, got {text!r}") from None
        if len(values) == 1:
            values = values * 2
        if len(values) != 2 or values[0] < 0 or values[1] < values[0]:
            raise ValueError(f"--takeover-after must be N or LOW-HIGH with 0 <= LOW <= HIGH, got {text!r}")
        return cls(values[0], values[1])

    def sample(self, rng: np.random.Generator) -> int:
        return int(rng.integers(self.low, self.high + 1))


@dataclass(frozen=True)
class CollectJob:
    index: int
    task: str
    seed: int
    bag_path: str


@dataclass(frozen=True)
class CollectSettings:
    sim: SimConfig
    operator: OperatorConfig
    policy: str
    takeover: TakeoverSpec | None
    # The operator supervises and takes over when the robot goes wrong (firework_sim.supervisor).
    takeover_on_failure: bool = False
    # A visual change never seen in training (firework_sim.visual_changes), for OOD evaluation.
    visual_change: str | None = None
    # policy "learned": a picklable callable task -> Actor, called for every episode in the worker
    # (firework_policy.runtime.LearnedActorFactory); firework_sim never imports the policy itself.
    actor_factory: Callable[[TaskSpec], Any] | None = None

    def __post_init__(self) -> None:
        if (self.policy == "learned") != (self.actor_factory is not None):
            raise ValueError("policy 'learned' needs an actor_factory, and only it takes one")


def plan_jobs(manifest: RoundManifest, tasks: list[TaskSpec], episodes_per_task: int,
              base_seed: int) -> list[CollectJob]:
    """Interleave tasks (so partial runs cover every task) and continue the round's numbering."""
    start = manifest.next_index()
    jobs = []
    for i in range(episodes_per_task):
        for task in tasks:
            index = start + len(jobs)
            name = f"{index:05d}_{task.name}"
            jobs.append(CollectJob(index, task.name, base_seed + index,
                                   str(manifest.episodes_dir / name)))
    return jobs


# --- worker side ---------------------------------------------------------------------------------
_worker_state: dict[str, Any] = {}


def _worker_init(settings: CollectSettings, counter: Any) -> None:
    # Each worker is one robot of the fleet; the numbering follows the start order.
    with counter.get_lock():
        robot_index = counter.value
        counter.value += 1
    _worker_state.update(settings=settings, robots={}, namespace=f"/robot_{robot_index}")


def run_job(job: CollectJob) -> dict[str, Any]:
    from firework_sim.episode import run_episode
    from firework_sim.experts import make_expert
    from firework_sim.imperfect import ImperfectOperator
    from firework_sim.robot_env import SimRobot
    from firework_sim.supervisor import FailureWatcher
    from firework_sim.visual_changes import apply_visual_change

    settings: CollectSettings = _worker_state["settings"]
    task = get_task(job.task)
    robots = _worker_state["robots"]
    if job.task not in robots:
        robots[job.task] = SimRobot(task, settings.sim, seed=job.seed)
        if settings.visual_change is not None:
            apply_visual_change(robots[job.task], settings.visual_change)
    robot = robots[job.task]
    rng = np.random.default_rng(job.seed)
    operator = make_expert(task.name, settings.operator)
    takeover_after, watcher = None, None
    if settings.policy == "operator":
        policy, source, operator = operator, ControlSource.HUMAN, None
    else:
        policy = (settings.actor_factory(task) if settings.policy == "learned" else
                  ImperfectOperator(make_expert(task.name, settings.operator), settings.operator.imperfect, rng))
        source = ControlSource.ROBOT
        if settings.takeover is not None:
            takeover_after = settings.takeover.sample(rng)
        if settings.takeover_on_failure:
            watcher = FailureWatcher(settings.operator.supervisor)
        if takeover_after is None and watcher is None:
            operator = None
    info = EpisodeInfo(
        robot_namespace=_worker_state["namespace"], task=task.name, task_id=task.task_id,
        language_goal=task.language_goal, seed=job.seed,
        control_freq_hz=settings.sim.control_freq_hz, camera_names=settings.sim.cameras.names,
        extra={"index": job.index, "policy": settings.policy, "visual_change": settings.visual_change})
    t0 = time.perf_counter()
    with EpisodeBagWriter(Path(job.bag_path), info) as bag:
        result = run_episode(robot, policy, job.seed, policy_source=source, operator=operator,
                             takeover_after=takeover_after, watcher=watcher,
                             sink=lambda r: bag.write_step(r.step, r.observation, r.action, r.source))
        summary = {"human_steps": result.human_steps, "takeover_step": result.takeover_step,
                   "takeover_steps": result.takeover_steps, "hand_back_steps": result.hand_back_steps,
                   "takeover_reasons": watcher.reasons if watcher is not None else []}
        final = bag.finish(result.outcome, summary)
    return {**info.extra, "task": task.name, "seed": job.seed, "robot_namespace": info.robot_namespace,
            "bag": str(Path(EPISODES_DIR) / final.name), "outcome": result.outcome.value,
            "steps": result.steps, **summary, "wall_s": time.perf_counter() - t0}


# --- parent side ---------------------------------------------------------------------------------
def collect(round_dir: Path, tasks: list[TaskSpec], episodes_per_task: int, settings: CollectSettings,
            workers: int, base_seed: int) -> Iterator[dict[str, Any]]:
    """Run the episodes; yields each finished episode's manifest record (already persisted)."""
    manifest = RoundManifest(round_dir)
    try:
        manifest.episodes_dir.mkdir(parents=True, exist_ok=True)
        if not os.access(manifest.episodes_dir, os.W_OK):
            raise PermissionError(f"permission denied: {manifest.episodes_dir}")
    except OSError as exc:
        raise DataError(f"cannot write to {round_dir}: {exc.strerror or exc}; choose another --out") from exc
    jobs = plan_jobs(manifest, tasks, episodes_per_task, base_seed)
    ctx = mp.get_context("spawn")  # GL contexts and MuJoCo do not survive fork
    counter = ctx.Value("i", 0)
    if workers == 1:
        _worker_init(settings, counter)
        results = map(run_job, jobs)
        pool = None
    else:
        pool = ctx.Pool(workers, initializer=_worker_init, initargs=(settings, counter),
                        maxtasksperchild=None)
        results = pool.imap_unordered(run_job, jobs, chunksize=1)
    try:
        for record in results:
            manifest.add(record)
            yield record
    finally:
        if pool is not None:
            pool.terminate()
            pool.join()


def summarize(records: list[dict[str, Any]], wall_s: float, workers: int) -> dict[str, Any]:
    per_task: dict[str, Any] = {}
    for r in records:
        t = per_task.setdefault(r["task"], {"episodes": 0, "successes": 0, "steps": 0, "human_steps": 0,
                                            "takeovers": 0, "env_wall_s": 0.0})
        t["episodes"] += 1
        t["takeovers"] += len(r.get("takeover_steps", []))
        t["successes"] += r["outcome"] == EpisodeOutcome.SUCCESS.value
        t["steps"] += r["steps"]
        t["human_steps"] += r["human_steps"]
        t["env_wall_s"] += r["wall_s"]
    for t in per_task.values():
        t["success_rate"] = t["successes"] / t["episodes"]
        t["mean_length"] = t["steps"] / t["episodes"]
        t["human_step_ratio"] = t["human_steps"] / max(t["steps"], 1)
        # Per worker process: steps over the time the worker spent on them (incl. bag writing).
        t["steps_per_s_per_worker"] = t["steps"] / max(t.pop("env_wall_s"), 1e-9)
    total_steps = sum(r["steps"] for r in records)
    return {"episodes": len(records), "workers": workers, "wall_s": wall_s,
            "total_steps": total_steps, "steps_per_s": total_steps / max(wall_s, 1e-9),
            "tasks": per_task}
