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
import subprocess
import sys
import tempfile
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
    from energy_pipeline.drivers.luxtronik.decode import decode
    from energy_pipeline.drivers.luxtronik.driver import LuxtronikDriver
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


ECHONET_GET_RES = bytes.fromhex(
    "108106E102880105FF017206800130880142E70400000698E80400A00028E0040004F3FDE3040000000B"
)


def _interleaved_medians(
    first: Callable[[], object], second: Callable[[], object], repeats: int
) -> tuple[float, float]:
    """Median run time of two functions timed alternately, so load swings hit both alike."""
    a, b = [], []
    for _ in range(repeats):
        a.append(_median_seconds(first, 1))
        b.append(_median_seconds(second, 1))
    return statistics.median(a), statistics.median(b)


def _naive_echonet_parse(frame_hex: str) -> dict[str, str]:
    """The seed's way: slice the hex text per field, int(..., 16) per number."""
    if frame_hex[0:4] != "1081":
        raise ValueError("bad header")
    opc = int(frame_hex[22:24], 16)
    props: dict[str, str] = {}
    pos = 24
    for _ in range(opc):
        epc = frame_hex[pos : pos + 2]
        pdc = int(frame_hex[pos + 2 : pos + 4], 16)
        props[epc.upper()] = frame_hex[pos + 4 : pos + 4 + 2 * pdc].upper()
        pos += 4 + 2 * pdc
    return props


def _naive_echonet_values(line: str) -> dict[str, float]:
    """ERXUDP split on spaces, hex-text frame, per-property hex decoding (the HEMS seed)."""
    props = _naive_echonet_parse(line.strip().split(" ")[8])
    power = int(props["E7"], 16)
    power = power - (1 << 32) if power & 0x80000000 else power
    r, t = int(props["E8"][:4], 16), int(props["E8"][4:], 16)
    return {
        "instant_power_w": float(power),
        "current_r_a": r / 10.0,
        "current_t_a": t / 10.0,
        "cumulative_power_kwh": int(props["E0"], 16) / 10.0,
    }


