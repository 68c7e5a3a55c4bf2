"""Device state files: `state/<key>.json`, what a driver keeps across restarts.

The file-backed `StateStore` the collector and the console verbs hand to the drivers (a driver
never touches the data folder). Written atomically, so a crash leaves the old or the new state.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from energy_pipeline.lake.files import atomic_write_json
from energy_pipeline.lake.layout import state_dir


def device_state_path(data_dir: Path, key: str) -> Path:
    return state_dir(data_dir) / f"{key}.json"


class StateFile:
    def __init__(self, path: Path):
        self.path = path

    def __str__(self) -> str:
        return str(self.path)

    def load(self) -> dict[str, Any] | None:
        try:
            doc = json.loads(self.path.read_text())
        except FileNotFoundError:
            return None
        if not isinstance(doc, dict):
            raise ValueError(f"{self.path}: expected a JSON object")
        return doc

    def save(self, doc: dict[str, Any]) -> None:
        atomic_write_json(self.path, doc)


class StateFiles:
    """One `StateFile` per key under `data_dir/state/`."""

    def __init__(self, data_dir: Path):
        self.data_dir = data_dir

    def __call__(self, key: str) -> StateFile:
        return StateFile(device_state_path(self.data_dir, key))
