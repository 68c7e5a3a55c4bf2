"""The collect service: ticks, per-device polling, group commit, sealing, status.

One ticker task wakes at each aligned instant and hands the tick to the persistent task of every
device due then (no task is created per tick). Devices poll concurrently; a device still busy
with an earlier tick skips this one and counts it, so polls never pile up, and a hung device
only ever holds its own task (reads are bounded by the device's timeout budget). Outcomes go to
one committer task, which writes them to the WAL in one fdatasync per commit — that is the
acknowledgement — then seals completed minutes into the lake, rewrites the status file and
offers the outcomes to the live sinks. Blocking file work runs in a worker thread so the event
loop keeps time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import random
import signal
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa

from energy_pipeline.collector.backoff import Backoff
from energy_pipeline.collector.encode import OutcomeEncoder
from energy_pipeline.collector.lock import CollectorLock
from energy_pipeline.collector.scheduler import (
    Clock,
    IntervalGroup,
    SystemClock,
    next_due,
    sleep_until,
    take,
)
from energy_pipeline.collector.sealer import MINUTE_US, LakeWriter, Sealer
from energy_pipeline.collector.state import CollectorState, DeviceState
from energy_pipeline.collector.status import read_status, status_document, write_status
from energy_pipeline.collector.wal import WriteAheadLog, encode_frame
from energy_pipeline.config import Config, Device
from energy_pipeline.drivers.base import DeviceError, Driver
from energy_pipeline.lake.layout import state_dir
from energy_pipeline.readings import PollOutcome
from energy_pipeline.sinks import OutcomeSink

log = logging.getLogger("energy_pipeline.collector")

STORAGE_LOG_EVERY = 60.0
"""While the data directory refuses writes, the error is repeated this often (seconds)."""


def utc(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, tz=UTC)


def read_budget(device: Device) -> float:
    """The longest one poll may take: the driver's own timeout and retries, plus a margin."""
    conn = device.connection
    timeout = float(getattr(conn, "timeout", 5.0))
    retries = int(getattr(conn, "retries", 0))
    return timeout * (retries + 1) + 1.0


def wal_folder(config: Config) -> Path:
    settings = config.collector
    if settings.wal_dir is not None:
        return config.resolve(settings.wal_dir)
    return state_dir(config.data_dir) / f"wal-{settings.id}"


@dataclass(slots=True)
class Tick:
    """The polls of one scheduled instant, gathered for one commit."""

    ts: float
    expected: int = 0
    outcomes: list[PollOutcome] = field(default_factory=list)
    done: asyncio.Event = field(default_factory=asyncio.Event)
    closed: bool = False

    def arrive(self, outcome: PollOutcome) -> bool:
        if self.closed:
            return False
        self.outcomes.append(outcome)
        if len(self.outcomes) >= self.expected:
            self.done.set()
        return True


@dataclass(slots=True)
class Worker:
    device: Device
    driver: Driver
    state: DeviceState
    budget: float
    wake: asyncio.Future[tuple[float, Tick]] | None = None
    busy: bool = False
    idle: asyncio.Event = field(default_factory=asyncio.Event)
    current_ts: float | None = None
    retry_at: float = 0.0


@dataclass(slots=True)
class Unwritten:
    """An encoded commit waiting for the WAL (the data directory refused it so far)."""

    frame: bytes
    raw: pa.RecordBatch
    polls: pa.RecordBatch
    acks: dict[str, float]
    first_ts: float


