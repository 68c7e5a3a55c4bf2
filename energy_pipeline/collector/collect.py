"""`energy-pipeline collect`: one process, or a parent with workers (`collector.workers`)."""

from __future__ import annotations

import logging

from energy_pipeline.collector.adopt import adopt_orphans
from energy_pipeline.collector.process import run_service
from energy_pipeline.collector.routes import RoutesFactory
from energy_pipeline.collector.service import SinkFactory
from energy_pipeline.collector.shards import worker_count
from energy_pipeline.collector.workers import run_parent
from energy_pipeline.config import Config

log = logging.getLogger("energy_pipeline.collector")


def run_collect(
    config: Config,
    sink_factory: SinkFactory | None = None,
    routes_factory: RoutesFactory | None = None,
    verbose: int = 0,
) -> int:
    """`energy-pipeline collect`: poll until SIGTERM/SIGINT, then seal and return 0.

    With more than one worker (`collector.workers`) this process supervises the workers and
    serves the live outputs; otherwise it polls itself. Under systemd (`NOTIFY_SOCKET` set) it
    reports READY, watchdog pings and STOPPING.
    """
    if not config.devices:
        log.error("no devices in %s; nothing to collect", config.path)
        return 1
    count = worker_count(config)
    if count > 1:
        return run_parent(config, count, sink_factory, verbose)
    adopt_orphans(config, keep={config.collector.id})
    return run_service(config, sink_factory, routes_factory)
