"""The Luxtronik driver against a real TCP server: the simulator in a child process (faults
switched over its stdin), plus an in-process recording server for what goes on the wire."""

from __future__ import annotations

import asyncio
import contextlib
import json
import struct
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from energy_pipeline.drivers.base import (
    DeviceConnectionError,
    DeviceError,
    DeviceProtocolError,
    DeviceTimeout,
)
from energy_pipeline.drivers.luxtronik import protocol
from energy_pipeline.drivers.luxtronik.driver import LuxtronikDriver
from energy_pipeline.readings import Sample
from energy_pipeline_tests.conftest import REPO, cli_env, run_cli
from energy_pipeline_tests.kit.ports import free_port
from energy_pipeline_tests.kit.sims import simulators
from energy_pipeline_tests.kit.sites import write_site

READINGS = 1126 + 251 + 355 - 5 + 30
"""The library's known values less five text attributes, plus the simulator's 10 extra
items per vector."""


class SimProcess:
    def __init__(self, port: int = 0) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "energy_pipeline_tests.luxtronik_sim_process", str(port)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=REPO,
            env=cli_env(),
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert line.startswith("port "), f"simulator did not start: {line!r}"
        self.port = int(line.split()[1])

    def fault(self, kind: str, command: int | None = None) -> None:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(f"fault {kind} {command or ''}\n")
        self.proc.stdin.flush()
        assert self.proc.stdout.readline() == "ok\n"

    def stop(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture(scope="module")
def sim() -> Iterator[SimProcess]:
    process = SimProcess()
    yield process
    process.stop()


@pytest.fixture(autouse=True)
def _healthy(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if "sim" in request.fixturenames:
        request.getfixturevalue("sim").fault("none")


def driver(port: int, *, timeout: float = 2.0, retries: int = 0) -> LuxtronikDriver:
    return LuxtronikDriver("lux1", "127.0.0.1", port, timeout=timeout, retries=retries)


def read(drv: LuxtronikDriver) -> Sample:
    async def go() -> Sample:
        try:
            return await drv.read()
        finally:
            await drv.close()

    return asyncio.run(go())


def test_a_poll_reads_all_three_vectors_with_names_and_attributes(sim: SimProcess) -> None:
    drv = driver(sim.port)
    first = read(drv)
    second = read(drv)
    assert len(first.names) == READINGS
    assert second.names is first.names
    values = first.valid_values()
    assert -30.0 < values["ID_WEB_Temperatur_TA"] < 40.0
    assert 15.0 < values["ID_WEB_Temperatur_TRL"] < 60.0
    assert values["ID_WEB_Einst_BWS_akt"] == 50.0
    assert values["ID_WEB_VD1out"] in (0.0, 1.0)
    assert "Unknown_Calculation_269" in values
    assert first.attributes["ID_WEB_SoftStand"] == "V3.88.0"
    assert drv.last_attempts == 1
    assert second.values[first.names.index("ID_WEB_WMZ_Seit")] >= values["ID_WEB_WMZ_Seit"]


def test_replies_arriving_in_small_pieces_are_not_errors(sim: SimProcess) -> None:
    sim.fault("trickle")
    assert len(read(driver(sim.port)).names) == READINGS


@pytest.mark.parametrize(
    ("kind", "command", "match"),
    [
        ("truncate", 3004, "closed mid-frame"),
        ("garbage", 3003, "echoes command"),
        ("wrong_echo", 3005, "echoes command 3006, expected 3005"),
        ("huge_count", 3003, "announces 2147483647 items"),
        ("close", 3004, "closed mid-frame after 0 of 12 bytes"),
    ],
)
def test_bad_replies_are_protocol_errors(
    sim: SimProcess, kind: str, command: int, match: str
) -> None:
    sim.fault(kind, command)
    with pytest.raises(DeviceProtocolError, match=match) as caught:
        read(driver(sim.port))
    assert caught.value.device_id == "lux1"
    assert str(command) in (caught.value.where or "")


def test_a_server_that_accepts_and_never_answers_times_out(sim: SimProcess) -> None:
    sim.fault("hang", 3003)
    drv = driver(sim.port, timeout=0.2, retries=1)
    with pytest.raises(DeviceTimeout, match=r"within 0.2 s \(3003 header\)"):
        read(drv)
    assert drv.last_attempts == 2


def test_nothing_listening_is_a_connection_error() -> None:
    port = free_port()
    with pytest.raises(DeviceConnectionError, match=f"127.0.0.1:{port}: Connection refused"):
        read(driver(port))


@pytest.mark.slow
def test_the_driver_reconnects_after_the_server_restarts() -> None:
    first = SimProcess()
    drv = driver(first.port, timeout=1.0)
    try:
        assert len(read(drv).names) == READINGS
    finally:
        first.stop()
    with pytest.raises(DeviceConnectionError):
        read(drv)
    second = SimProcess(first.port)
    try:
        assert len(read(drv).names) == READINGS
    finally:
        second.stop()


def test_one_connection_per_poll_with_only_the_three_read_commands() -> None:
    """What the driver sends, recorded by a plain TCP server: 3003, 3004, 3005, nothing else."""
    connections: list[list[int]] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen: list[int] = []
        connections.append(seen)
        while True:
            try:
                command, _ = struct.unpack(">ii", await reader.readexactly(8))
            except asyncio.IncompleteReadError:
                break
            seen.append(command)
            writer.write(protocol.encode_response(command, np.arange(3)))
            await writer.drain()
        writer.close()

    async def go() -> Sample:
        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        drv = driver(server.sockets[0].getsockname()[1])
        async with server:
            first = await drv.read()
            await drv.read()
            await drv.close()
            await asyncio.sleep(0.05)
        return first

    sample = asyncio.run(go())
    assert connections == [[3003, 3004, 3005], [3003, 3004, 3005]]
    assert sample.names[:2] == ("ID_Transfert_LuxNet", "ID_Einst_WK_akt")


VALID_PREFIXES = (
    b"",
    protocol.encode_response(3003, np.arange(5)),
    protocol.encode_response(3003, np.arange(5)) + protocol.encode_response(3004, np.arange(90)),
)


@given(st.sampled_from(VALID_PREFIXES), st.binary(max_size=64))
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_any_wire_bytes_give_a_sample_or_a_device_error(prefix: bytes, tail: bytes) -> None:
    """A server that answers the first request with valid frames, then arbitrary bytes, then
    hangs up: the driver returns a Sample or raises a DeviceError, never anything else."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            await reader.readexactly(8)
            writer.write(prefix + tail)
            await writer.drain()
        writer.close()

    async def go() -> None:
        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        async with server:
            drv = driver(server.sockets[0].getsockname()[1], timeout=5.0)
            with contextlib.suppress(DeviceError):
                await drv.read()

    asyncio.run(go())


@pytest.mark.slow
def test_simulate_and_poll_once_show_the_heat_pump(tmp_path: Path) -> None:
    """The user's path: `simulate` in one process, `poll-once --json` in another."""
    port = free_port()
    config = write_site(
        tmp_path,
        [{"id": "lux1", "driver": "luxtronik", "connection": {"host": "127.0.0.1", "port": port}}],
    )
    with simulators(config) as endpoints:
        assert endpoints == [f"lux1: luxtronik tcp 127.0.0.1:{port}"]
        result = run_cli("poll-once", "--config", str(config), "--json")
        table = run_cli("poll-once", "--config", str(config))
    assert result.returncode == 0, result.stderr
    # the table takes units from the one catalog, for a family without a profile too
    (line,) = [ln for ln in table.stdout.splitlines() if "ID_WEB_Temperatur_TVL" in ln]
    assert line.rstrip().endswith("°C"), line
    (device,) = json.loads(result.stdout)
    assert device["device_id"] == "lux1" and device["ok"] is True
    assert len(device["values"]) == READINGS
    assert 15.0 < device["values"]["ID_WEB_Temperatur_TVL"] < 60.0
    assert device["attributes"]["ID_WEB_SoftStand"] == "V3.88.0"