class CollectorService:
    def __init__(
        self,
        config: Config,
        drivers: dict[str, Driver],
        *,
        sinks: Sequence[OutcomeSink] = (),
        clock: Clock | None = None,
        rng: random.Random | None = None,
    ):
        self.config = config
        self.settings = config.collector
        self.data_dir = config.data_dir
        self.clock = clock or SystemClock()
        self.sinks = list(sinks)
        self.backoff = Backoff(
            self.settings.backoff_initial, self.settings.backoff_max, rng or random.Random()
        )
        self.state = CollectorState(self.settings.id, os.getpid(), utc(self.clock.time()))
        self.workers: dict[str, Worker] = {}
        groups: dict[float, IntervalGroup] = {}
        for dev in config.devices:
            ds = DeviceState(dev.id, dev.interval)
            self.state.devices[dev.id] = ds
            self.workers[dev.id] = Worker(dev, drivers[dev.id], ds, read_budget(dev))
            groups.setdefault(dev.interval, IntervalGroup(dev.interval, [])).device_ids.append(
                dev.id
            )
        self.groups = list(groups.values())
        shortest = min((g.interval for g in self.groups), default=1.0)
        self.commit_wait = min(self.settings.commit_wait, 0.8 * shortest)
        self.encoder = OutcomeEncoder()
        self.wal = WriteAheadLog(wal_folder(config))
        self.sealer = Sealer(LakeWriter(self.data_dir, self.settings.id))
        self.lock = CollectorLock(self.data_dir, self.settings.id)
        self._ready: list[PollOutcome] = []
        self._ready_event = asyncio.Event()
        self._commit_lock = asyncio.Lock()
        self._late: list[PollOutcome] = []
        self._unwritten: list[Unwritten] = []
        self._open_ticks: set[asyncio.Task[None]] = set()
        self._storage_failing_since: float | None = None
        self._storage_logged_at = 0.0
        self._stopping = asyncio.Event()
        self._last_tick: float | None = None

    # -- life cycle -----------------------------------------------------------------------

    def stop(self) -> None:
        """Ask the service to finish the current tick, seal and return (signal-handler safe)."""
        self._stopping.set()

    async def run(self) -> None:
        self.lock.acquire()
        try:
            await asyncio.to_thread(self._recover)
            for sink in self.sinks:
                await sink.start()
            workers = [
                asyncio.create_task(self._work(w), name=f"poll-{w.device.id}")
                for w in self.workers.values()
            ]
            committer = asyncio.create_task(self._commit_loop(), name="committer")
            log.info(
                "collector started",
                extra={
                    "fields": {
                        "id": self.settings.id,
                        "devices": len(self.workers),
                        "data_dir": self.data_dir,
                    }
                },
            )
            try:
                await self._tick_loop()
                await self._drain()
            finally:
                async with self._commit_lock:  # never cancel a commit midway
                    committer.cancel()
                for task in workers:
                    task.cancel()
                await asyncio.gather(committer, *workers, return_exceptions=True)
                await self._finish()
        finally:
            self.wal.close()
            self.lock.release()

    def _recover(self) -> None:
        """Replay the WAL into the lake before polling resumes; keep ticks from repeating."""
        previous = read_status(self.data_dir, self.settings.id) or {}
        if previous.get("sealed_watermark"):
            self.state.sealed_watermark = datetime.fromisoformat(previous["sealed_watermark"])
        last_ack: dict[str, float] = {}
        for dev_id, dev in (previous.get("devices") or {}).items():
            if dev_id in self.state.devices and dev.get("last_ack_ts"):
                last_ack[dev_id] = datetime.fromisoformat(dev["last_ack_ts"]).timestamp()
        replayed = 0
        for frame in self.wal.replay():
            self.sealer.add(frame.segment, frame.raw, frame.polls)
            replayed += frame.polls.num_rows
            ok = frame.polls.filter(frame.polls["ok"])
            for dev_id, ts in zip(ok["device_id"].to_pylist(), ok["ts"].to_pylist(), strict=True):
                if dev_id in self.state.devices:
                    last_ack[dev_id] = max(last_ack.get(dev_id, 0.0), ts.timestamp())
        for dev_id, ts in last_ack.items():
            self.state.devices[dev_id].last_ack_ts = utc(ts)
        for group in self.groups:
            known = [last_ack[d] for d in group.device_ids if d in last_ack]
            if known:
                group.last_k = math.floor(max(known) / group.interval + 1e-9)
        if replayed:
            log.info("replaying write-ahead log", extra={"fields": {"polls": replayed}})
        try:
            self.sealer.seal(None)
            self.wal.delete_before(self.wal.segment + 1)
        except OSError as exc:
            self._storage_failed(exc, "sealing the replayed write-ahead log")
        self.wal.rotate()
        empty = self.encoder.encode([])
        encode_frame(empty.raw, empty.polls)  # warm Arrow's IPC path before the first tick

    async def _drain(self) -> None:
        """After the last tick: let polls in flight finish (bounded by their budgets), commit."""
        busy = [w for w in self.workers.values() if w.busy]
        if busy:
            waits = [asyncio.ensure_future(w.idle.wait()) for w in busy]
            await asyncio.wait(waits, timeout=max(w.budget for w in busy))
            for waiter in waits:
                waiter.cancel()
        if self._open_ticks:
            await asyncio.gather(*self._open_ticks, return_exceptions=True)
        async with self._commit_lock:
            await self._commit_once()

    async def _finish(self) -> None:
        for sink in self.sinks:
            try:
                await sink.stop()
            except Exception:
                log.exception("sink failed to stop")
        await asyncio.to_thread(self._final_seal)
        for worker in self.workers.values():
            try:
                await asyncio.wait_for(worker.driver.close(), 2.0)
            except Exception as exc:
                log.debug("closing %s: %s", worker.device.id, exc)
        self._write_status()
        lost = sum(u.raw.num_rows + u.polls.num_rows for u in self._unwritten)
        if lost:
            log.error(
                "stopping with rows that never became durable",
                extra={"fields": {"rows": lost, "error": self.state.storage_error}},
            )
        log.info("collector stopped", extra={"fields": {"id": self.settings.id}})

    def _final_seal(self) -> None:
        try:
            if self._unwritten:
                self._append_unwritten()
            now = self.clock.time()
            self.sealer.seal(_floor_minute_us(now))
            self.sealer.seal(None)
            self.wal.close()
            self.wal.delete_before(self.wal.segment + 1)
            self.state.storage_error = None
        except OSError as exc:
            self._storage_failed(exc, "sealing on shutdown")

    # -- ticks and polls ---------------------------------------------------------------------

    async def _tick_loop(self) -> None:
        if not self.groups:
            await self._stopping.wait()
            return
        stop_wait = asyncio.ensure_future(self._stopping.wait())
        try:
            while not self._stopping.is_set():
                instant, _ = next_due(self.groups, self.clock.time())
                sleeper = asyncio.ensure_future(sleep_until(self.clock, instant))
                await asyncio.wait({sleeper, stop_wait}, return_when=asyncio.FIRST_COMPLETED)
                if self._stopping.is_set():
                    sleeper.cancel()
                    break
                self._dispatch(self.clock.time())
        finally:
            stop_wait.cancel()

    def _dispatch(self, now: float) -> None:
        ticks: dict[float, Tick] = {}
        for group in self.groups:
            taken = take(group, now)
            if taken is None:
                continue
            k, missed = taken
            ts = group.instant(k)
            tick = ticks.setdefault(ts, Tick(ts))
            for dev_id in group.device_ids:
                worker = self.workers[dev_id]
                worker.state.missed_ticks += missed
                if worker.busy:
                    worker.state.missed_ticks += 1
                elif worker.retry_at > ts:
                    worker.state.backoff_skips += 1
                elif worker.wake is not None and not worker.wake.done():
                    worker.busy = True
                    worker.idle.clear()
                    worker.current_ts = ts
                    tick.expected += 1
                    worker.wake.set_result((ts, tick))
        for tick in ticks.values():
            self._last_tick = max(self._last_tick or tick.ts, tick.ts)
            task = asyncio.create_task(self._close_tick(tick))
            self._open_ticks.add(task)
            task.add_done_callback(self._open_ticks.discard)

    async def _close_tick(self, tick: Tick) -> None:
        """Hand the tick to the committer once every device answered or `commit_wait` ran out."""
        if tick.expected:
            wait = tick.ts + self.commit_wait - self.clock.time()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(tick.done.wait(), max(wait, 0.0))
        tick.closed = True
        self._ready.extend(tick.outcomes)
        if self._late:
            self._ready.extend(self._late)
            self._late = []
        self._ready_event.set()

    async def _work(self, worker: Worker) -> None:
        loop = asyncio.get_running_loop()
        dev_id = worker.device.id
        while True:
            worker.wake = loop.create_future()
            ts, tick = await worker.wake
            started = self.clock.time()
            sample, error, kind = None, None, None
            try:
                async with asyncio.timeout(worker.budget):
                    sample = await worker.driver.read()
            except DeviceError as exc:
                error, kind = str(exc), exc.kind
            except TimeoutError:
                error, kind = f"{dev_id}: no answer within {worker.budget:g} s", "timeout"
                await self._close_quietly(worker)
            except Exception as exc:
                error, kind = f"{dev_id}: driver failed: {type(exc).__name__}: {exc}", "internal"
                if worker.state.state != "down":
                    log.exception(
                        "driver raised an unexpected error", extra={"fields": {"device": dev_id}}
                    )
                await self._close_quietly(worker)
            finished = self.clock.time()
            outcome = PollOutcome(
                dev_id,
                utc(ts),
                utc(started),
                utc(finished),
                int(getattr(worker.driver, "last_attempts", 1) or 1),
                sample,
                error,
                kind,
            )
            worker.busy = False
            worker.idle.set()
            worker.current_ts = None
            self._note(worker, outcome, ts, started, finished)
            if not tick.arrive(outcome):
                self._late.append(outcome)
                self._ready_event.set()

    async def _close_quietly(self, worker: Worker) -> None:
        try:
            await asyncio.wait_for(worker.driver.close(), 1.0)
        except Exception as exc:
            log.debug("closing %s after a failure: %s", worker.device.id, exc)

    def _note(
        self, worker: Worker, outcome: PollOutcome, ts: float, started: float, finished: float
    ) -> None:
        """Device state and backoff; logs only when the state changes."""
        st = worker.state
        st.last_lateness_ms = (started - ts) * 1000.0
        st.last_latency_ms = (finished - started) * 1000.0
        fields = {"device": st.device_id}
        if outcome.ok:
            st.polls_ok += 1
            if st.state == "down":
                log.info(
                    "device up again",
                    extra={
                        "fields": {
                            **fields,
                            "failures": st.consecutive_failures,
                            "down_since": st.down_since.isoformat() if st.down_since else None,
                        }
                    },
                )
            elif st.state == "starting":
                log.info("device up", extra={"fields": fields})
            st.state = "up"
            st.consecutive_failures = 0
            st.next_retry = None
            st.down_since = None
            worker.retry_at = 0.0
            return
        st.polls_failed += 1
        st.consecutive_failures += 1
        st.last_error, st.last_error_kind = outcome.error, outcome.error_kind
        delay = self.backoff.delay(st.consecutive_failures)
        worker.retry_at = finished + delay
        st.next_retry = utc(worker.retry_at) if delay else None
        if st.state != "down":
            log.warning(
                "device down",
                extra={"fields": {**fields, "kind": outcome.error_kind, "error": outcome.error}},
            )
            st.state = "down"
            st.down_since = utc(ts)

    # -- commit, seal, status --------------------------------------------------------------------

    async def _commit_loop(self) -> None:
        while True:
            await self._ready_event.wait()
            async with self._commit_lock:
                await self._commit_once()

    async def _commit_once(self) -> None:
        """Stage what is ready and persist it; callers hold `_commit_lock` (one writer)."""
        self._ready_event.clear()
        outcomes, self._ready = self._ready, []
        if self._late:
            outcomes.extend(self._late)
            self._late = []
        if outcomes:
            self._stage(outcomes)
        await asyncio.to_thread(self._persist)
        if not (self.sinks and outcomes):
            return
        by_instant: dict[datetime, list[PollOutcome]] = {}
        for o in outcomes:
            by_instant.setdefault(o.ts, []).append(o)
        for group in by_instant.values():  # one offer per scheduled instant (contracts §5)
            for sink in self.sinks:
                try:
                    sink.offer(group)
                except Exception:
                    log.exception("sink refused outcomes")

    def _stage(self, outcomes: list[PollOutcome]) -> None:
        encoded = self.encoder.encode(outcomes)
        for dev_id, n in encoded.invalid.items():
            self.state.devices[dev_id].invalid_values += n
        acks: dict[str, float] = {}
        for o in outcomes:
            if o.ok:
                ts = o.ts.timestamp()
                acks[o.device_id] = max(acks.get(o.device_id, ts), ts)
        self._unwritten.append(
            Unwritten(
                encode_frame(encoded.raw, encoded.polls),
                encoded.raw,
                encoded.polls,
                acks,
                min(o.ts.timestamp() for o in outcomes),
            )
        )

    def _persist(self) -> None:
        """WAL append (the acknowledgement), then seal completed minutes, then the status."""
        now = self.clock.time()
        try:
            if self._unwritten:
                self._append_unwritten()
            self._maybe_seal(now)
            if self._storage_failing_since is not None:
                log.warning(
                    "data directory writable again",
                    extra={"fields": {"failing_for_s": round(now - self._storage_failing_since)}},
                )
            self._storage_failing_since = None
            self.state.storage_error = None
        except OSError as exc:
            self._storage_failed(exc, "writing the write-ahead log or the lake")
            self._bound_unwritten()
        self._write_status()

    def _append_unwritten(self) -> None:
        segment = self.wal.append(b"".join(u.frame for u in self._unwritten))
        done, self._unwritten = self._unwritten, []
        self.state.commits += 1
        for u in done:
            self.sealer.add(
                segment, pa.Table.from_batches([u.raw]), pa.Table.from_batches([u.polls])
            )
            self.state.readings_acknowledged += u.raw.num_rows
            for dev_id, ts in u.acks.items():
                st = self.state.devices[dev_id]
                if st.last_ack_ts is None or st.last_ack_ts.timestamp() < ts:
                    st.last_ack_ts = utc(ts)

    def _maybe_seal(self, now: float) -> None:
        target = _floor_minute_us(now - self.settings.seal_delay)
        for worker in self.workers.values():
            if worker.busy and worker.current_ts is not None:
                target = min(target, _floor_minute_us(worker.current_ts))
        current = self.sealer.watermark_us
        if current is None and self.state.sealed_watermark is not None:
            current = int(self.state.sealed_watermark.timestamp() * 1_000_000)
            self.sealer.watermark_us = current
        if current is not None and target <= current:
            return
        self.wal.rotate()
        self.sealer.seal(target)
        oldest = self.sealer.oldest_segment()
        self.wal.delete_before(oldest if oldest is not None else self.wal.segment)
        if self.sealer.watermark_us is not None:
            self.state.sealed_watermark = utc(self.sealer.watermark_us / 1_000_000)

    def _storage_failed(self, exc: OSError, doing: str) -> None:
        now = self.clock.time()
        message = f"{doing}: {exc.strerror or exc} ({exc.filename or self.data_dir})"
        self.state.storage_error = message
        if self._storage_failing_since is None:
            self._storage_failing_since = now
        if now - self._storage_logged_at >= STORAGE_LOG_EVERY or self._storage_logged_at == 0.0:
            self._storage_logged_at = now
            log.error(
                "DATA DIRECTORY REFUSES WRITES; keeping readings in memory and retrying every tick",
                extra={
                    "fields": {
                        "error": message,
                        "pending_rows": sum(u.raw.num_rows for u in self._unwritten),
                    }
                },
            )

    def _bound_unwritten(self) -> None:
        limit = self.settings.max_pending_mb * 1024 * 1024
        total = sum(len(u.frame) for u in self._unwritten)
        while self._unwritten and total > limit:
            dropped = self._unwritten.pop(0)
            total -= len(dropped.frame)
            self.state.dropped_rows += dropped.raw.num_rows
            log.error(
                "memory bound reached: dropping the oldest readings that never became durable",
                extra={
                    "fields": {
                        "rows": dropped.raw.num_rows,
                        "from": utc(dropped.first_ts).isoformat(),
                    }
                },
            )

    def _write_status(self) -> None:
        st = self.state
        st.updated_at = utc(self.clock.time())
        st.pending_rows = sum(u.raw.num_rows + u.polls.num_rows for u in self._unwritten)
        st.pending_bytes = sum(len(u.frame) for u in self._unwritten)
        st.wal_backlog_rows = self.sealer.rows
        try:
            st.wal_backlog_bytes = self.wal.disk_bytes()
            write_status(self.data_dir, status_document(st))
        except OSError as exc:
            log.debug("status file not written: %s", exc)


def _floor_minute_us(ts: float) -> int:
    return (int(ts * 1_000_000) // MINUTE_US) * MINUTE_US


SinkFactory = Callable[[Config, CollectorState], Sequence[OutcomeSink]]
"""Builds live outputs around the collector's state (the live package provides one)."""


def run_collect(config: Config, sink_factory: SinkFactory | None = None) -> int:
    """`energy-pipeline collect`: poll until SIGTERM/SIGINT, then seal and return 0."""
    from energy_pipeline.collector.lock import CollectorRunning
    from energy_pipeline.drivers import build_drivers

    if not config.devices:
        log.error("no devices in %s; nothing to collect", config.path)
        return 1
    service = CollectorService(config, build_drivers(config))
    if sink_factory is not None:
        service.sinks.extend(sink_factory(config, service.state))

    async def main() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, service.stop)
        await service.run()

    try:
        asyncio.run(main())
    except CollectorRunning as exc:
        log.error("%s", exc)
        return 1
    return 1 if service.state.dropped_rows or service._unwritten else 0
