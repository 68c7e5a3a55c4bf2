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
import gc
import logging
import math
import os
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from energy_pipeline.collector.backoff import Backoff
from energy_pipeline.collector.heartbeat import Heartbeat
from energy_pipeline.collector.landing import Landing, utc
from energy_pipeline.collector.lock import CollectorLock
from energy_pipeline.collector.routes import Routes
from energy_pipeline.collector.scheduler import (
    Clock,
    IntervalGroup,
    SystemClock,
    next_due,
    sleep_until,
    take,
)
from energy_pipeline.collector.state import CollectorState, DeviceState
from energy_pipeline.config import Config, Device
from energy_pipeline.deadlines import budget
from energy_pipeline.drivers.base import DeviceError, Driver
from energy_pipeline.readings import PollOutcome
from energy_pipeline.sinks import OutcomeSink

log = logging.getLogger("energy_pipeline.collector")

VPN_DOWN = "vpn_down"


class _RouteDown(Exception):
    """The device's tunnel is down: the poll is recorded as failed without asking the device."""


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


class CollectorService:
    def __init__(
        self,
        config: Config,
        drivers: dict[str, Driver],
        *,
        sinks: Sequence[OutcomeSink] = (),
        clock: Clock | None = None,
        rng: random.Random | None = None,
        routes: Routes | None = None,
    ):
        self.config = config
        self.settings = config.collector
        self.data_dir = config.data_dir
        self.clock = clock or SystemClock()
        self.sinks = list(sinks)
        self.routes = routes
        self.backoff = Backoff(
            self.settings.backoff_initial, self.settings.backoff_max, rng or random.Random()
        )
        self.state = CollectorState(self.settings.id, os.getpid(), utc(self.clock.time()))
        self.workers: dict[str, Worker] = {}
        groups: dict[float, IntervalGroup] = {}
        for dev in config.devices:
            ds = DeviceState(dev.id, dev.interval)
            self.state.devices[dev.id] = ds
            driver = drivers[dev.id]
            self.workers[dev.id] = Worker(dev, driver, ds, driver.read_budget)
            groups.setdefault(dev.interval, IntervalGroup(dev.interval, [])).device_ids.append(
                dev.id
            )
        self.groups = list(groups.values())
        shortest = min((g.interval for g in self.groups), default=1.0)
        self.commit_wait = min(self.settings.commit_wait, 0.8 * shortest)
        self.landing = Landing(config, self.state, self.clock)
        self.lock = CollectorLock(self.data_dir, self.settings.id)
        self.lock_wait = 0.0
        self._ready: list[PollOutcome] = []
        self._ready_event = asyncio.Event()
        self._commit_lock = asyncio.Lock()
        self._late: list[PollOutcome] = []
        self._open_ticks: set[asyncio.Task[None]] = set()
        self._stopping = asyncio.Event()
        self.heartbeat = Heartbeat()

    # -- life cycle -----------------------------------------------------------------------

    def stop(self) -> None:
        """Ask the service to finish the current tick, seal and return (signal-handler safe)."""
        self.heartbeat.stopping = True
        self._stopping.set()

    async def run(self) -> None:
        self.lock.acquire(self.lock_wait)
        try:
            await asyncio.to_thread(self._recover)
            gc.freeze()  # what start-up loaded lives as long as we do: no collection rescans it
            if self.routes is not None:
                await self.routes.start()
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
            if self.routes is not None:
                await self.routes.stop()
            self.landing.close()
            self.lock.release()

    def _recover(self) -> None:
        """Replay the WAL before polling resumes; a tick already acknowledged never repeats."""
        last_ack = self.landing.recover()
        for group in self.groups:
            known = [last_ack[d] for d in group.device_ids if d in last_ack]
            if known:
                group.last_k = math.floor(max(known) / group.interval + 1e-9)

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
        for worker in self.workers.values():
            try:
                await asyncio.wait_for(worker.driver.close(), 2.0)
            except Exception as exc:
                log.debug("closing %s: %s", worker.device.id, exc)
        await asyncio.to_thread(self.landing.final_seal)
        log.info("collector stopped", extra={"fields": {"id": self.settings.id}})

    # -- ticks and polls ---------------------------------------------------------------------

    async def _tick_loop(self) -> None:
        if not self.groups:
            await self._stopping.wait()
            return
        stop_wait = asyncio.ensure_future(self._stopping.wait())
        try:
            while not self._stopping.is_set():
                instant, _ = next_due(self.groups, self.clock.time())
                self.heartbeat.due(instant)
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
        self.heartbeat.hand(self.clock.time())
        self._ready_event.set()

    async def _work(self, worker: Worker) -> None:
        loop = asyncio.get_running_loop()
        dev_id = worker.device.id
        while True:
            worker.wake = loop.create_future()
            ts, tick = await worker.wake
            started = self.clock.time()
            sample, error, kind = None, None, None
            blocked = self.routes.blocked(dev_id) if self.routes is not None else None
            try:
                if blocked is not None:
                    raise _RouteDown(blocked)
                async with budget(worker.budget):
                    sample = await worker.driver.read()
            except _RouteDown as exc:
                error, kind = str(exc), VPN_DOWN
                if worker.state.state != VPN_DOWN:  # its connection went with the tunnel
                    await self._close_quietly(worker)
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
                max(worker.driver.last_attempts, 1),
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
                self.heartbeat.hand(self.clock.time())
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
            if st.state in ("down", VPN_DOWN):
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
        st.last_error, st.last_error_kind = outcome.error, outcome.error_kind
        if outcome.error_kind == VPN_DOWN:  # not the device's failure: no backoff, no count
            worker.retry_at, st.next_retry = 0.0, None
            if st.state != VPN_DOWN:
                log.warning("device unreachable: vpn down", extra={"fields": fields})
                st.state, st.down_since = VPN_DOWN, utc(ts)
            return
        st.consecutive_failures += 1
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
        mark = self.heartbeat.handed
        outcomes, self._ready = self._ready, []
        if self._late:
            outcomes.extend(self._late)
            self._late = []
        if outcomes:
            self.landing.stage(outcomes)
        in_flight = [w.current_ts for w in self.workers.values() if w.current_ts is not None]
        await asyncio.to_thread(self.landing.persist, min(in_flight, default=None))
        self.heartbeat.took(mark, self.clock.time())
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


SinkFactory = Callable[[Config, CollectorState], Sequence[OutcomeSink]]
"""Builds live outputs around the collector's state (the live package provides one)."""
