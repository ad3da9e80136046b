"""Typed configuration: YAML files under `config/` loaded into frozen dataclasses.

One source of truth: the CLIs, the ROS nodes (as parameter defaults) and the tests all read the same
YAML through `load_section`. Unknown keys raise, so a typo never silently falls back to a default.
"""
from __future__ import annotations

import dataclasses
import os
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

from firework_common.errors import ConfigError

T = TypeVar("T")

CONFIG_DIR_ENV = "FIREWORK_CONFIG_DIR"


def config_dir() -> Path:
    """The folder holding firework's YAML files.

    Order: $FIREWORK_CONFIG_DIR, the workspace's top-level `config/` (source checkout), then the
    installed share folder of firework_bringup (colcon install on a ROS 2 machine).
    """
    env = os.environ.get(CONFIG_DIR_ENV)
    if env:
        return Path(env)
    here = Path(__file__).resolve()
    for parent in here.parents:
        candidate = parent / "config"
        if (candidate / "sim.yaml").is_file() and (parent / "colcon.meta").is_file():
            return candidate
    try:  # only on a ROS 2 install
        from ament_index_python.packages import get_package_share_directory

        return Path(get_package_share_directory("firework_bringup")) / "config"
    except Exception as exc:  # noqa: BLE001 - any failure means "not found" here
        raise ConfigError(
            f"cannot find firework's config/ folder; set {CONFIG_DIR_ENV}=/path/to/config"
        ) from exc


def read_yaml(path: Path) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as f:
            data = yaml.safe_load(f) or {}
    except FileNotFoundError as exc:
        raise ConfigError(f"config file not found: {path}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path} is not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping at the top level")
    return data


def from_dict(cls: type[T], data: dict[str, Any], where: str) -> T:
    """Build dataclass `cls` from `data`, recursing into nested dataclasses and dicts of them."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping, got {type(data).__name__} {data!r}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}; known keys: {sorted(fields)}")
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for name, value in data.items():
        kwargs[name] = _convert(hints[name], value, f"{where}.{name}")
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: {exc}") from exc


def _convert(hint: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(hint)
    if dataclasses.is_dataclass(hint):
        return from_dict(hint, value, where)
    if origin is dict:
        _, value_type = typing.get_args(hint)
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return {k: _convert(value_type, v, f"{where}.{k}") for k, v in value.items()}
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        args = typing.get_args(hint)
        item_type = args[0] if args else Any
        items = [_convert(item_type, v, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint in (int, float, str, bool) and not isinstance(value, hint):
        raise ConfigError(f"{where}: expected {hint.__name__}, got {value!r}")
    if hint is int and isinstance(value, bool):
        raise ConfigError(f"{where}: expected int, got {value!r}")
    return value


def load_section(cls: type[T], file_name: str, section: str | None = None,
                 path: Path | None = None) -> T:
    """Load `section` (or the whole file) of `config/<file_name>` into dataclass `cls`."""
    file_path = path if path is not None else config_dir() / file_name
    data = read_yaml(file_path)
    where = file_path.name
    if section is not None:
        if section not in data:
            raise ConfigError(f"{file_path}: missing section '{section}'")
        data = data[section]
        where = f"{file_path.name}:{section}"
    return from_dict(cls, data, where)


def to_dict(obj: Any) -> Any:
    """Dataclass -> plain YAML/JSON-able structure (tuples become lists)."""
    if dataclasses.is_dataclass(obj):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    return obj
