"""The CSV export files under `<data_dir>/exports/`: their names, atomic writing and retention.

- PROGNOZA: `<device>_readings_YYYY-MM-DD.csv`
- Luxtronik logger: `<device>/YYYY-MM-DD_daily.csv` and `<device>/YYYY-MM-DD_weekly.csv`

Their contents are built in `transforms.exports`; this module only places the bytes.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Literal

from energy_pipeline.lake.files import atomic_write_bytes
from energy_pipeline.lake.layout import exports_dir

ExportKind = Literal["prognoza", "daily", "weekly"]
_DATED = re.compile(r"(\d{4}-\d{2}-\d{2})(?:_daily|_weekly)?\.csv$")


@dataclass(frozen=True, slots=True)
class ExportFile:
    """One export file's bytes, named by device and kind; the day names the file."""

    device_id: str
    kind: ExportKind
    data: bytes


def export_path(data_dir: Path, device_id: str, day: date, kind: ExportKind) -> Path:
    exports = exports_dir(data_dir)
    if kind == "prognoza":
        return exports / f"{device_id}_readings_{day.isoformat()}.csv"
    return exports / device_id / f"{day.isoformat()}_{kind}.csv"


def write_exports(data_dir: Path, day: date, files: Iterable[ExportFile]) -> list[Path]:
    """Write a day's export files atomically; returns their paths."""
    written: list[Path] = []
    for file in files:
        path = export_path(data_dir, file.device_id, day, file.kind)
        atomic_write_bytes(path, file.data)
        written.append(path)
    return written


def prune_exports(data_dir: Path, today: date, retention_days: int) -> list[Path]:
    """Delete export files dated more than `retention_days` before `today`."""
    exports = exports_dir(data_dir)
    cutoff = today - timedelta(days=retention_days)
    removed: list[Path] = []
    if not exports.is_dir():
        return removed
    for path in exports.rglob("*.csv"):
        match = _DATED.search(path.name)
        if match and date.fromisoformat(match.group(1)) < cutoff:
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed
