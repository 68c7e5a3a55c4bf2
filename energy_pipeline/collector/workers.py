"""`collect` over several processes: the parent that runs one worker per shard of the devices.

One event loop on one core keeps a thousand devices a second on time, not two thousand: the
start of the last read of a tick waits for every request sent before it. So from
`collector.workers` > 1 the devices are split (`shards`) and each worker is a whole collector
of its own under the id `<id>-w<N>` — its own WAL, lock, status file and lake files — which is
what makes a worker's crash cost nothing acknowledged: its restart replays its WAL like any
collector's. The parent polls nothing. It restarts a worker that died or stopped writing its
status (capped backoff, logged, counted), serves the live outputs from the offers the workers
send up their links (`link`), and writes its own status file listing the workers. A parent
that dies leaves its workers reading end of file on their lifeline: they stop and seal.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from energy_pipeline.collector.adopt import adopt, adopt_orphans
from energy_pipeline.collector.landing import utc
from energy_pipeline.collector.link import LinkSink, Offer, read_link
from energy_pipeline.collector.lock import CollectorLock
from energy_pipeline.collector.process import run_service, serve
from energy_pipeline.collector.routes import RoutesFactory
from energy_pipeline.collector.scheduler import Clock, SystemClock
from energy_pipeline.collector.service import SinkFactory
from energy_pipeline.collector.shards import shard_config, shard_id, split
from energy_pipeline.collector.state import CollectorState, DeviceState
from energy_pipeline.collector.status import status_document
from energy_pipeline.config import Config
from energy_pipeline.lake import status as lake_status
from energy_pipeline.lake.disk import disk_space
from energy_pipeline.lake.layout import status_path
from energy_pipeline.lake.status import worker_status
from energy_pipeline.ops.notify import READY, WATCHDOG, Notifier, message
from energy_pipeline.ops.notify import watchdog_interval as notify_interval
from energy_pipeline.sinks import OutcomeSink

log = logging.getLogger("energy_pipeline.collector")

RESTART_INITIAL = 1.0
RESTART_MAX = 30.0
"""Seconds before a dead worker is started again, doubling per death in a row up to the cap."""
STEADY_AFTER = 60.0
"""A worker that ran this long before dying is restarted after RESTART_INITIAL again."""
STATUS_EVERY = 1.0
WEDGED_MIN = 30.0
"""A running worker whose status file is older than max(this, 3 x its shortest interval) is
wedged: killed and restarted, as systemd's watchdog would do with a single collector."""
FIRST_STATUS_WITHIN = 300.0
"""Grace for a worker's first status file: replaying a long WAL comes first."""
STOP_MARGIN = 15.0
"""Seconds a stopping worker gets beyond its longest read budget to commit and seal."""
WORKER_ENV_DROPPED = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")
"""Only the parent talks to systemd."""


@dataclass(slots=True)
class WorkerProcess:
    index: int
    shard_id: str
    device_ids: list[str]
    interval: float
    process: asyncio.subprocess.Process | None = None
    started_at: datetime | None = None
    restarts: int = 0
    deaths_in_row: int = 0
    last_exit: str | None = None
    lifeline: int | None = None
    link_closed: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.returncode is None


def longest_budget(config: Config) -> float:
    """The longest read budget of the site's devices (as `Driver.read_budget` reckons it)."""
    return max(d.connection.timeout * (d.connection.retries + 1) + 1.0 for d in config.devices)


def exit_text(code: int) -> str:
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


