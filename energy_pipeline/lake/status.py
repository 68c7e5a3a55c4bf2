"""Collector status files: what each collector has acknowledged and sealed.

Written atomically by the collector every tick; read by `energy-pipeline status`, the Dagster
sensor (the sealed-minute watermark: every minute before it is in the lake) and the tests.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

from energy_pipeline.lake.layout import state_dir


def read_statuses(data_dir: Path) -> list[dict[str, Any]]:
    """Every collector's status; a half-written or foreign file is skipped, not fatal."""
    out: list[dict[str, Any]] = []
    for path in sorted(state_dir(data_dir).glob("collector-*.json")):
        try:
            doc = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(doc, dict) and "collector_id" in doc:
            out.append(doc)
    return out


def sealed_watermarks(data_dir: Path) -> dict[str, datetime]:
    """collector id -> sealed watermark (aware UTC); collectors that sealed nothing are absent."""
    marks: dict[str, datetime] = {}
    for doc in read_statuses(data_dir):
        raw = doc.get("sealed_watermark")
        if raw:
            marks[doc["collector_id"]] = datetime.fromisoformat(raw)
    return marks
