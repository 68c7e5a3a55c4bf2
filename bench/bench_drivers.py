"""Driver benchmarks: one device poll against its simulator and codec throughput, per family,
each beside the naive way measured in the same run.

    .venv/bin/python bench/bench_drivers.py [--polls N] [--family NAME ...]

Simulators run in a child process (as a real device would be another machine), on loopback.
Figures are medians; the machine is shared, so note the load when quoting them.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing
import os
import socket
import statistics
import struct
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from energy_pipeline.config import Config

Report = list[tuple[str, str]]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _median_seconds(fn: Callable[[], object], repeats: int) -> float:
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def _serve_simulators(config_data: dict, ready: multiprocessing.synchronize.Event) -> None:
    from energy_pipeline.simulators import start_all

    async def serve() -> None:
        config = Config.model_validate(config_data)
        async with contextlib.AsyncExitStack() as stack:
            await start_all(config, None, stack)
            ready.set()
            await asyncio.Event().wait()

    asyncio.run(serve())


@contextlib.contextmanager
def simulators(config_data: dict):
    """The config's simulators in a child process for the duration of the block."""
    ctx = multiprocessing.get_context("spawn")
    ready = ctx.Event()
    child = ctx.Process(target=_serve_simulators, args=(config_data, ready), daemon=True)
    child.start()
    try:
        if not ready.wait(30):
            raise RuntimeError("simulator did not start")
        yield
    finally:
        child.terminate()
        child.join(5)


def bench_luxtronik(polls: int) -> Report:
    from luxtronik import Luxtronik
    from luxtronik.calculations import Calculations
    from luxtronik.parameters import Parameters
    from luxtronik.visibilities import Visibilities

    from energy_pipeline.drivers.luxtronik import protocol
    from energy_pipeline.drivers.luxtronik.client import LuxtronikDriver
    from energy_pipeline.drivers.luxtronik.decode import decode
    from energy_pipeline.simulators.luxtronik import device_model

    port = _free_port()
    config_data = {
        "site": {"name": "bench", "timezone": "Europe/Berlin"},
        "devices": [
            {"id": "lux1", "driver": "luxtronik", "connection": {"host": "127.0.0.1", "port": port}}
        ],
    }
    report: Report = []
    with simulators(config_data):
        driver = LuxtronikDriver("lux1", "127.0.0.1", port, timeout=5.0, retries=0)

        async def timed_polls() -> tuple[list[float], int]:
            durations = []
            sample = await driver.read()
            for _ in range(polls):
                started = time.perf_counter()
                await driver.read()
                durations.append(time.perf_counter() - started)
            return durations, len(sample.names)

        ours, count = asyncio.run(timed_polls())
        naive = []
        for _ in range(max(5, polls // 4)):
            started = time.perf_counter()
            Luxtronik("127.0.0.1", port)
            naive.append(time.perf_counter() - started)
    ours_ms = statistics.median(ours) * 1000
    naive_ms = statistics.median(naive) * 1000
    report.append(("luxtronik poll (values)", f"{count}"))
    report.append(("luxtronik poll, this driver (median ms)", f"{ours_ms:.2f}"))
    report.append(("luxtronik poll, python-luxtronik 0.3.14 read() (median ms)", f"{naive_ms:.2f}"))
    report.append(("luxtronik poll speed-up", f"{naive_ms / ours_ms:.1f}x"))

    config = Config.model_validate(config_data)
    vectors = device_model(config.devices[0], config).raw_at(datetime.now(UTC))
    frames = [
        protocol.encode_response(cmd, vec)
        for cmd, vec in zip(protocol.READ_COMMANDS, vectors, strict=True)
    ]

    def ours_decode() -> None:
        parsed = [
            protocol.parse_response(cmd, frame).items
            for cmd, frame in zip(protocol.READ_COMMANDS, frames, strict=True)
        ]
        decode(*parsed)

    library = (Parameters(), Calculations(), Visibilities())

    def naive_decode() -> None:
        """Per value: unpack each item with struct, convert it with its datatype object."""
        for cmd, frame, table in zip(protocol.READ_COMMANDS, frames, library, strict=True):
            size = protocol.header_size(cmd)
            count = struct.unpack_from(">i", frame, size - 4)[0]
            fmt, step = (">b", 1) if cmd == protocol.READ_VISIBILITIES else (">i", 4)
            items = [struct.unpack_from(fmt, frame, size + i * step)[0] for i in range(count)]
            table.parse(items)

    batch = 200
    ours_s = _median_seconds(lambda: [ours_decode() for _ in range(batch)], 7) / batch
    naive_s = _median_seconds(lambda: [naive_decode() for _ in range(batch // 10)], 7) / (
        batch // 10
    )
    report.append(("luxtronik codec, this driver (frames/s)", f"{3 / ours_s:,.0f}"))
    report.append(("luxtronik codec, per-value Python (frames/s)", f"{3 / naive_s:,.0f}"))
    report.append(("luxtronik decode of one poll, this driver (µs)", f"{ours_s * 1e6:.0f}"))
    report.append(("luxtronik decode of one poll, per-value Python (µs)", f"{naive_s * 1e6:.0f}"))
    report.append(("luxtronik codec speed-up", f"{naive_s / ours_s:.1f}x"))
    return report


FAMILIES: dict[str, Callable[[int], Report]] = {"luxtronik": bench_luxtronik}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--polls", type=int, default=200, help="polls per device (median)")
    parser.add_argument("--family", action="append", choices=sorted(FAMILIES))
    args = parser.parse_args()
    load = os.getloadavg()[0]
    print(f"# load average {load:.2f} on {os.cpu_count()} cores")
    for name in args.family or sorted(FAMILIES):
        for label, value in FAMILIES[name](args.polls):
            print(f"{label:<62} {value:>12}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
