"""The durable path of one collector: write-ahead log, unsealed rows, minute sealing, status.

Synchronous on purpose: the service runs it in a worker thread, one call at a time (under its
commit lock), so the event loop keeps time while fsync and Parquet writing block. Everything
the status file states is durable by the time it is written: acknowledgements after the WAL
fdatasync, the watermark after the Parquet renames.

When the data directory refuses writes (full, read-only, gone), encoded commits wait in memory
up to `collector.max_pending_mb`, the error is logged loudly once a minute, every tick retries,
and the backlog lands in one append when writes succeed again. When only the lake refuses (the
WAL takes appends), acknowledgements go on and the seal is retried with capped backoff: each try
starts a process, which every tick would make a steady CPU load; the backlog then lands batch
by batch (see `sealer`).
"""

from __future__ import annotations

import ctypes
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path

from energy_pipeline.collector.encode import OutcomeEncoder, to_us
from energy_pipeline.collector.scheduler import Clock
from energy_pipeline.collector.sealer import Sealer
from energy_pipeline.collector.state import CollectorState
from energy_pipeline.collector.status import status_document
from energy_pipeline.collector.wal import WriteAheadLog, encode_frame
from energy_pipeline.config import Config
from energy_pipeline.lake.disk import disk_space
from energy_pipeline.lake.layout import MINUTE_US, state_dir
from energy_pipeline.lake.status import read_status, write_status
from energy_pipeline.lake.sweep import sweep_temp
from energy_pipeline.readings import PollOutcome

log = logging.getLogger("energy_pipeline.collector")

STORAGE_LOG_EVERY = 60.0
"""While the data directory refuses writes, the error is repeated this often (seconds)."""

SEAL_RETRY_MAX_S = 60.0
"""A failed seal is retried after 1, 2, 4, ... seconds, at most this long."""

SWEEP_BEFORE_WATERMARK = timedelta(hours=1)
SWEEP_LIMIT = timedelta(hours=48)
"""Temp files of a crashed seal are looked for from an hour before the watermark (at most
two days back): sealing writes older minutes only after a replay, which is in range, or for a
device's backfill, which may reach further back; a temp file a crash left there stays, ignored
by every reader."""


@cache
def _malloc_trim() -> Callable[[int], int] | None:
    return getattr(ctypes.CDLL(None), "malloc_trim", None)