class Parent:
    def __init__(
        self,
        config: Config,
        count: int,
        sinks: Sequence[OutcomeSink] = (),
        *,
        verbose: int = 0,
        clock: Clock | None = None,
    ):
        self.config = config
        self.count = count
        self.verbose = verbose
        self.clock = clock or SystemClock()
        cid = config.collector.id
        self.state = CollectorState(cid, os.getpid(), utc(self.clock.time()))
        for dev in config.devices:
            self.state.devices[dev.id] = DeviceState(dev.id, dev.interval)
        self.workers = [
            WorkerProcess(i, shard_id(cid, i), [d.id for d in devs], min(d.interval for d in devs))
            for i, devs in enumerate(split(config.devices, count))
            if devs
        ]
        self.sinks = list(sinks)
        self.lock = CollectorLock(config.data_dir, cid)
        self.stop_grace = STOP_MARGIN + longest_budget(config)
        self._stopping = asyncio.Event()
        self._backlog: dict[str, tuple[int, int]] = {}

    def stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        self.lock.acquire()
        try:
            await asyncio.to_thread(self._adopt)
            for sink in self.sinks:
                await sink.start()
            keepers = [asyncio.create_task(self._keep(w), name=w.shard_id) for w in self.workers]
            status = asyncio.create_task(self._status_loop(), name="parent-status")
            log.info(
                "collector started",
                extra={
                    "fields": {
                        "id": self.state.collector_id,
                        "devices": len(self.state.devices),
                        "workers": len(self.workers),
                        "data_dir": self.config.data_dir,
                    }
                },
            )
            try:
                await self._stopping.wait()
                await asyncio.gather(*keepers, return_exceptions=True)
            finally:
                status.cancel()
                await asyncio.gather(status, return_exceptions=True)
                for sink in self.sinks:
                    try:
                        await sink.stop()
                    except Exception:
                        log.exception("sink failed to stop")
                self.write_status()
                log.info("collector stopped", extra={"fields": {"id": self.state.collector_id}})
        finally:
            self.lock.release()

    def _adopt(self) -> None:
        adopt(self.config, self.config.collector.id, locked=True)
        adopt_orphans(
            self.config, keep={self.config.collector.id, *(w.shard_id for w in self.workers)}
        )

    # -- one worker ---------------------------------------------------------------------------

    async def _keep(self, worker: WorkerProcess) -> None:
        """Run `worker` until the parent stops, restarting it whenever it dies."""
        while not self._stopping.is_set():
            await self._spawn(worker)
            await self._watch(worker)
            if self._stopping.is_set():
                break
            code = worker.process.returncode if worker.process else None
            worker.last_exit = exit_text(code) if code is not None else "lost"
            ran = self.clock.time() - (worker.started_at.timestamp() if worker.started_at else 0)
            worker.deaths_in_row = 1 if ran >= STEADY_AFTER else worker.deaths_in_row + 1
            worker.restarts += 1
            delay = min(RESTART_INITIAL * 2 ** (worker.deaths_in_row - 1), RESTART_MAX)
            log.error(
                "collector worker died; restarting",
                extra={
                    "fields": {
                        "worker": worker.shard_id,
                        "exit": worker.last_exit,
                        "restarts": worker.restarts,
                        "retry_in_s": delay,
                    }
                },
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), delay)
        await self._stop_worker(worker)

    def _command(self, worker: WorkerProcess, link_fd: int) -> list[str]:
        argv = [sys.executable, "-m", "energy_pipeline", "collect"]
        argv += ["--config", str(self.config.path)]
        argv += ["--worker", f"{worker.index}/{self.count}", "--link-fd", str(link_fd)]
        if self.verbose:
            argv.append("-" + "v" * self.verbose)
        return argv

    async def _spawn(self, worker: WorkerProcess) -> None:
        """Start the worker with two pipes: its link up to here, and its lifeline on stdin
        (the parent holds the write end, so its death in any way reads as end of file)."""
        read_fd, write_fd = os.pipe()
        life_read, life_write = os.pipe()
        env = {k: v for k, v in os.environ.items() if k not in WORKER_ENV_DROPPED}
        try:
            worker.process = await asyncio.create_subprocess_exec(
                *self._command(worker, write_fd), stdin=life_read, pass_fds=(write_fd,), env=env
            )
        except BaseException:
            os.close(read_fd)
            os.close(life_write)
            raise
        finally:
            os.close(write_fd)
            os.close(life_read)
        if worker.lifeline is not None:
            os.close(worker.lifeline)
        worker.lifeline = life_write
        worker.started_at = utc(self.clock.time())
        worker.link_closed = (await read_link(read_fd, worker.shard_id, self._deliver))[1]

    async def _watch(self, worker: WorkerProcess) -> None:
        """Until the worker exits (or is killed here for being wedged) or the parent stops."""
        process = worker.process
        assert process is not None
        exited = asyncio.ensure_future(process.wait())
        stopping = asyncio.ensure_future(self._stopping.wait())
        try:
            while not exited.done() and not stopping.done():
                await asyncio.wait({exited, stopping}, timeout=5.0)
                reason = self._wedged(worker)
                if reason and not exited.done() and not stopping.done():
                    log.error(
                        "collector worker wedged; killing it",
                        extra={"fields": {"worker": worker.shard_id, "reason": reason}},
                    )
                    process.kill()
                    await exited
        finally:
            stopping.cancel()
            if not exited.done():
                exited.cancel()

    def _wedged(self, worker: WorkerProcess) -> str | None:
        now = self.clock.time()
        limit = max(WEDGED_MIN, 3 * worker.interval)
        try:
            age = now - status_path(self.config.data_dir, worker.shard_id).stat().st_mtime
        except FileNotFoundError:
            age = None
        started = worker.started_at.timestamp() if worker.started_at else now
        if age is None or age > now - started:  # nothing written since this start
            since = now - started
            if since > FIRST_STATUS_WITHIN:
                return f"no status file {since:.0f} s after its start"
            return None
        return f"status file not updated for {age:.0f} s" if age > limit else None

    async def _stop_worker(self, worker: WorkerProcess) -> None:
        process = worker.process
        if process is None or process.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            process.terminate()
        try:
            await asyncio.wait_for(process.wait(), self.stop_grace)
        except TimeoutError:
            log.error(
                "collector worker did not stop in time; killing it (its WAL replays on restart)",
                extra={"fields": {"worker": worker.shard_id, "waited_s": self.stop_grace}},
            )
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(worker.link_closed.wait(), 2.0)
        if worker.lifeline is not None:
            os.close(worker.lifeline)
            worker.lifeline = None

    # -- what the workers send up ---------------------------------------------------------------

    def _deliver(self, offer: Offer) -> None:
        ws = offer.state
        self.state.devices.update(ws.devices)
        self.state.vpn.update(ws.vpn)
        self._backlog[ws.collector_id] = (ws.wal_backlog_bytes, ws.wal_backlog_rows)
        self.state.wal_backlog_bytes = sum(b for b, _ in self._backlog.values())
        self.state.wal_backlog_rows = sum(r for _, r in self._backlog.values())
        self.state.disk_free_bytes, self.state.disk_total_bytes = (
            ws.disk_free_bytes,
            ws.disk_total_bytes,
        )
        if ws.storage_error:
            self.state.storage_error = ws.storage_error
        for sink in self.sinks:
            try:
                sink.offer(offer.outcomes)
            except Exception:
                log.exception("sink refused outcomes")

    # -- the parent's own status ------------------------------------------------------------------

    async def _status_loop(self) -> None:
        while True:
            await asyncio.to_thread(self.write_status)
            await asyncio.sleep(STATUS_EVERY)

    def write_status(self) -> None:
        st = self.state
        st.updated_at = utc(self.clock.time())
        try:
            space = disk_space(self.config.data_dir)
            st.disk_free_bytes, st.disk_total_bytes = space.free_bytes, space.total_bytes
            workers = {
                w.shard_id: worker_status(
                    w.process.pid if w.process else None,
                    w.running,
                    len(w.device_ids),
                    started_at=w.started_at,
                    restarts=w.restarts,
                    last_exit=w.last_exit,
                )
                for w in self.workers
            }
            doc = status_document(st, workers)
            lake_status.write_status(self.config.data_dir, doc)
        except OSError as exc:
            log.debug("status file not written: %s", exc)

    def summary(self) -> str:
        running = sum(1 for w in self.workers if w.running)
        up = sum(1 for d in self.state.devices.values() if d.state == "up")
        return f"{running}/{len(self.workers)} workers running, {up}/{len(self.state.devices)} up"


