"""Write-ahead logs a changed worker layout left behind, sealed before polling starts.

A collector that was one process and now runs workers (or the reverse, or fewer workers than
before) would otherwise never replay the WAL of an id it no longer runs under: acknowledged
readings of a collector killed before that change would stay out of the lake. Each such id is
replayed and sealed under its own lock (a live collector of that id keeps its WAL), then its
status file goes: nothing runs under that id any more, and a stale entry would only confuse
`status`.
"""

from __future__ import annotations

import logging

from energy_pipeline.collector.landing import Landing, utc
from energy_pipeline.collector.lock import CollectorLock, CollectorRunning
from energy_pipeline.collector.scheduler import SystemClock
from energy_pipeline.collector.shards import is_shard_of
from energy_pipeline.collector.state import CollectorState
from energy_pipeline.config import Config
from energy_pipeline.lake.status import read_statuses, remove_status

log = logging.getLogger("energy_pipeline.collector")


def family(config: Config) -> set[str]:
    """Ids this collector has run under: its own and its workers' (from their status files)."""
    own = config.collector.id
    return {
        doc["collector_id"]
        for doc in read_statuses(config.data_dir)
        if doc["collector_id"] == own or is_shard_of(own, str(doc["collector_id"]))
    }


def id_config(config: Config, collector_id: str) -> Config:
    settings: dict[str, object] = {"id": collector_id}
    if config.collector.wal_dir is not None and collector_id != config.collector.id:
        settings["wal_dir"] = config.collector.wal_dir / collector_id
    return config.model_copy(
        update={"devices": [], "collector": config.collector.model_copy(update=settings)}
    )


def adopt(config: Config, collector_id: str, *, locked: bool = False) -> bool:
    """Replay and seal the WAL of `collector_id`; whether there was one (False while another
    process runs under that id)."""
    clock = SystemClock()
    lock = CollectorLock(config.data_dir, collector_id)
    if not locked:
        try:
            lock.acquire()
        except CollectorRunning:
            return False
    try:
        own = id_config(config, collector_id)
        state = CollectorState(collector_id, 0, utc(clock.time()))
        landing = Landing(own, state, clock)
        try:
            found = bool(landing.wal.segments())
            if found:
                landing.recover()
                landing.final_seal()
                log.info(
                    "sealed the write-ahead log of a former worker layout",
                    extra={"fields": {"collector": collector_id}},
                )
        finally:
            landing.close()
        if not locked and state.storage_error is None and not landing.wal.segments():
            remove_status(config.data_dir, collector_id)
        return found
    finally:
        if not locked:
            lock.release()


def adopt_orphans(config: Config, keep: set[str]) -> None:
    """Adopt every id of this collector's family not in `keep` (the ids about to run)."""
    for collector_id in sorted(family(config) - keep):
        adopt(config, collector_id)