def release_freed_memory() -> None:
    """Hand freed pages back to the OS. glibc keeps freed memory inside its heaps and returns
    only their top, so the collector would hold each minute's peak of tick buffers for good;
    malloc_trim returns every free page. A no-op on a libc without it."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


def utc(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, tz=UTC)


def floor_minute_us(ts: float) -> int:
    return (int(ts * 1_000_000) // MINUTE_US) * MINUTE_US


def seal_retry_delay(failures: int) -> float:
    """Seconds before the next try after `failures` failed seals in a row (a day of failures
    must not overflow the float)."""
    return min(SEAL_RETRY_MAX_S, 2.0 ** min(failures - 1, 16))


def wal_folder(config: Config) -> Path:
    settings = config.collector
    if settings.wal_dir is not None:
        return config.resolve(settings.wal_dir)
    return state_dir(config.data_dir) / f"wal-{settings.id}"


@dataclass(slots=True)
class Unwritten:
    """An encoded commit waiting for the WAL (the data directory refused it so far)."""

    frame: bytes
    raw_rows: int
    poll_rows: int
    acks: dict[str, float]
    first_us: int
    last_ts: float


class Landing:
    def __init__(self, config: Config, state: CollectorState, clock: Clock):
        self.settings = config.collector
        self.data_dir = config.data_dir
        self.state = state
        self.clock = clock
        self.encoder = OutcomeEncoder()
        self.wal = WriteAheadLog(wal_folder(config))
        self.sealer = Sealer(self.data_dir, self.settings.id, self.wal.path)
        self.unwritten: list[Unwritten] = []
        self._failing_since: float | None = None
        self._logged_at = 0.0
        self._seal_failures = 0
        self._seal_retry_at = 0.0

    def recover(self) -> dict[str, float]:
        """Replay the WAL into the lake; returns each device's last acknowledged instant."""
        previous = read_status(self.data_dir, self.settings.id) or {}
        if previous.get("sealed_watermark"):
            self.state.sealed_watermark = datetime.fromisoformat(previous["sealed_watermark"])
        last_ack: dict[str, float] = {}
        for dev_id, dev in (previous.get("devices") or {}).items():
            if dev_id in self.state.devices and dev.get("last_ack_ts"):
                last_ack[dev_id] = datetime.fromisoformat(dev["last_ack_ts"]).timestamp()
        now = utc(self.clock.time())
        since = (self.state.sealed_watermark or now) - SWEEP_BEFORE_WATERMARK
        self.sealer.found(self.wal.segments())
        self.wal.rotate()
        try:
            sweep_temp(self.data_dir, self.settings.id, max(since, now - SWEEP_LIMIT), now)
            report = self.sealer.seal(None)
            self.wal.delete_before(self.wal.segment)
        except OSError as exc:
            self._failed(exc, "sealing the replayed write-ahead log")
        else:
            if report.polls:
                log.info("replayed write-ahead log", extra={"fields": {"polls": report.polls}})
            for dev_id, ts_us in report.last_ack.items():
                if dev_id in self.state.devices:
                    last_ack[dev_id] = max(last_ack.get(dev_id, 0.0), ts_us / 1_000_000)
        for dev_id, ts in last_ack.items():
            self.state.devices[dev_id].last_ack_ts = utc(ts)
        return last_ack

    def stage(self, outcomes: Sequence[PollOutcome]) -> None:
        """Encode one commit (vectorised) and queue it for the WAL."""
        encoded = self.encoder.encode(outcomes)
        for dev_id, n in encoded.invalid.items():
            self.state.devices[dev_id].invalid_values += n
        acks: dict[str, float] = {}
        for o in outcomes:
            if o.ok:
                ts = o.ts.timestamp()
                acks[o.device_id] = max(acks.get(o.device_id, ts), ts)
        self.unwritten.append(
            Unwritten(
                encode_frame(encoded.payload),
                encoded.raw_rows,
                encoded.poll_rows,
                acks,
                encoded.first_us,
                max(o.ts.timestamp() for o in outcomes),
            )
        )

    def persist(self, oldest_in_flight: float | None) -> None:
        """WAL append (the acknowledgement), then seal completed minutes, then the status.

        Minutes from the one of `oldest_in_flight` on stay open: a poll still running will
        land in them.
        """
        now = self.clock.time()
        try:
            if self.unwritten:
                self._append()
            self._maybe_seal(now, oldest_in_flight)
            if self._seal_failures == 0:  # a seal waiting to retry still fails
                if self._failing_since is not None:
                    log.warning(
                        "data directory writable again",
                        extra={"fields": {"failing_for_s": round(now - self._failing_since)}},
                    )
                self._failing_since = None
                self.state.storage_error = None
        except OSError as exc:
            self._failed(exc, "writing the write-ahead log or the lake")
            self._bound()
        self.write_status()

    def final_seal(self) -> None:
        """On shutdown: everything acknowledged into the lake, the WAL emptied."""
        try:
            if self.unwritten:
                self._append()
            self.wal.rotate()
            self.sealer.seal(None)
            self.sealer.advance(floor_minute_us(self.clock.time()))
            self.wal.delete_before(self.wal.segment + 1)
            self._sealed()
            self.state.storage_error = None
        except OSError as exc:
            self._failed(exc, "sealing on shutdown")
        self.write_status()
        lost = self.unwritten_rows
        if lost:
            log.error(
                "stopping with rows that never became durable",
                extra={"fields": {"rows": lost, "error": self.state.storage_error}},
            )

    @property
    def unwritten_rows(self) -> int:
        return sum(u.raw_rows + u.poll_rows for u in self.unwritten)

    def settle(self) -> None:
        """Wait for a running seal and take its report, as the next tick would. Raises OSError."""
        if self.sealer.finish(block=True) is not None:
            self._sealed()

    def close(self) -> None:
        self.sealer.wait()
        self.wal.close()

    def _append(self) -> None:
        segment = self.wal.append(b"".join(u.frame for u in self.unwritten))
        done, self.unwritten = self.unwritten, []
        self.state.commits += 1
        for u in done:
            rows = u.raw_rows + u.poll_rows
            self.sealer.add(segment, rows, u.first_us, to_us(u.last_ts), len(u.frame))
            self.state.readings_acknowledged += u.raw_rows
            for dev_id, ts in u.acks.items():
                st = self.state.devices[dev_id]
                if st.last_ack_ts is None or st.last_ack_ts.timestamp() < ts:
                    st.last_ack_ts = utc(ts)

    def _maybe_seal(self, now: float, oldest_in_flight: float | None) -> None:
        """Collect the running seal's report if it is done, else start one when a minute has
        completed (or a batch of a backlog is left). Polls are acknowledged meanwhile: the seal
        reads only closed segments."""
        try:
            self._seal_step(now, oldest_in_flight)
        except OSError:
            self._seal_failures += 1
            self._seal_retry_at = now + seal_retry_delay(self._seal_failures)
            raise

    def _seal_step(self, now: float, oldest_in_flight: float | None) -> None:
        if self.sealer.running is not None:
            if self.sealer.finish() is None:
                return
            self._sealed()
        if now < self._seal_retry_at:
            return
        target = floor_minute_us(now - self.settings.seal_delay)
        if oldest_in_flight is not None:
            target = min(target, floor_minute_us(oldest_in_flight))
        current = self.sealer.watermark_us
        if current is None and self.state.sealed_watermark is not None:
            current = int(self.state.sealed_watermark.timestamp() * 1_000_000)
            self.sealer.watermark_us = current
        if current is not None and target <= current:
            return
        self.wal.rotate()
        self.sealer.start(target)
        if self.sealer.running is None:  # nothing to seal: the watermark moved at once
            self._sealed()

    def _sealed(self) -> None:
        self._seal_failures = 0
        oldest = self.sealer.oldest_segment()
        self.wal.delete_before(oldest if oldest is not None else self.wal.segment)
        if self.sealer.watermark_us is not None:
            self.state.sealed_watermark = utc(self.sealer.watermark_us / 1_000_000)
        release_freed_memory()

    def _failed(self, exc: OSError, doing: str) -> None:
        now = self.clock.time()
        message = f"{doing}: {exc.strerror or exc} ({exc.filename or self.data_dir})"
        self.state.storage_error = message
        if self._failing_since is None:
            self._failing_since = now
        if now - self._logged_at >= STORAGE_LOG_EVERY or self._logged_at == 0.0:
            self._logged_at = now
            log.error(
                "DATA DIRECTORY REFUSES WRITES; readings wait (in memory or in the write-ahead "
                "log) and writing is retried",
                extra={
                    "fields": {
                        "error": message,
                        "pending_rows": self.unwritten_rows,
                        "wal_backlog_rows": self.sealer.rows,
                    }
                },
            )

    def _bound(self) -> None:
        limit = self.settings.max_pending_mb * 1024 * 1024
        total = sum(len(u.frame) for u in self.unwritten)
        while self.unwritten and total > limit:
            dropped = self.unwritten.pop(0)
            total -= len(dropped.frame)
            self.state.dropped_rows += dropped.raw_rows
            log.error(
                "memory bound reached: dropping the oldest readings that never became durable",
                extra={
                    "fields": {
                        "rows": dropped.raw_rows,
                        "from": utc(dropped.first_us / 1_000_000).isoformat(),
                    }
                },
            )

    def write_status(self) -> None:
        st = self.state
        st.updated_at = utc(self.clock.time())
        st.pending_rows = self.unwritten_rows
        st.pending_bytes = sum(len(u.frame) for u in self.unwritten)
        st.wal_backlog_rows = self.sealer.rows
        try:
            space = disk_space(self.data_dir)
            st.disk_free_bytes, st.disk_total_bytes = space.free_bytes, space.total_bytes
            st.wal_backlog_bytes = self.wal.disk_bytes()
            write_status(self.data_dir, status_document(st))
        except OSError as exc:
            log.debug("status file not written: %s", exc)
