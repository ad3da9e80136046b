"""Per-task scripted experts (the simulated human operator), by firework task name."""
from __future__ import annotations

import importlib

from firework_common.errors import UsageError
from firework_sim.config import OperatorConfig
from firework_sim.experts.base import ScriptedExpert

# task name -> "module:Class" inside this package; imported on demand.
_EXPERTS = {
    "Lift": "lift:LiftExpert",
    "Stack": "stack:StackExpert",
    "PickPlaceCan": "pick_place_can:PickPlaceCanExpert",
    "NutAssemblySquare": "nut_assembly_square:NutAssemblySquareExpert",
    "Door": "door:DoorExpert",
}


def make_expert(task_name: str, cfg: OperatorConfig) -> ScriptedExpert:
    try:
        spec = _EXPERTS[task_name]
    except KeyError:
        raise UsageError(
            f"no scripted expert for task {task_name!r}; available: {', '.join(_EXPERTS)}") from None
    module_name, class_name = spec.split(":")
    module = importlib.import_module(f"firework_sim.experts.{module_name}")
    return getattr(module, class_name)(cfg)
