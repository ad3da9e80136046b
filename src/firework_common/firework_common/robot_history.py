"""Per-robot history of the last N items (frames, latents, tokens) for batched fleet runtimes."""
from __future__ import annotations

from collections import deque
from typing import Any


class RobotHistories:
    """A robot's first item of an episode fills its whole history (no "empty past" to special-case);
    after that each push drops the oldest item."""

    def __init__(self, length: int) -> None:
        if length < 1:
            raise ValueError(f"history length must be >= 1, got {length}")
        self.length = length
        self._by_robot: dict[str, deque] = {}

    def push(self, robot_id: str, item: Any) -> list[Any]:
        """Append `item` to the robot's history and return the history, oldest first."""
        hist = self._by_robot.get(robot_id)
        if hist is None:
            hist = self._by_robot[robot_id] = deque([item] * self.length, maxlen=self.length)
        else:
            hist.append(item)
        return list(hist)

    def forget(self, robot_id: str) -> None:
        """Start the robot's next episode with an empty history."""
        self._by_robot.pop(robot_id, None)

    def snapshot(self) -> dict[str, list[Any]]:
        """Every robot's current history (a copy), for inspection and tests."""
        return {robot: list(hist) for robot, hist in self._by_robot.items()}