@contextlib.contextmanager
def _dongle(config_path: Path, *options: str):
    """The fake Wi-SUN dongle in a child process, with its options (radio latency...)."""
    module = "energy_pipeline.simulators.echonet"
    repo = str(Path(__file__).resolve().parent.parent)
    env = {**os.environ, "PYTHONPATH": repo + os.pathsep + os.environ.get("PYTHONPATH", "")}
    child = subprocess.Popen(
        [
            sys.executable,
            "-m",
            module,
            "--config",
            str(config_path),
            "--device",
            "meter1",
            *options,
        ],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert child.stdout is not None
        if "dongle on" not in child.stdout.readline():
            raise RuntimeError("dongle simulator did not start")
        yield
    finally:
        child.terminate()
        child.wait(5)


def _echonet_poll_times(
    config_path: Path, polls: int, *options: str
) -> tuple[list[float], list[float], list[float], int]:
    """Medians of: a regular poll, a poll with the E5/E2 history refresh, one Get per EPC."""
    from energy_pipeline.config import load_config
    from energy_pipeline.drivers.echonet import meter as m
    from energy_pipeline.drivers.echonet.driver import BRouteMeter

    config = load_config(config_path)
    with _dongle(config_path, *options):
        driver = BRouteMeter(config.devices[0], config)  # type: ignore[arg-type]

        async def timed() -> tuple[list[float], list[float], list[float], int]:
            first = await driver.read()
            polls_s, history_s, naive_s = [], [], []
            loop = asyncio.get_running_loop()

            def one_get_per_property() -> None:
                for epc in m.POLL_EPCS:
                    driver._get((epc,))

            for _ in range(polls):
                started = time.perf_counter()
                await driver.read()
                polls_s.append(time.perf_counter() - started)
                started = time.perf_counter()
                await loop.run_in_executor(driver._executor, one_get_per_property)
                naive_s.append(time.perf_counter() - started)
            for _ in range(max(3, polls // 10)):
                driver._history_due = 0.0
                started = time.perf_counter()
                await driver.read()
                history_s.append(time.perf_counter() - started)
            await driver.close()
            return polls_s, history_s, naive_s, len(first.valid_values())

        return asyncio.run(timed())


def bench_echonet(polls: int) -> Report:
    from energy_pipeline.drivers.echonet import frame as el
    from energy_pipeline.drivers.echonet import meter as m
    from energy_pipeline.drivers.echonet import skstack as sk

    folder = Path(tempfile.mkdtemp(prefix="bench-echonet-"))
    config_path = folder / "bench.yaml"
    config_path.write_text(
        "site: {name: bench, timezone: Asia/Tokyo}\n"
        "storage: {data_dir: data}\n"
        "devices:\n"
        "  - id: meter1\n"
        "    driver: echonet_broute\n"
        "    connection: {serial_port: meter1.tty, timeout: 2.0}\n"
        '    credentials: {rbid: "00000000000000000000000000000000", password: "benchpass123"}\n'
    )
    report: Report = []
    for label, runs, options in (
        ("pty", polls, ()),
        ("pty+50ms radio", max(5, polls // 20), ("--reply-delay", "0.05")),
    ):
        ours, with_history, naive, count = _echonet_poll_times(config_path, runs, *options)
        ours_ms = statistics.median(ours) * 1000
        naive_ms = statistics.median(naive) * 1000
        history_ms = statistics.median(with_history) * 1000
        if not report:
            report.append(("echonet b-route poll (values, 6 EPCs in one Get)", f"{count}"))
        report.append((f"echonet poll, {label}, this driver (median ms)", f"{ours_ms:.2f}"))
        report.append((f"echonet poll, {label}, incl. E5/E2 history (ms)", f"{history_ms:.2f}"))
        report.append((f"echonet poll, {label}, one Get per EPC (median ms)", f"{naive_ms:.2f}"))
        report.append((f"echonet poll, {label}, speed-up", f"{naive_ms / ours_ms:.1f}x"))

    line = (
        f"ERXUDP {sk.link_local('001C6400601421A3')} {sk.link_local('001D129000057479')} "
        f"0E1A 0E1A 001C6400601421A3 1 {len(ECHONET_GET_RES):04X} {ECHONET_GET_RES.hex().upper()}"
        "\r\n"
    ).encode()
    scale = m.Scale(1, 0.1, 6)

    class Replay:
        def __init__(self, data: bytes, times: int):
            self.data = data * times
            self.pos = 0

        @property
        def in_waiting(self) -> int:
            return len(self.data) - self.pos

        def read(self, size: int = 1) -> bytes:
            chunk = self.data[self.pos : self.pos + size]
            self.pos += len(chunk)
            return chunk

        def write(self, data: bytes) -> int:
            return len(data)

    batch = 2000

    def ours_codec() -> None:
        for _ in range(batch):
            frame = el.decode(ECHONET_GET_RES)
            props = frame.as_dict()
            m.instant_power_w(props[m.EPC_INSTANT_POWER])
            m.instant_currents_a(props[m.EPC_INSTANT_CURRENT])
            scale.kwh(m.counter_raw(props[m.EPC_CUMULATIVE]) or 0)

    def naive_codec() -> None:
        hex_frame = ECHONET_GET_RES.hex().upper()
        for _ in range(batch):
            props = _naive_echonet_parse(hex_frame)
            int(props["E7"], 16)
            int(props["E8"][:4], 16), int(props["E8"][4:], 16)
            int(props["E0"], 16) / 10.0

    def ours_line() -> None:
        wire = sk.Wire(Replay(line, batch))
        for _ in range(batch):
            msg = wire.next(float("inf"))
            assert isinstance(msg, sk.Datagram)
            props = el.decode(msg.data).as_dict()
            m.instant_power_w(props[m.EPC_INSTANT_POWER])
            m.instant_currents_a(props[m.EPC_INSTANT_CURRENT])
            scale.kwh(m.counter_raw(props[m.EPC_CUMULATIVE]) or 0)

    text = line.decode()

    def naive_line() -> None:
        for _ in range(batch):
            _naive_echonet_values(text)

    for label, ours_fn, naive_fn in (
        ("echonet codec (frame + properties)", ours_codec, naive_codec),
        ("echonet ERXUDP line to values", ours_line, naive_line),
    ):
        ours_s, naive_s = (t / batch for t in _interleaved_medians(ours_fn, naive_fn, 9))
        report.append((f"{label}, this driver (frames/s)", f"{1 / ours_s:,.0f}"))
        report.append((f"{label}, hex-text slicing (frames/s)", f"{1 / naive_s:,.0f}"))
        report.append((f"{label} ratio", f"{naive_s / ours_s:.2f}x"))
    return report


FAMILIES: dict[str, Callable[[int], Report]] = {
    "echonet": bench_echonet,
    "luxtronik": bench_luxtronik,
}


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
