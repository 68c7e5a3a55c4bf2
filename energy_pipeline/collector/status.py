"""The status file `<data_dir>/state/collector-<id>.json` (contracts §5), rewritten atomically
every tick, and its rendering for `energy-pipeline status`.

It only ever states what is durable: `last_ack_ts` is set after the WAL fsync, and
`sealed_watermark` after the Parquet files are renamed into place.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from energy_pipeline.collector.state import CollectorState
from energy_pipeline.lake.files import atomic_write_bytes
from energy_pipeline.lake.layout import status_path
from energy_pipeline.lake.status import read_statuses


def _iso(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat() if value is not None else None


def status_document(state: CollectorState) -> dict[str, Any]:
    return {
        "collector_id": state.collector_id,
        "pid": state.pid,
        "started_at": _iso(state.started_at),
        "updated_at": _iso(state.updated_at),
        "sealed_watermark": _iso(state.sealed_watermark),
        "wal_backlog_bytes": state.wal_backlog_bytes,
        "wal_backlog_rows": state.wal_backlog_rows,
        "pending_rows": state.pending_rows,
        "dropped_rows": state.dropped_rows,
        "storage_error": state.storage_error,
        "devices": {
            d.device_id: {
                "state": d.state,
                "last_ack_ts": _iso(d.last_ack_ts),
                "consecutive_failures": d.consecutive_failures,
                "next_retry": _iso(d.next_retry),
                "last_error": d.last_error,
                "last_error_kind": d.last_error_kind,
                "missed_ticks": d.missed_ticks,
                "polls_ok": d.polls_ok,
                "polls_failed": d.polls_failed,
                "invalid_values": d.invalid_values,
            }
            for d in state.devices.values()
        },
    }


def write_status(data_dir: Path, document: dict[str, Any]) -> None:
    atomic_write_bytes(
        status_path(data_dir, document["collector_id"]),
        json.dumps(document, separators=(",", ":")).encode(),
    )


def read_status(data_dir: Path, collector_id: str) -> dict[str, Any] | None:
    try:
        doc = json.loads(status_path(data_dir, collector_id).read_text())
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


def _alive(pid: object) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def collector_statuses(data_dir: Path) -> list[dict[str, Any]]:
    """Every collector's status with `running` (its pid is alive) added."""
    docs = read_statuses(data_dir)
    for doc in docs:
        doc["running"] = _alive(doc.get("pid"))
    return docs


def render(docs: list[dict[str, Any]]) -> str:
    lines: list[str] = []
    for doc in docs:
        run = "running" if doc.get("running") else "not running"
        lines.append(
            f"collector {doc['collector_id']} ({run}, pid {doc.get('pid')}): "
            f"updated {doc.get('updated_at')}, sealed up to {doc.get('sealed_watermark')}"
        )
        if doc.get("storage_error"):
            lines.append(f"  STORAGE ERROR: {doc['storage_error']}")
        if doc.get("wal_backlog_rows") or doc.get("pending_rows"):
            lines.append(
                f"  unsealed rows {doc.get('wal_backlog_rows', 0)}, "
                f"not yet durable {doc.get('pending_rows', 0)}, "
                f"dropped {doc.get('dropped_rows', 0)}"
            )
        devices = doc.get("devices") or {}
        width = max((len(d) for d in devices), default=6)
        for dev_id, dev in devices.items():
            line = f"  {dev_id:<{width}}  {dev.get('state', '?'):<8}  last {dev.get('last_ack_ts')}"
            if dev.get("consecutive_failures"):
                line += (
                    f"  failures {dev['consecutive_failures']}  retry {dev.get('next_retry')}"
                    f"  [{dev.get('last_error_kind')}] {dev.get('last_error')}"
                )
            if dev.get("missed_ticks"):
                line += f"  missed {dev['missed_ticks']}"
            lines.append(line)
    return "\n".join(lines)


def show_status(data_dir: Path, as_json: bool) -> int:
    """`energy-pipeline status`: every collector of the lake; exit 1 when there is none."""
    docs = collector_statuses(data_dir)
    if as_json:
        print(json.dumps(docs, indent=2))
    elif docs:
        print(render(docs))
    else:
        print(f"no collector status under {data_dir / 'state'}")
    return 0 if docs else 1
