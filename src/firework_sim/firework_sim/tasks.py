"""The task registry: which robosuite environment each firework task is, and its language goal.

Task ids are the index in TASKS: they are written into bags and used as model inputs, so append new
tasks at the end and never reorder.
"""
from __future__ import annotations

from dataclasses import dataclass

from firework_common.errors import UsageError


@dataclass(frozen=True)
class TaskSpec:
    name: str
    task_id: int
    robosuite_env: str
    language_goal: str


TASKS: tuple[TaskSpec, ...] = (
    TaskSpec("Lift", 0, "Lift", "lift the red cube"),
    TaskSpec("Stack", 1, "Stack", "stack the red cube on top of the green cube"),
    TaskSpec("PickPlaceCan", 2, "PickPlaceCan", "pick up the can and put it in its bin"),
    TaskSpec("NutAssemblySquare", 3, "NutAssemblySquare", "put the square nut onto the square peg"),
    TaskSpec("Door", 4, "Door", "open the door"),
)

TASKS_BY_NAME = {t.name: t for t in TASKS}


def get_task(name: str) -> TaskSpec:
    try:
        return TASKS_BY_NAME[name]
    except KeyError:
        raise UsageError(
            f"unknown task {name!r}; known tasks: {', '.join(TASKS_BY_NAME)}") from None


def parse_task_list(text: str) -> list[TaskSpec]:
    """'Lift,Stack' -> [TaskSpec, TaskSpec]; every unknown name is reported at once."""
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise UsageError("no task given; known tasks: " + ", ".join(TASKS_BY_NAME))
    unknown = [n for n in names if n not in TASKS_BY_NAME]
    if unknown:
        raise UsageError(
            f"unknown task(s) {', '.join(unknown)}; known tasks: {', '.join(TASKS_BY_NAME)}")
    return [TASKS_BY_NAME[n] for n in names]