def run_parent(
    config: Config, count: int, sink_factory: SinkFactory | None = None, verbose: int = 0
) -> int:
    """`collect` with `count` workers; returns 0 after a clean stop."""
    parent = Parent(config, count, verbose=verbose)
    if sink_factory is not None:
        parent.sinks.extend(sink_factory(config, parent.state))

    async def pings(notifier: Notifier) -> None:
        interval = notify_interval(os.environ, os.getpid())
        notifier.send(message(READY, status=parent.summary()))
        while True:
            await asyncio.sleep(interval or STATUS_EVERY * 10)
            notifier.send(message(WATCHDOG, status=parent.summary()))

    return 0 if serve(parent.run, parent.stop, pings) else 1


def run_worker(
    config: Config,
    index: int,
    count: int,
    link_fd: int,
    routes_factory: RoutesFactory | None = None,
) -> int:
    """One worker (started by `run_parent`): shard `index` of `count`, offering its outcomes up
    `link_fd`, its lifeline on stdin."""
    shard = shard_config(config, index, count)
    if not shard.devices:
        log.error("worker %d of %d has no devices in %s", index, count, config.path)
        return 1
    return run_service(
        shard,
        lambda cfg, state: [LinkSink(link_fd, state)],
        routes_factory,
        lifeline=sys.stdin.fileno(),
        lock_wait=STOP_MARGIN + longest_budget(config),
    )
