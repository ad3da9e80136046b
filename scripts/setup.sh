#!/usr/bin/env bash
# One idempotent setup for a fresh Debian/Ubuntu machine, used by both README commands:
#   1. system libraries for headless rendering (EGL + OSMesa) when missing,
#   2. .venv (Python 3.11) with the pinned dependencies of requirements/lock.txt,
#   3. the workspace's packages installed into .venv (editable) and built by colcon into install/.
# A second run with nothing to do returns in seconds: each step is skipped when its inputs'
# hash matches the stamp it left last time.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
VENV="$ROOT/.venv"
PY=python3.11

say() { printf '[setup] %s\n' "$*"; }
die() { printf '[setup] error: %s\n' "$*" >&2; exit 1; }

# --- 1. system packages -------------------------------------------------------------------------
need_apt=()
ldconfig -p | grep -q 'libEGL.so.1' || need_apt+=(libegl1 libegl-mesa0 libgl1-mesa-dri)
ldconfig -p | grep -q 'libOSMesa.so' || need_apt+=(libosmesa6)
command -v "$PY" >/dev/null || need_apt+=(python3.11 python3.11-venv)
if ((${#need_apt[@]})); then
  if [ "$(id -u)" -ne 0 ] && ! command -v sudo >/dev/null; then
    die "missing system packages: ${need_apt[*]}; fix: apt-get install ${need_apt[*]} (as root)"
  fi
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
  say "installing system packages: ${need_apt[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

# --- 2. the virtual environment ------------------------------------------------------------------
hash_of() { cat "$@" 2>/dev/null | sha256sum | cut -c1-16; }
deps_hash=$(hash_of requirements/lock.txt)
if [ ! -x "$VENV/bin/python" ]; then
  say "creating $VENV with $PY"
  "$PY" -m venv "$VENV"
fi
if [ "$(cat "$VENV/.deps-stamp" 2>/dev/null)" != "$deps_hash" ]; then
  say "installing pinned dependencies (first run: ~1-2 min)"
  "$VENV/bin/python" -m pip install -q --upgrade pip 2>&1 | grep -v '^WARNING: Location' || true
  # pip's 'Location ... is ignored' warnings come from this machine's local wheel index: noise.
  "$VENV/bin/python" -m pip install -q -r requirements/lock.txt 2>&1 | grep -v '^WARNING: Location' || true
  "$VENV/bin/python" -c 'import torch, robosuite, rclpy, rosbags' 2>/dev/null \
    || die "dependencies did not install; rerun scripts/setup.sh and read pip's output above"
  echo "$deps_hash" > "$VENV/.deps-stamp"
fi

# --- 3. the workspace packages -------------------------------------------------------------------
pkg_files=$(find src -maxdepth 2 \( -name setup.py -o -name package.xml -o -name setup.cfg \) | sort)
pkgs_hash=$(hash_of $pkg_files colcon.meta)
if [ "$(cat "$VENV/.pkgs-stamp" 2>/dev/null)" != "$pkgs_hash" ]; then
  say "installing workspace packages into .venv (editable)"
  for pkg in src/*/; do
    [ -f "$pkg/setup.py" ] || continue
    "$VENV/bin/python" -m pip install -q --no-deps --no-build-isolation -e "$pkg" 2>&1 \
      | grep -v '^WARNING: Location' || true
  done
  say "colcon build (ROS 2 package layout in install/)"
  mkdir -p build
  ( source "$VENV/bin/activate" && colcon --log-base build/colcon-log build \
      --symlink-install --base-paths src --build-base build --install-base install \
      > build/colcon-build.log 2>&1 ) \
    || die "colcon build failed; see build/colcon-build.log"
  echo "$pkgs_hash" > "$VENV/.pkgs-stamp"
fi
say "ready: $VENV"
