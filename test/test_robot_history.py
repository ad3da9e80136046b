import pytest

from firework_common.robot_history import RobotHistories


def test_first_item_fills_the_history_then_the_oldest_drops():
    h = RobotHistories(3)
    assert h.push("r0", 1) == [1, 1, 1]
    assert h.push("r0", 2) == [1, 1, 2]
    assert h.push("r1", 9) == [9, 9, 9]          # robots are independent
    assert h.push("r0", 3) == [1, 2, 3]
    assert h.push("r0", 4) == [2, 3, 4]
    assert h.snapshot() == {"r0": [2, 3, 4], "r1": [9, 9, 9]}
    h.forget("r0")
    assert h.push("r0", 5) == [5, 5, 5]


def test_length_must_be_positive():
    with pytest.raises(ValueError, match=">= 1"):
        RobotHistories(0)
