"""Synthetic round bags for policy tests: a coloured square per task on a plain scene, two cameras.

The executed action is a function of what the cameras see (the square's offset from the image
centre) and of the phase (gripper), so a policy can learn it. Episodes are written with
EpisodeBagWriter into a round directory with a manifest, exactly as `firework collect` does.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from firework_common.episode_bag import EpisodeBagWriter, EpisodeInfo
from firework_common.manifest import EPISODES_DIR, RoundManifest
from firework_common.schema import ControlSource, EpisodeOutcome, Observation
from firework_sim.tasks import get_task

CAMERAS = ("agentview", "eye_in_hand")
SIZE = 84
SQUARE = 10
COLORS = {"Lift": (200, 40, 40), "Door": (40, 40, 200), "Stack": (40, 180, 40)}


def synthetic_step(rng: np.random.Generator, task: str, pos: np.ndarray, t: int, size: int = SIZE
                   ) -> tuple[Observation, np.ndarray]:
    """Observation with the square at `pos` (pixels), and the action that moves it to the centre."""
    images = {}
    for k, cam in enumerate(CAMERAS):
        img = np.full((size, size, 3), 180 + 20 * k, dtype=np.uint8)
        x, y = (pos * (size / SIZE)).astype(int)
        img[y:y + SQUARE, x:x + SQUARE] = COLORS.get(task, (120, 120, 120))
        images[cam] = img
    centre = (SIZE - SQUARE) / 2
    delta = np.clip((centre - pos) / 20.0, -1, 1)
    action = np.array([delta[0], delta[1], 0.1 * np.sin(t / 3), 0, 0, 0, 1.0 if t > 5 else -1.0])
    obs = Observation(images=images, eef_pos=np.array([pos[0] / SIZE, pos[1] / SIZE, 0.9]),
                      eef_quat=np.array([0.0, 1.0, 0.0, 0.0]),
                      gripper_qpos=np.array([0.02, -0.02]) * (1 if t <= 5 else 0.2),
                      joint_pos=np.zeros(7), task_id=get_task(task).task_id)
    return obs, action


def write_episode(round_dir: Path, index: int, task: str, steps: int, seed: int,
                  takeover_at: int | None = None, policy: str = "operator", size: int = SIZE,
                  with_actions: bool = True) -> dict:
    """One episode bag + its manifest record. `takeover_at`: robot steps before a human takes over
    (policy 'imperfect'); None with policy 'operator' is a demonstration."""
    rng = np.random.default_rng(seed)
    manifest = RoundManifest(round_dir)
    manifest.episodes_dir.mkdir(parents=True, exist_ok=True)
    spec = get_task(task)
    info = EpisodeInfo("/robot_0", task, spec.task_id, spec.language_goal, seed, 20, CAMERAS,
                       {"index": index, "policy": policy, "visual_change": None})
    name = f"{index:05d}_{task}"
    pos = rng.uniform(5, SIZE - SQUARE - 5, size=2)
    with EpisodeBagWriter(manifest.episodes_dir / name, info) as bag:
        human = 0
        for t in range(steps if with_actions else 0):
            obs, action = synthetic_step(rng, task, pos, t, size)
            if policy == "operator":
                source = ControlSource.HUMAN
            else:
                source = ControlSource.HUMAN if takeover_at is not None and t >= takeover_at else ControlSource.ROBOT
            human += source == ControlSource.HUMAN
            if source == ControlSource.ROBOT:   # the robot is noisy: its actions are worse
                action = np.clip(action + rng.normal(0, 0.3, 7), -1, 1)
            bag.write_step(t, obs, action, source)
            pos = np.clip(pos + 4 * action[:2], 0, SIZE - SQUARE)
        bag.finish(EpisodeOutcome.SUCCESS, {"human_steps": int(human), "takeover_step": takeover_at})
    record = {**info.extra, "task": task, "seed": seed, "bag": f"{EPISODES_DIR}/{name}",
              "outcome": "success", "steps": steps if with_actions else 0}
    manifest.add(record)
    return record


def write_round(round_dir: Path, tasks=("Lift", "Door"), demos: int = 3, takeovers: int = 0,
                steps: int = 24, takeover_at: int = 14, seed: int = 0) -> Path:
    """`demos` operator episodes and `takeovers` robot episodes with a human takeover, per task."""
    index = 0
    for task in tasks:
        for _ in range(demos):
            write_episode(round_dir, index, task, steps, seed + index)
            index += 1
        for _ in range(takeovers):
            write_episode(round_dir, index, task, steps, seed + index, takeover_at=takeover_at,
                          policy="imperfect")
            index += 1
    return round_dir
