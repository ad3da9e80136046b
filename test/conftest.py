"""Test-wide settings: ROS 2 discovery stays on this machine, in a domain of its own, logs in tmp."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]

# Set before any rclpy import so every test process and its children inherit them.
os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
# A per-run domain (0-101 are valid with default ports): parallel runs on one machine stay apart.
os.environ.setdefault("ROS_DOMAIN_ID", str(os.getpid() % 100 + 1))
os.environ.setdefault("ROS_LOG_DIR", tempfile.mkdtemp(prefix="firework-ros-log-"))
os.environ.setdefault("PYNPUT_BACKEND", "dummy")
os.environ.setdefault("NUMBA_CACHE_DIR", str(REPO_ROOT / "build" / "numba-cache"))


@pytest.fixture(scope="session")
def sim_config():
    from firework_sim.config import load_sim_config

    return load_sim_config()


@pytest.fixture(scope="session")
def operator_config():
    from firework_sim.config import load_operator_config

    return load_operator_config()
