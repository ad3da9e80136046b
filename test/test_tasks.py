from __future__ import annotations

import pytest

from firework_common.errors import UsageError
from firework_sim.tasks import TASKS, get_task, parse_task_list


def test_task_ids_are_their_positions_and_goals_differ():
    assert [t.task_id for t in TASKS] == list(range(len(TASKS)))
    assert len({t.language_goal for t in TASKS}) == len(TASKS)


def test_parse_task_list_keeps_order():
    assert [t.name for t in parse_task_list("Door, Lift")] == ["Door", "Lift"]


def test_unknown_tasks_are_all_named_with_the_known_ones():
    with pytest.raises(UsageError) as err:
        parse_task_list("Lift,Lfit,Opne")
    msg = str(err.value)
    assert "Lfit, Opne" in msg and "PickPlaceCan" in msg


def test_get_task_unknown():
    with pytest.raises(UsageError, match="unknown task 'Push'"):
        get_task("Push")
