"""One collector process: the service with its drivers, live outputs and routes, its signals,
its systemd notifications and, for a worker, its lifeline to the parent."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import Awaitable, Callable

from energy_pipeline.collector.heartbeat import watch
from energy_pipeline.collector.routes import RoutesFactory
from energy_pipeline.collector.service import CollectorService, SinkFactory
from energy_pipeline.config import Config
from energy_pipeline.ops.notify import STOPPING, Notifier, message, watchdog_interval

log = logging.getLogger("energy_pipeline.collector")


def run_service(
    config: Config,
    sink_factory: SinkFactory | None = None,
    routes_factory: RoutesFactory | None = None,
    *,
    lifeline: int | None = None,
    lock_wait: float = 0.0,
) -> int:
    """Poll `config.devices` as one collector. A worker passes `lifeline`, the read end of a
    pipe its parent holds: when the parent is gone (even after kill -9) it reads end of file,
    and the worker stops as on SIGTERM, sealing what it acknowledged."""
    from energy_pipeline.drivers.registry import build_drivers
    from energy_pipeline.lake.device_state import StateFiles

    service = CollectorService(config, build_drivers(config, state=StateFiles(config.data_dir)))
    service.lock_wait = lock_wait
    if routes_factory is not None:
        service.routes = routes_factory(config, service.state)
    if sink_factory is not None:
        service.sinks.extend(sink_factory(config, service.state))

    def keepalive(notifier: Notifier) -> Awaitable[None]:
        interval = watchdog_interval(os.environ, os.getpid())
        return watch(service.heartbeat, service.state, notifier, interval, service.clock)

    if not serve(service.run, service.stop, keepalive, lifeline=lifeline):
        return 1
    return 1 if service.state.dropped_rows or service.landing.unwritten_rows else 0


def serve(
    body: Callable[[], Awaitable[None]],
    halt: Callable[[], None],
    keepalive: Callable[[Notifier], Awaitable[None]],
    *,
    lifeline: int | None = None,
) -> bool:
    """Run `body` on a fresh event loop until it returns. SIGTERM, SIGINT and (for a worker)
    end of file on `lifeline` tell systemd STOPPING, then `halt`; under systemd (NOTIFY_SOCKET)
    `keepalive` runs beside `body` for READY and watchdog pings. A collector and its parent
    share this so both stop and report the same way. False when another collector holds the
    lock."""
    from energy_pipeline.collector.lock import CollectorRunning

    notifier = Notifier.from_environ()

    def stop() -> None:
        if notifier is not None:
            notifier.send(message(STOPPING))
        halt()

    async def main() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop)
        if lifeline is not None:
            await watch_lifeline(lifeline, stop)
        beside = asyncio.create_task(keepalive(notifier)) if notifier is not None else None
        try:
            await body()
        finally:
            if beside is not None:
                beside.cancel()
                await asyncio.gather(beside, return_exceptions=True)
            if notifier is not None:
                notifier.close()

    try:
        asyncio.run(main())
    except CollectorRunning as exc:
        log.error("%s", exc)
        return False
    return True


async def watch_lifeline(fd: int, on_eof: Callable[[], None]) -> None:
    """Call `on_eof` once the pipe `fd` reads end of file (its writer closed it or died)."""

    class _Lifeline(asyncio.Protocol):
        def data_received(self, data: bytes) -> None:
            pass

        def connection_lost(self, exc: Exception | None) -> None:
            on_eof()

    loop = asyncio.get_running_loop()
    await loop.connect_read_pipe(_Lifeline, os.fdopen(fd, "rb", buffering=0))
