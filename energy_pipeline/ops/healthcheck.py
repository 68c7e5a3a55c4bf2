"""`energy-pipeline status --check`: is this site's collector alive, judged by its status file?

The collector rewrites its status file after every commit, so a file older than a few of the
shortest intervals means it is wedged or gone. Container engines run this as HEALTHCHECK every
few seconds: it reads one small file and never talks to a device (`health` does, and would
fight the collector for a serial port).
"""

from __future__ import annotations

from datetime import datetime

from energy_pipeline.config import Config
from energy_pipeline.lake.status import read_statuses

MIN_MAX_AGE = 30.0


def default_max_age(config: Config) -> float:
    shortest = min((d.interval for d in config.devices), default=60.0)
    return max(3 * shortest, MIN_MAX_AGE)


def check_fresh(config: Config, now: datetime, max_age: float | None = None) -> tuple[int, str]:
    """(exit code, one line): 0 while the status file of `collector.id` is fresh (and, when it
    runs workers, each worker's), else 1."""
    collector_id = config.collector.id
    limit = default_max_age(config) if max_age is None else max_age
    docs = {str(d["collector_id"]): d for d in read_statuses(config.data_dir)}
    doc = docs.get(collector_id)
    if doc is None or not doc.get("updated_at"):
        return 1, f"collector {collector_id}: no status file under {config.data_dir / 'state'}"
    age = (now - datetime.fromisoformat(doc["updated_at"])).total_seconds()
    if age > limit:
        return 1, f"collector {collector_id}: stale, updated {age:.0f} s ago (limit {limit:g} s)"
    stale = [w for w in doc.get("workers") or {} if _age(docs.get(w), now) > limit]
    if stale:
        return 1, f"collector {collector_id}: worker {', '.join(stale)} stale (limit {limit:g} s)"
    return 0, f"collector {collector_id}: fresh, updated {age:.1f} s ago (limit {limit:g} s)"


def _age(doc: dict | None, now: datetime) -> float:
    if doc is None or not doc.get("updated_at"):
        return float("inf")
    return (now - datetime.fromisoformat(doc["updated_at"])).total_seconds()
