"""The manifest of a round: one JSON file listing the round's finished episode bags.

It is rewritten atomically (temp file + fsync + rename) after each finished episode, so a crash at
any moment leaves either the old or the new manifest, never a torn one. The bags stay the source of
truth: every field here is also in the bag's own metadata, and `rebuild` recreates the manifest
from the bags alone.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from firework_common.errors import DataError

MANIFEST_NAME = "manifest.json"
MANIFEST_FORMAT = "firework-round/1"
EPISODES_DIR = "episodes"


class RoundManifest:
    def __init__(self, round_dir: Path) -> None:
        self.round_dir = Path(round_dir)
        self.path = self.round_dir / MANIFEST_NAME
        self.episodes: list[dict[str, Any]] = []
        if self.path.exists():
            self.episodes = load_manifest(self.round_dir)

    @property
    def episodes_dir(self) -> Path:
        return self.round_dir / EPISODES_DIR

    def add(self, record: dict[str, Any]) -> None:
        """Append one finished episode (its `bag` path relative to the round dir) and persist."""
        self.episodes.append(record)
        self.save()

    def save(self) -> None:
        tmp = self.path.with_name(self.path.name + ".tmp")
        data = {"format": MANIFEST_FORMAT, "episodes": self.episodes}
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=1, sort_keys=True)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)

    def next_index(self) -> int:
        return 1 + max((int(e["index"]) for e in self.episodes), default=-1)

    def rebuild(self) -> None:
        """Recreate the manifest from the finished bags on disk (e.g. after a killed collection)."""
        from firework_common.episode_bag import read_episode

        self.episodes = []
        for bag in sorted(p for p in self.episodes_dir.iterdir() if (p / "metadata.yaml").is_file()):
            ep = read_episode(bag, load_images=False)
            self.episodes.append({**ep.meta, "bag": str(bag.relative_to(self.round_dir))})
        self.save()


def load_manifest(round_dir: Path) -> list[dict[str, Any]]:
    path = Path(round_dir) / MANIFEST_NAME
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"{round_dir} has no {MANIFEST_NAME}: not a firework round directory") from None
    except json.JSONDecodeError as exc:
        raise DataError(f"{path} is not valid JSON ({exc}); rebuild it from the bags") from exc
    if data.get("format") != MANIFEST_FORMAT:
        raise DataError(f"{path}: format is {data.get('format')!r}, expected {MANIFEST_FORMAT!r}")
    return list(data["episodes"])


def require_round_dirs(paths: list[Path]) -> list[Path]:
    """Fail with one message naming every path that is not a round directory."""
    from firework_common.errors import UsageError

    missing = [str(p) for p in paths if not (Path(p) / MANIFEST_NAME).is_file()]
    if missing:
        raise UsageError(f"not a round directory (no {MANIFEST_NAME}): {', '.join(missing)}; "
                         f"record one with `firework collect --out DIR`")
    return paths
