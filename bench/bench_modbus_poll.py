"""Janitza poll: planned block reads vs one request per point, in the same run.

The project's simulator (`energy-pipeline simulate`, a pymodbus TCP server serving the
janitza_umg509pro profile with moving values) runs as a child process, so it does not share
the client's GIL; the client side is the project's driver. Prints, per way:
requests per poll, polls per second (median of several rounds), and the ratio; plus the
decode cost of one poll's words (the driver's vectorised decoder vs pymodbus'
convert_from_registers per point).

    .venv/bin/python bench/bench_modbus_poll.py [--seconds 0.5] [--rounds 10]

Rounds alternate between the two ways, so load from other processes hits both alike; the
per-round ratio is the steadiest figure on a busy machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np
from pymodbus.client import AsyncModbusTcpClient

from energy_pipeline.config import load_config
from energy_pipeline.drivers.modbus.codec import BlockDecoder, decode_point, encode_point
from energy_pipeline.drivers.modbus.driver import ModbusDriver
from energy_pipeline.drivers.modbus.planner import Block
from energy_pipeline.drivers.registry import build_drivers
from energy_pipeline.lake.device_state import StateFiles

REPO = Path(__file__).resolve().parent.parent
PROFILE = "janitza_umg509pro"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def polls_per_second(poll, seconds: float) -> float:  # type: ignore[no-untyped-def]
    await poll()  # connect and warm up outside the timing
    n, started = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - started) < seconds:
        await poll()
        n += 1
    return n / elapsed


async def measure(driver: ModbusDriver, seconds: float, rounds: int) -> dict[str, list[float]]:
    points = [p for p in driver.profile.points if p.data_type != "string"]
    singles = [Block(p.register_type, p.address, p.width) for p in points]
    bus, dev, unit, timeout = driver.bus, driver.device_id, driver.unit_id, driver.timeout

    async def planned() -> None:
        await driver.read()

    async def naive() -> None:
        """What per-point pollers do: one request per register, then decode it."""
        await bus.connect(dev, timeout)
        values = np.empty(len(points))
        for i, (p, block) in enumerate(zip(points, singles, strict=True)):
            values[i] = decode_point(await bus.read(dev, unit, block, timeout), p)

    out: dict[str, list[float]] = {"planned": [], "naive": []}
    for _ in range(rounds):
        out["planned"].append(await polls_per_second(planned, seconds))
        out["naive"].append(await polls_per_second(naive, seconds))
    await driver.close()
    return out


def decode_costs(driver: ModbusDriver, repeat: int = 2000) -> tuple[float, float]:
    """Microseconds to decode one poll's 122 words: vectorised decoder vs pymodbus per point."""
    points = driver.profile.points
    words = np.array(
        [w for i, p in enumerate(points) for w in encode_point(230.0 + i, p)], dtype=np.uint16
    )
    decoder = BlockDecoder(points, [2 * i for i in range(len(points))])
    started = time.perf_counter()
    for _ in range(repeat):
        decoder.decode(words)
    ours = (time.perf_counter() - started) / repeat * 1e6
    as_list = words.tolist()
    float32 = AsyncModbusTcpClient.DATATYPE.FLOAT32
    started = time.perf_counter()
    for _ in range(repeat):
        [
            AsyncModbusTcpClient.convert_from_registers(as_list[2 * i : 2 * i + 2], float32)
            for i in range(len(points))
        ]
    theirs = (time.perf_counter() - started) / repeat * 1e6
    return ours, theirs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=0.5, help="per measurement")
    parser.add_argument("--rounds", type=int, default=10, help="alternating planned/naive")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        site = Path(tmp) / "site.yaml"
        site.write_text(
            "storage: {data_dir: data}\ndevices:\n"
            f"  - {{id: umg509, driver: modbus, profile: {PROFILE}, connection: "
            f"{{transport: tcp, host: 127.0.0.1, port: {free_port()}, retries: 0}}}}\n"
        )
        simulator = subprocess.Popen(
            [sys.executable, "-m", "energy_pipeline", "simulate", "--config", str(site), "--json"],
            stdout=subprocess.PIPE,
            text=True,
            cwd=REPO,
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )
        try:
            assert simulator.stdout is not None
            ready = json.loads(simulator.stdout.readline())  # printed once it accepts
            print(f"simulator: {', '.join(ready['endpoints'])} (pid {simulator.pid})")
            config = load_config(site, env={})
            driver = build_drivers(config, state=StateFiles(config.data_dir))["umg509"]
            assert isinstance(driver, ModbusDriver)
            result = asyncio.run(measure(driver, args.seconds, args.rounds))
            ours_us, theirs_us = decode_costs(driver)
        finally:
            simulator.terminate()
            simulator.wait(10)

    planned = statistics.median(result["planned"])
    naive = statistics.median(result["naive"])
    points = len([p for p in driver.profile.points if p.data_type != "string"])
    load = os.getloadavg()[0]
    print(
        f"Janitza UMG 509-PRO profile, {points} points; {args.rounds} rounds x {args.seconds:g} s"
    )
    print(f"load average (1 min) at the end: {load:.2f} on {os.cpu_count()} cores")
    print(f"{'':<22}{'requests/poll':>14}{'polls/s (median)':>18}")
    for name, key, requests in (
        ("planned (driver)", "planned", driver.requests_per_poll),
        ("naive (per point)", "naive", points),
    ):
        print(f"{name:<22}{requests:>14}{statistics.median(result[key]):>18.1f}")
    paired = [p / n for p, n in zip(result["planned"], result["naive"], strict=True)]
    print(
        f"ratio planned/naive: {planned / naive:.1f}x polls per second (ratio of medians); "
        f"median of per-round ratios {statistics.median(paired):.1f}x (target >= 20x)"
    )
    print(
        f"decode one poll: vectorised {ours_us:.1f} us vs pymodbus convert_from_registers "
        f"{theirs_us:.1f} us ({theirs_us / ours_us:.1f}x)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
