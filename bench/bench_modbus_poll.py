"""Janitza poll: planned block reads vs one request per point, and the lean TCP client vs pymodbus.

The project's simulator (`energy-pipeline simulate`, a pymodbus TCP server serving the
janitza_umg509pro profile with moving values) runs as a child process, so it does not share
the client's GIL; the client side is the project's driver. Prints, per way:
requests per poll, polls per second (median of several rounds), and the ratio; plus the
decode cost of one poll's words (the driver's vectorised decoder vs pymodbus'
convert_from_registers per point).

    .venv/bin/python bench/bench_modbus_poll.py [--seconds 0.5] [--rounds 10]

Rounds alternate between the two ways, so load from other processes hits both alike; the
per-round ratio is the steadiest figure on a busy machine.

Then the per-poll CPU of the collector's hot path at --devices Janitza meters (the light farm,
bench/modbus_farm.py, one port per device): every device polled at one instant, as at a tick,
through the lean TCP client (`tcp_link`, the default) and through pymodbus
(ENERGY_PIPELINE_MODBUS_TCP=pymodbus), ticks alternating between the two. Prints process CPU
time per poll and the tick's last read start (the 99th percentile of when each device's read
began after the tick: what the k-th device waits for the sends before it), medians over ticks.

    .venv/bin/python bench/bench_modbus_poll.py --devices 300 --ticks 10
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np
from bench_collector import start_farm, write_config
from pymodbus.client import AsyncModbusTcpClient

from energy_pipeline.config import load_config
from energy_pipeline.drivers.modbus.client import TCP_CLIENT_ENV, TCP_CLIENTS
from energy_pipeline.drivers.modbus.codec import BlockDecoder, decode_point, encode_point
from energy_pipeline.drivers.modbus.driver import ModbusDriver
from energy_pipeline.drivers.modbus.planner import Block
from energy_pipeline.drivers.modbus.tcp_link import TcpLink
from energy_pipeline.drivers.registry import build_drivers
from energy_pipeline.lake.device_state import StateFiles

REPO = Path(__file__).resolve().parent.parent
PROFILE = "janitza_umg509pro"
FLOOR = "lean link alone (floor)"


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


def drivers_with(client: str, config_path: Path) -> list[ModbusDriver]:
    """The site's drivers, built with TCP devices on `client`."""
    os.environ[TCP_CLIENT_ENV] = client
    try:
        config = load_config(config_path)
        built = build_drivers(config, state=StateFiles(config.data_dir)).values()
    finally:
        del os.environ[TCP_CLIENT_ENV]
    drivers = [d for d in built if isinstance(d, ModbusDriver)]
    assert all(d.bus.lean is (client == "lean") for d in drivers)
    return drivers


Poll = Callable[[], Awaitable[object]]


async def tick(polls: list[Poll]) -> tuple[float, float]:
    """All devices at one instant: (CPU s per poll, p99 read start after the tick in ms)."""
    starts: list[float] = []

    async def timed(poll: Poll) -> None:
        starts.append(time.perf_counter())
        await poll()

    cpu, at = time.process_time(), time.perf_counter()
    await asyncio.gather(*(timed(p) for p in polls))
    cpu = time.process_time() - cpu
    late = np.percentile(np.array(starts) - at, 99) * 1000
    return cpu / len(polls), float(late)


async def links_to(base: int, devices: int) -> list[TcpLink]:
    """The floor: bare lean links asking for the driver's block, no driver, no decoding."""
    links = [TcpLink("127.0.0.1", base + i) for i in range(devices)]
    for link in links:
        await link.connect()
    return links


async def compare_clients(
    fleets: dict[str, list[ModbusDriver]], base: int, ticks: int
) -> dict[str, list[tuple[float, float]]]:
    block = next(iter(fleets.values()))[0].blocks[0]
    links = await links_to(base, len(next(iter(fleets.values()))))
    ways: dict[str, list[Poll]] = {name: [d.read for d in ds] for name, ds in fleets.items()}
    ways[FLOOR] = [
        functools.partial(link.read, block.register_type, block.start, block.count, 1, 1.0)
        for link in links
    ]
    for polls in ways.values():
        await tick(polls)  # connect and warm up outside the figures
    out: dict[str, list[tuple[float, float]]] = {name: [] for name in ways}
    for _ in range(ticks):
        for name, polls in ways.items():
            out[name].append(await tick(polls))
            await asyncio.sleep(0.05)  # let the farm's delayed replies drain
    for drivers in fleets.values():
        for d in drivers:
            await d.close()
    for link in links:
        link.close()
    return out


def client_section(devices: int, ticks: int) -> None:
    farm, base = start_farm(devices, 5.0)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            site = write_config(Path(tmp), base, devices)
            fleets = {client: drivers_with(client, site) for client in reversed(TCP_CLIENTS)}
            result = asyncio.run(compare_clients(fleets, base, ticks))
    finally:
        farm.terminate()
        farm.wait(10)
    print(f"\n{devices} Janitza meters polled at one instant, {ticks} ticks per way, alternating")
    print(f"{'TCP client':<28}{'CPU us/poll':>12}{'p99 start ms':>14}")
    cpu = {}
    for name, figures in result.items():
        cpu[name] = statistics.median(c for c, _ in figures) * 1e6
        late = statistics.median(s for _, s in figures)
        print(f"{name:<28}{cpu[name]:>12.1f}{late:>14.1f}")
    paired = [p[0] / lean[0] for p, lean in zip(result["pymodbus"], result["lean"], strict=True)]
    print(
        f"ratio pymodbus/lean: {cpu['pymodbus'] / cpu['lean']:.2f}x CPU per poll (medians); "
        f"median of per-tick ratios {statistics.median(paired):.2f}x"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=0.5, help="per measurement")
    parser.add_argument("--rounds", type=int, default=10, help="alternating planned/naive")
    parser.add_argument("--devices", type=int, default=300, help="for the TCP client section")
    parser.add_argument("--ticks", type=int, default=10, help="per TCP client, alternating")
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
    client_section(args.devices, args.ticks)
    print(f"load average (1 min) at the end: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    return 0


if __name__ == "__main__":
    sys.exit(main())
