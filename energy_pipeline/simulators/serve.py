"""`energy-pipeline simulate`: serve every device of a config until SIGINT or SIGTERM.

Endpoints go to stdout as soon as every server accepts connections (one line per device, or
one JSON object with `--json`), so a script or test can wait for that line and start polling.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
import sys

from energy_pipeline.config import Config
from energy_pipeline.simulators import SimulatorError, start_all

log = logging.getLogger(__name__)


async def serve(config: Config, as_json: bool = False) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        async with contextlib.AsyncExitStack() as stack:
            try:
                lines = await start_all(config, None, stack)
            except SimulatorError as exc:
                print(f"error: {exc}", file=sys.stderr)
                return 1
            if as_json:
                print(json.dumps({"config": str(config.path), "endpoints": lines}), flush=True)
            else:
                print(f"simulating {len(lines)} devices of {config.path} (Ctrl-C to stop)")
                print("\n".join(lines), flush=True)
            await stop.wait()
            log.info("stopping simulators")
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
    return 0


def run_simulate(config: Config, as_json: bool = False) -> int:
    return asyncio.run(serve(config, as_json))
