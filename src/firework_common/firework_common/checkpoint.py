"""Checkpoints: tensors in safetensors, configuration in JSON. Loading never unpickles.

A checkpoint named NAME is two files: NAME.safetensors (flat dict of tensors) and NAME.json
({"kind": ..., "config": {...}, "meta": {...}}). Loading checks the kind and, when the caller says
which configuration it expects, every field of it, and names the first field that differs.
Resumable training state (optimizer moments, step) goes through `torch.load(weights_only=True)`.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from firework_common.errors import DataError


def _atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def save_checkpoint(directory: Path, name: str, tensors: dict[str, Any], kind: str,
                    config: dict[str, Any], meta: dict[str, Any] | None = None) -> Path:
    """Write NAME.safetensors then NAME.json (the JSON last: it marks the checkpoint complete)."""
    import torch
    from safetensors.torch import save_file

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    weights = directory / f"{name}.safetensors"
    tmp = weights.with_name(weights.name + ".tmp")
    save_file({k: v.detach().contiguous().cpu() if isinstance(v, torch.Tensor) else torch.as_tensor(v)
               for k, v in tensors.items()}, str(tmp))
    os.replace(tmp, weights)
    _atomic_write_text(directory / f"{name}.json",
                       json.dumps({"kind": kind, "config": config, "meta": meta or {}}, indent=1,
                                  sort_keys=True))
    return weights


def load_checkpoint(directory: Path, name: str, kind: str,
                    expected_config: dict[str, Any] | None = None) -> tuple[dict[str, Any], dict, dict]:
    """-> (tensors, config, meta). Raises DataError naming what is wrong."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    directory = Path(directory)
    meta_path, weights = directory / f"{name}.json", directory / f"{name}.safetensors"
    if not meta_path.is_file() or not weights.is_file():
        raise DataError(f"no checkpoint {name!r} in {directory} (need {weights.name} and {meta_path.name})")
    try:
        info = json.loads(meta_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DataError(f"{meta_path} is not valid JSON: {exc}") from exc
    if info.get("kind") != kind:
        raise DataError(f"{meta_path}: checkpoint kind is {info.get('kind')!r}, expected {kind!r}")
    config = info.get("config", {})
    if expected_config is not None:
        check_config_matches(config, expected_config, f"{meta_path.name}: config")
    try:
        tensors = load_file(str(weights))
    except (SafetensorError, OSError, ValueError) as exc:
        raise DataError(f"{weights} is not a safetensors file ({exc}); pickled checkpoints are "
                        f"refused because unpickling can run arbitrary code") from exc
    return tensors, config, info.get("meta", {})


def check_config_matches(actual: Any, expected: Any, where: str) -> None:
    if isinstance(expected, dict) and isinstance(actual, dict):
        for key in expected:
            if key not in actual:
                raise DataError(f"{where}.{key} is missing; expected {expected[key]!r}")
            check_config_matches(actual[key], expected[key], f"{where}.{key}")
        return
    if isinstance(expected, (list, tuple)) and isinstance(actual, (list, tuple)):
        if list(actual) != list(expected):
            raise DataError(f"{where} is {list(actual)!r}; expected {list(expected)!r}")
        return
    if actual != expected:
        raise DataError(f"{where} is {actual!r}; expected {expected!r}")


def save_train_state(path: Path, state: dict[str, Any]) -> None:
    import torch

    tmp = Path(str(path) + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def load_train_state(path: Path) -> dict[str, Any]:
    import torch

    try:
        return torch.load(path, weights_only=True, map_location="cpu")
    except Exception as exc:  # noqa: BLE001 - weights_only refuses arbitrary objects
        raise DataError(f"cannot load training state {path}: {exc}") from exc
