"""Collector status files `state/collector-<id>.json` (contracts §5): what each collector has
acknowledged and sealed; the document's shape is defined here, once.

Written atomically by the collector every tick (and once by simulated history); read by
`energy-pipeline status`, the Dagster sensor (the sealed-minute watermark: every minute before
it is in the lake) and the tests.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from energy_pipeline.lake.files import atomic_write_bytes
from energy_pipeline.lake.layout import state_dir, status_path


def _iso(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat() if value is not None else None


def device_status(
    state: str,
    last_ack_ts: datetime | None,
    *,
    consecutive_failures: int = 0,
    next_retry: datetime | None = None,
    last_error: str | None = None,
    last_error_kind: str | None = None,
    missed_ticks: int = 0,
    polls_ok: int = 0,
    polls_failed: int = 0,
    invalid_values: int = 0,
) -> dict[str, Any]:
    """One device's entry of a status document."""
    return {
        "state": state,
        "last_ack_ts": _iso(last_ack_ts),
        "consecutive_failures": consecutive_failures,
        "next_retry": _iso(next_retry),
        "last_error": last_error,
        "last_error_kind": last_error_kind,
        "missed_ticks": missed_ticks,
        "polls_ok": polls_ok,
        "polls_failed": polls_failed,
        "invalid_values": invalid_values,
    }


def tunnel_status(
    state: str,
    up: bool,
    since: datetime | None,
    *,
    local_ip: str | None = None,
    remote_ip: str | None = None,
    bytes_in: int = 0,
    bytes_out: int = 0,
    restarts: int = 0,
    last_error: str | None = None,
    pid: int | None = None,
    management_port: int | None = None,
) -> dict[str, Any]:
    """One site VPN tunnel's entry of a status document (also the state a tunnel's own
    record carries)."""
    return {
        "state": state,
        "up": up,
        "since": _iso(since),
        "local_ip": local_ip,
        "remote_ip": remote_ip,
        "bytes_in": bytes_in,
        "bytes_out": bytes_out,
        "restarts": restarts,
        "last_error": last_error,
        "pid": pid,
        "management_port": management_port,
    }


def status_document(
    collector_id: str,
    pid: int,
    started_at: datetime | None,
    devices: dict[str, dict[str, Any]],
    *,
    updated_at: datetime | None = None,
    sealed_watermark: datetime | None = None,
    wal_backlog_bytes: int = 0,
    wal_backlog_rows: int = 0,
    pending_rows: int = 0,
    dropped_rows: int = 0,
    storage_error: str | None = None,
    disk_free_bytes: int | None = None,
    disk_total_bytes: int | None = None,
    vpn: dict[str, dict[str, Any]] | None = None,
    outputs: dict[str, dict[str, Any]] | None = None,
    workers: dict[str, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """A collector's status document; `devices` maps id to `device_status(...)`, `vpn` tunnel
    name to `tunnel_status(...)`, `outputs` a live output's name to its figures (queue drops,
    delivery state). A collector running worker processes lists them in `workers` (shard id
    to `worker_status(...)`); their devices are in the workers' own documents."""
    doc: dict[str, Any] = {
        "collector_id": collector_id,
        "pid": pid,
        "started_at": _iso(started_at),
        "updated_at": _iso(updated_at),
        "sealed_watermark": _iso(sealed_watermark),
        "wal_backlog_bytes": wal_backlog_bytes,
        "wal_backlog_rows": wal_backlog_rows,
        "pending_rows": pending_rows,
        "dropped_rows": dropped_rows,
        "storage_error": storage_error,
        "disk_free_bytes": disk_free_bytes,
        "disk_total_bytes": disk_total_bytes,
        "outputs": outputs or {},
        "devices": devices,
        "vpn": vpn or {},
    }
    if workers is not None:
        doc["workers"] = workers
    return doc


def worker_status(
    pid: int | None,
    running: bool,
    devices: int,
    *,
    started_at: datetime | None = None,
    restarts: int = 0,
    last_exit: str | None = None,
) -> dict[str, Any]:
    """One worker process's entry in its parent's status document."""
    return {
        "pid": pid,
        "running": running,
        "devices": devices,
        "started_at": _iso(started_at),
        "restarts": restarts,
        "last_exit": last_exit,
    }


def write_status(data_dir: Path, document: dict[str, Any]) -> None:
    atomic_write_bytes(
        status_path(data_dir, document["collector_id"]),
        json.dumps(document, separators=(",", ":")).encode(),
    )


def remove_status(data_dir: Path, collector_id: str) -> None:
    """For an id nothing runs under any more (its WAL sealed)."""
    status_path(data_dir, collector_id).unlink(missing_ok=True)


def read_status(data_dir: Path, collector_id: str) -> dict[str, Any] | None:
    try:
        doc = json.loads(status_path(data_dir, collector_id).read_text())
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


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
