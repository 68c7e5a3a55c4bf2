"""The collector's side of its status file (contracts §5; written by `lake.status`): the
document of its live state, rewritten atomically every tick, and the `energy-pipeline status`
rendering.

It only ever states what is durable: `last_ack_ts` is set after the WAL fsync, and
`sealed_watermark` after the Parquet files are renamed into place.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from energy_pipeline.collector.state import CollectorState, TunnelState
from energy_pipeline.config import Config
from energy_pipeline.lake import status as lake_status
from energy_pipeline.lake.disk import DiskSpace, human_bytes, low_space


def tunnel_document(t: TunnelState) -> dict[str, Any]:
    return lake_status.tunnel_status(
        t.state,
        t.up,
        t.since,
        local_ip=t.local_ip,
        remote_ip=t.remote_ip,
        bytes_in=t.bytes_in,
        bytes_out=t.bytes_out,
        restarts=t.restarts,
        last_error=t.last_error,
        pid=t.pid,
        management_port=t.management_port,
    )


def render_tunnel(name: str, doc: dict[str, Any]) -> str:
    line = (
        f"vpn {name}  {doc.get('state')}  since {doc.get('since')}  "
        f"{doc.get('local_ip') or '-'} -> {doc.get('remote_ip') or '-'}  "
        f"in {doc.get('bytes_in', 0)} B  out {doc.get('bytes_out', 0)} B"
    )
    if doc.get("restarts"):
        line += f"  restarts {doc['restarts']}"
    if doc.get("last_error"):
        line += f"  last error: {doc['last_error']}"
    return line


def status_document(
    state: CollectorState, workers: dict[str, dict[str, Any]] | None = None
) -> dict[str, Any]:
    """The collector's live state as the lake's status document; a parent passes its
    `workers`, whose own documents hold the devices."""
    return lake_status.status_document(
        state.collector_id,
        state.pid,
        state.started_at,
        {}
        if workers is not None
        else {
            d.device_id: lake_status.device_status(
                d.state,
                d.last_ack_ts,
                consecutive_failures=d.consecutive_failures,
                next_retry=d.next_retry,
                last_error=d.last_error,
                last_error_kind=d.last_error_kind,
                missed_ticks=d.missed_ticks,
                polls_ok=d.polls_ok,
                polls_failed=d.polls_failed,
                invalid_values=d.invalid_values,
            )
            for d in state.devices.values()
        },
        updated_at=state.updated_at,
        sealed_watermark=state.sealed_watermark,
        wal_backlog_bytes=state.wal_backlog_bytes,
        wal_backlog_rows=state.wal_backlog_rows,
        pending_rows=state.pending_rows,
        dropped_rows=state.dropped_rows,
        storage_error=state.storage_error,
        disk_free_bytes=state.disk_free_bytes,
        disk_total_bytes=state.disk_total_bytes,
        vpn={name: tunnel_document(t) for name, t in state.vpn.items()},
        outputs=state.output_figures() if state.output_figures else {},
        workers=workers,
    )


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
    docs = lake_status.read_statuses(data_dir)
    for doc in docs:
        doc["running"] = _alive(doc.get("pid"))
    return docs


def retention(config: Config) -> dict[str, int | None]:
    """Days each part of the lake is kept (None: forever), as `pipeline:` sets them."""
    p = config.pipeline
    return {
        "raw_days": p.raw_retention_days,
        "minute_days": p.minute_retention_days,
        "export_days": p.export_retention_days,
        "dagster_run_days": p.run_history_days,
    }


def disk_alert(config: Config, doc: dict[str, Any]) -> str | None:
    free, total = doc.get("disk_free_bytes"), doc.get("disk_total_bytes")
    if not isinstance(free, int) or not isinstance(total, int):
        return None
    limits = config.alerts.disk
    return low_space(DiskSpace(free, total), limits.min_free_percent, limits.min_free_gb)


def _days(value: int | None) -> str:
    return "forever" if value is None else f"{value} days"


def render(docs: list[dict[str, Any]], config: Config) -> str:
    kept = retention(config)
    lines: list[str] = [
        f"lake {config.data_dir}: raw kept {_days(kept['raw_days'])}, minute_readings "
        f"{_days(kept['minute_days'])}, exports {_days(kept['export_days'])}, Dagster runs "
        f"{_days(kept['dagster_run_days'])}"
    ]
    by_id = {str(doc["collector_id"]): doc for doc in docs}
    nested = {shard for doc in docs for shard in doc.get("workers") or {}}
    for doc in docs:
        if doc["collector_id"] in nested:
            continue
        lines.extend(_render_collector(doc))
        for shard, entry in (doc.get("workers") or {}).items():
            restarts = f", restarts {entry['restarts']}" if entry.get("restarts") else ""
            last = f", last exit: {entry['last_exit']}" if entry.get("last_exit") else ""
            own = by_id.get(shard)
            state = "not running"
            if own is not None:
                run = "running" if own.get("running") else "not running"
                state = f"{run}, sealed up to {own.get('sealed_watermark')}"
            lines.append(
                f"  worker {shard} ({state}, pid {entry.get('pid')}): {entry.get('devices')} "
                f"devices{restarts}{last}"
            )
            if own is not None:
                body = _render_collector(own)[1:]
                lines.extend("  " + line for line in body if not line.startswith("  disk "))
    return "\n".join(lines)


def _render_collector(doc: dict[str, Any]) -> list[str]:
    run = "running" if doc.get("running") else "not running"
    lines = [
        f"collector {doc['collector_id']} ({run}, pid {doc.get('pid')}): "
        f"updated {doc.get('updated_at')}"
        + (
            f", {len(doc['workers'])} workers"
            if doc.get("workers")
            else f", sealed up to {doc.get('sealed_watermark')}"
        )
    ]
    if doc.get("storage_error"):
        lines.append(f"  STORAGE ERROR: {doc['storage_error']}")
    if isinstance(doc.get("disk_total_bytes"), int):
        space = DiskSpace(doc["disk_free_bytes"], doc["disk_total_bytes"])
        line = (
            f"  disk {human_bytes(space.free_bytes)} free of "
            f"{human_bytes(space.total_bytes)} ({space.free_ratio:.1%})"
        )
        if doc.get("disk_alert"):
            line += f"  LOW: {doc['disk_alert']}"
        lines.append(line)
    if doc.get("wal_backlog_rows") or doc.get("pending_rows"):
        lines.append(
            f"  unsealed rows {doc.get('wal_backlog_rows', 0)}, "
            f"not yet durable {doc.get('pending_rows', 0)}, "
            f"dropped {doc.get('dropped_rows', 0)}"
        )
    for name, tunnel in (doc.get("vpn") or {}).items():
        lines.append("  " + render_tunnel(name, tunnel))
    for name, out in (doc.get("outputs") or {}).items():
        line = f"  output {name}: dropped {out.get('dropped', 0)}"
        if "state" in out:
            line = (
                f"  output {name}: {out['state']}, written {out.get('written')}, "
                f"queued {out.get('queued')}, dropped {out.get('dropped')}, "
                f"rejected {out.get('rejected')}"
            )
            if out.get("last_error"):
                line += f"  last error: {out['last_error']}"
        lines.append(line)
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
    return lines


def show_status(config: Config, as_json: bool) -> int:
    """`energy-pipeline status`: every collector of the lake, its free disk space against
    `alerts.disk` and the lake's retention; exit 1 when there is no collector."""
    data_dir = config.data_dir
    docs = collector_statuses(data_dir)
    for doc in docs:
        doc["disk_alert"] = disk_alert(config, doc)
        doc["lake_retention"] = retention(config)
    if as_json:
        print(json.dumps(docs, indent=2))
    elif docs:
        print(render(docs, config))
    else:
        print(f"no collector status under {data_dir / 'state'}")
    return 0 if docs else 1
