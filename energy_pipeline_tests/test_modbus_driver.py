"""The Modbus driver against real pymodbus servers (loopback TCP, RTU over a pty pair) and
misbehaving peers: values, request counts, typed errors, recovery. Every TCP test runs with
both TCP clients (the lean `tcp_link` and pymodbus): the same behaviour is the contract."""

from __future__ import annotations

import asyncio
import json
import math
import os
import random
import re
import struct
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from energy_pipeline.config import Config
from energy_pipeline.drivers.base import (
    DeviceConnectionError,
    DeviceError,
    DeviceExceptionReply,
    DeviceProtocolError,
    DeviceTimeout,
    PortBusyError,
)
from energy_pipeline.drivers.modbus.client import TCP_CLIENT_ENV, TCP_CLIENTS
from energy_pipeline.drivers.modbus.codec import encode_point
from energy_pipeline.drivers.modbus.driver import ModbusDriver
from energy_pipeline.drivers.registry import build_drivers
from energy_pipeline.drivers.serial_lock import hold_port
from energy_pipeline.lake.device_state import StateFiles
from energy_pipeline.profiles import load_profile
from energy_pipeline.profiles.model import Profile
from energy_pipeline.yamlfile import ConfigError
from energy_pipeline_tests.kit.ports import free_port
from energy_pipeline_tests.kit.sites import load_site, write_site
from energy_pipeline_tests.modbus_support import (
    misbehaving_tcp_server,
    rtu_server,
    sample_values,
    simdevice,
    tcp_server,
)

PROFILES = Path(__file__).resolve().parent.parent / "energy_pipeline" / "profiles"


@pytest.fixture(params=TCP_CLIENTS)
def tcp_client(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """The TCP client the drivers built in this test use."""
    monkeypatch.setenv(TCP_CLIENT_ENV, request.param)
    return str(request.param)


def profile(name: str) -> Profile:
    return load_profile(name, PROFILES)


def tcp_device(dev_id: str, prof: str, port: int, **extra: object) -> str:
    conn = {"transport": "tcp", "host": "127.0.0.1", "port": port, "timeout": 0.5, "retries": 0}
    conn.update(extra)
    inner = ", ".join(f"{k}: {v}" for k, v in conn.items())
    return f"  - {{id: {dev_id}, driver: modbus, profile: {prof}, connection: {{{inner}}}}}\n"


def driver_for(config: Config, dev_id: str) -> ModbusDriver:
    driver = build_drivers(config, state=StateFiles(config.data_dir))[dev_id]
    assert isinstance(driver, ModbusDriver)
    return driver


def count_requests(driver: ModbusDriver) -> list[str]:
    """Record each request the driver sends (observing the real bus, not replacing it)."""
    sent: list[str] = []
    real = driver.bus.read

    async def counting(device_id: str, unit_id: int, block, timeout: float) -> list[int]:  # type: ignore[no-untyped-def]
        sent.append(str(block))
        return await real(device_id, unit_id, block, timeout)

    driver.bus.read = counting  # type: ignore[method-assign]
    return sent


def expected(prof: Profile, values: dict[str, float | str]) -> dict[str, float]:
    out = {}
    for p in prof.points:
        if p.data_type == "string":
            continue
        v = float(values[p.name])
        out[p.name] = float(np.float32(v)) if p.data_type == "float32" else v
    return out


def test_janitza_block_is_one_request_and_decodes_every_value(
    tmp_path: Path, tcp_client: str
) -> None:
    prof = profile("janitza_umg509pro")
    values = sample_values(prof)
    with tcp_server([simdevice(prof, values, 1)]) as port:
        config = load_site(tmp_path, tcp_device("umg509", "janitza_umg509pro", port))
        driver = driver_for(config, "umg509")
        assert driver.bus.lean is (tcp_client == "lean")
        sent = count_requests(driver)

        async def two_polls() -> tuple:
            first, second = await driver.read(), await driver.read()
            await driver.close()
            return first, second

        first, second = asyncio.run(two_polls())
    assert sent == ["holding 19000-19121"] * 2
    assert first.names is second.names and len(first.names) == 61
    assert first.values.dtype == np.float64
    assert first.valid_values() == pytest.approx(expected(prof, values))


def test_all_register_types_strings_and_sentinels(tmp_path: Path, tcp_client: str) -> None:
    prof = profile("heatpump_generic")
    values = sample_values(prof)
    values["outdoor_temperature"] = -3276.8  # raw -32768: the profile's "no sensor"
    with tcp_server([simdevice(prof, values, 1)]) as port:
        config = load_site(tmp_path, tcp_device("hp", "heatpump_generic", port))
        driver = driver_for(config, "hp")
        sent = count_requests(driver)
        sample = asyncio.run(driver.read())
    assert sorted(sent) == ["discrete 0-1", "holding 100-101", "input 0-33"]
    assert sample.attributes == {"firmware": "v1.2"}
    assert "firmware" not in sample.names
    got = dict(zip(sample.names, sample.values, strict=True))
    assert math.isnan(got["outdoor_temperature"])
    want = expected(prof, values)
    del want["outdoor_temperature"]
    assert {k: got[k] for k in want} == pytest.approx(want)


def test_one_illegal_address_costs_one_request_not_the_poll(
    tmp_path: Path, tcp_client: str
) -> None:
    prof = profile("janitza_umg509pro")
    values = sample_values(prof)
    bad = next(p for p in prof.points if p.address == 19060)
    with tcp_server([simdevice(prof, values, 1, holes=[("holding", 19061)])]) as port:
        config = load_site(tmp_path, tcp_device("umg509", "janitza_umg509pro", port))
        driver = driver_for(config, "umg509")
        sent = count_requests(driver)

        async def polls() -> list:
            return [await driver.read() for _ in range(3)]

        samples = asyncio.run(polls())
    want = expected(prof, values)
    del want[bad.name]
    for sample in samples:
        got = dict(zip(sample.names, sample.values, strict=True))
        assert math.isnan(got[bad.name])
        assert {k: got[k] for k in want} == pytest.approx(want)
    assert driver.blocks and [str(b) for b in driver.blocks] == [
        "holding 19000-19059",
        "holding 19062-19121",
    ]
    assert sent[-4:] == ["holding 19000-19059", "holding 19062-19121"] * 2
    assert samples[0].names is samples[2].names


def test_unreadable_gap_is_learned(tmp_path: Path, tcp_client: str) -> None:
    prof_file = tmp_path / "gappy.yaml"
    prof_file.write_text(
        "manufacturer: Test\nmodel: gap\npoints:\n"
        "  - {name: a, address: 0}\n  - {name: b, address: 10, data_type: int32}\n"
    )
    prof = load_profile(str(prof_file), tmp_path)
    values = {"a": 7.0, "b": -123456.0}
    with tcp_server([simdevice(prof, values, 1, holes=[("holding", 5)])]) as port:
        config = load_site(tmp_path, tcp_device("gappy", "gappy.yaml", port))
        driver = driver_for(config, "gappy")
        first = asyncio.run(driver.read())
        sent = count_requests(driver)
        second = asyncio.run(driver.read())
    assert first.valid_values() == second.valid_values() == values
    assert sent == ["holding 0-0", "holding 10-11"]


def test_exception_reply_names_device_unit_and_block(tmp_path: Path, tcp_client: str) -> None:
    prof = profile("janitza_umg509pro")
    with tcp_server([simdevice(prof, sample_values(prof), 1)]) as port:
        config = load_site(tmp_path, tcp_device("umg509", "janitza_umg509pro", port, unit_id=7))
        driver = driver_for(config, "umg509")
        with pytest.raises(DeviceExceptionReply) as info:
            asyncio.run(driver.read())
    assert info.value.code != 2 and info.value.kind == "exception_reply"
    assert "umg509" in str(info.value) and "unit 7, holding 19000-19121" in str(info.value)


def test_mute_device_times_out_after_retries(tmp_path: Path, tcp_client: str) -> None:
    with misbehaving_tcp_server(lambda request: None) as port:
        config = load_site(tmp_path, tcp_device("mute", "must_ep20", port, timeout=0.2, retries=1))
        driver = driver_for(config, "mute")
        with pytest.raises(DeviceTimeout) as info:
            asyncio.run(driver.read())
    assert driver.last_attempts == 2
    assert str(info.value) == "mute: no reply within 0.2 s (unit 10, holding 30000-30026)"


def test_garbage_bytes_are_a_protocol_error(tmp_path: Path, tcp_client: str) -> None:
    rng = random.Random(7)

    def garbage(request: bytes) -> bytes:
        return bytes(rng.randrange(256) for _ in range(17))

    with misbehaving_tcp_server(garbage) as port:
        config = load_site(tmp_path, tcp_device("noisy", "must_ep20", port, timeout=0.2))
        driver = driver_for(config, "noisy")
        with pytest.raises(DeviceProtocolError, match=r"noisy: .*bytes received.*holding 30000"):
            asyncio.run(driver.read())


def test_refused_then_reconnects_when_the_device_returns(tmp_path: Path, tcp_client: str) -> None:
    prof = profile("must_ep20")
    values = sample_values(prof)
    port = free_port()
    config = load_site(tmp_path, tcp_device("ups1", "must_ep20", port))
    driver = driver_for(config, "ups1")

    async def poll() -> float:
        return (await driver.read()).valid_values()["battery_voltage"]

    with pytest.raises(DeviceConnectionError, match=rf"ups1: cannot connect to 127.0.0.1:{port}"):
        asyncio.run(poll())
    with tcp_server([simdevice(prof, values, 10)], port=port):
        assert asyncio.run(poll()) == pytest.approx(float(values["battery_voltage"]))
    with pytest.raises((DeviceConnectionError, DeviceTimeout)):
        asyncio.run(poll())
    with tcp_server([simdevice(prof, values, 10)], port=port):
        assert asyncio.run(poll()) == pytest.approx(float(values["battery_voltage"]))


def test_rtu_devices_share_one_port_and_poll_in_turn(tmp_path: Path) -> None:
    ups, hp = profile("must_ep20"), profile("heatpump_generic")
    ups_values, hp_values = sample_values(ups), sample_values(hp)
    with rtu_server([simdevice(ups, ups_values, 10), simdevice(hp, hp_values, 1)]) as tty:
        link = tmp_path / "ups.tty"
        link.symlink_to(tty)
        devices = (
            "  - {id: ups1, driver: modbus, profile: must_ep20,"
            " connection: {transport: rtu, serial_port: ups.tty, timeout: 0.5}}\n"
            f"  - {{id: hp1, driver: modbus, profile: heatpump_generic,"
            f" connection: {{transport: rtu, serial_port: {tty}, timeout: 0.5}}}}\n"
        )
        config = load_site(tmp_path, devices)
        drivers = build_drivers(config, state=StateFiles(config.data_dir))
        ups_driver, hp_driver = drivers["ups1"], drivers["hp1"]
        assert isinstance(ups_driver, ModbusDriver) and isinstance(hp_driver, ModbusDriver)
        assert ups_driver.bus is hp_driver.bus
        assert ups_driver.unit_id == 10 and ups_driver.bus.endpoint.baudrate == 9600  # type: ignore[union-attr]

        async def both() -> tuple:
            samples = await asyncio.gather(ups_driver.read(), hp_driver.read())
            lock_file = next((tmp_path / "data" / "state").glob("serial-*.lock"))
            holder = lock_file.read_text().strip()
            await ups_driver.close()
            return samples, holder

        (ups_sample, hp_sample), holder = asyncio.run(both())
    assert holder == str(os.getpid())
    assert ups_sample.valid_values() == pytest.approx(expected(ups, ups_values))
    assert hp_sample.attributes == {"firmware": "v1.2"}


def test_serial_port_held_elsewhere_is_reported_with_pid(tmp_path: Path) -> None:
    port = tmp_path / "ttyUSB9"
    port.touch()
    config = load_site(
        tmp_path,
        "  - {id: ups1, driver: modbus, profile: must_ep20,"
        f" connection: {{transport: rtu, serial_port: {port}}}}}\n",
    )
    driver = build_drivers(config, state=StateFiles(config.data_dir))["ups1"]
    with (
        hold_port(port, config.data_dir),
        pytest.raises(PortBusyError, match=rf"ups1: serial port .* in use by pid {os.getpid()}"),
    ):
        asyncio.run(driver.read())


def test_driver_code_has_no_write_path() -> None:
    """Read-only by construction: no write function is referenced anywhere in the driver."""
    package = PROFILES.parent / "drivers" / "modbus"
    for source in package.glob("*.py"):
        text = source.read_text()
        assert "write_" not in text and "Write" not in text, source


def test_a_mute_unit_on_a_shared_bus_does_not_disturb_its_neighbour(tmp_path: Path) -> None:
    ups = profile("must_ep20")
    values = sample_values(ups)
    with rtu_server([simdevice(ups, values, 10)]) as tty:
        devices = "".join(
            f"  - {{id: {dev_id}, driver: modbus, profile: {prof},"
            f" connection: {{transport: rtu, serial_port: {tty}, unit_id: {unit},"
            " timeout: 0.3, retries: 0}}\n"
            for dev_id, prof, unit in (("ups1", "must_ep20", 10), ("ghost", "heatpump_generic", 3))
        )
        config = load_site(tmp_path, devices)
        drivers = build_drivers(config, state=StateFiles(config.data_dir))

        async def poll_both() -> list:
            return await asyncio.gather(
                drivers["ghost"].read(), drivers["ups1"].read(), return_exceptions=True
            )

        ghost, ups_sample = asyncio.run(poll_both())
    assert isinstance(ghost, DeviceTimeout | DeviceExceptionReply), ghost
    assert str(ghost).startswith("ghost: ") and "unit 3" in str(ghost)
    assert ups_sample.valid_values() == pytest.approx(expected(ups, values))


def test_missing_serial_port_is_a_connection_error(tmp_path: Path) -> None:
    config = load_site(
        tmp_path,
        "  - {id: ups1, driver: modbus, profile: must_ep20,"
        " connection: {transport: rtu, serial_port: nosuch.tty}}\n",
    )
    with pytest.raises(
        DeviceConnectionError, match=r"ups1: serial port .*nosuch.tty does not exist"
    ):
        asyncio.run(build_drivers(config, state=StateFiles(config.data_dir))["ups1"].read())


def test_devices_sharing_a_port_must_agree_on_line_settings(tmp_path: Path) -> None:
    devices = (
        "  - {id: ups1, driver: modbus, profile: must_ep20,"
        " connection: {transport: rtu, serial_port: bus.tty}}\n"
        "  - {id: pv1, driver: modbus, profile: must_pv1800,"
        " connection: {transport: rtu, serial_port: bus.tty}}\n"
    )
    with pytest.raises(ConfigError) as info:
        load_site(tmp_path, devices)
    text = str(info.value)
    assert "devices[1].connection.serial_port" in text
    assert "devices[0] (ups1) with modbus 9600 8N1" in text and "modbus 19200 8N1" in text


@pytest.mark.parametrize(
    ("holes", "blocks"),
    [
        ([19000], ["holding 19002-19121"]),
        ([19121], ["holding 19000-19119"]),
        ([19030, 19091], ["holding 19000-19029", "holding 19032-19089", "holding 19092-19121"]),
    ],
)
def test_illegal_addresses_anywhere_leave_only_their_points_out(
    tmp_path: Path, holes: list[int], blocks: list[str], tcp_client: str
) -> None:
    prof = profile("janitza_umg509pro")
    values = sample_values(prof)
    dead = {p.name for p in prof.points if any(p.address <= h < p.address + 2 for h in holes)}
    server = simdevice(prof, values, 1, holes=[("holding", h) for h in holes])
    with tcp_server([server]) as port:
        driver = driver_for(
            load_site(tmp_path, tcp_device("umg509", "janitza_umg509pro", port)), "umg509"
        )
        first = asyncio.run(driver.read())
        sent = count_requests(driver)
        second = asyncio.run(driver.read())
    assert [str(b) for b in driver.blocks] == blocks and sent == blocks
    want = {k: v for k, v in expected(prof, values).items() if k not in dead}
    for sample in (first, second):
        assert sample.valid_values() == pytest.approx(want)
        assert set(sample.names) - set(sample.valid_values()) == dead


def test_dropped_connection_is_a_typed_error_and_the_next_poll_reconnects(
    tmp_path: Path, tcp_client: str
) -> None:
    connections: list[bytes] = []

    def hang_up(request: bytes) -> bytes:
        connections.append(request)
        return b""

    with misbehaving_tcp_server(hang_up) as port:
        config = load_site(tmp_path, tcp_device("flaky", "must_ep20", port, timeout=0.3, retries=1))
        driver = driver_for(config, "flaky")

        async def poll() -> None:
            await driver.read()

        with pytest.raises(DeviceConnectionError, match=r"flaky: connection lost.*holding 30000"):
            asyncio.run(poll())
    assert len(connections) == 2  # the retry reconnected and asked again


@pytest.mark.parametrize("client", TCP_CLIENTS)
@settings(max_examples=15, deadline=None)
@given(holes=st.sets(st.integers(19000, 19121), min_size=1, max_size=4))
def test_any_illegal_addresses_cost_only_their_points(client: str, holes: set[int]) -> None:
    """Property over a real server: whatever registers answer exception 2, the next polls read
    every other point correctly and never ask for a bad register again."""
    prof = profile("janitza_umg509pro")
    values = sample_values(prof)
    dead = {p.name for p in prof.points if any(p.address <= h < p.address + 2 for h in holes)}
    server = simdevice(prof, values, 1, holes=[("holding", h) for h in holes])
    with (
        tempfile.TemporaryDirectory() as tmp,
        tcp_server([server]) as port,
        pytest.MonkeyPatch.context() as env,
    ):
        env.setenv(TCP_CLIENT_ENV, client)
        driver = driver_for(
            load_site(Path(tmp), tcp_device("umg", "janitza_umg509pro", port)), "umg"
        )
        assert driver.bus.lean is (client == "lean")
        first = asyncio.run(driver.read())
        sent = count_requests(driver)
        second = asyncio.run(driver.read())
    assert len(sent) == len(driver.blocks) <= len(holes) + 1
    assert not any(b.start <= h <= b.end for b in driver.blocks for h in holes)
    want = {k: v for k, v in expected(prof, values).items() if k not in dead}
    for sample in (first, second):
        assert sample.valid_values() == pytest.approx(want)


def register_reply(
    request: bytes,
    image: dict[int, int],
    *,
    tid_delta: int = 0,
    unit_delta: int = 0,
    count_delta: int = 0,
    protocol: int = 0,
) -> bytes:
    """The reply a device holding `image` (holding address -> word) gives, or a variant."""
    tid, _, _, unit, fc, start, count = struct.unpack(">HHHBBHH", request[:12])
    words = [image.get(a, 0) for a in range(start, start + count + count_delta)]
    body = bytes([fc, 2 * len(words)]) + struct.pack(f">{len(words)}H", *words)
    return struct.pack(">HHHB", tid + tid_delta, protocol, len(body) + 1, unit + unit_delta) + body


def must_image() -> tuple[Profile, dict[str, float | str], dict[int, int]]:
    prof = profile("must_ep20")
    values = sample_values(prof)
    image = {
        p.address + k: w for p in prof.points for k, w in enumerate(encode_point(values[p.name], p))
    }
    return prof, values, image


def exception_reply(request: bytes, code: int) -> bytes:
    tid, _, _, unit, fc = struct.unpack(">HHHBB", request[:8])
    return struct.pack(">HHHBBB", tid, 0, 3, unit, fc | 0x80, code)


WAITED = r"\d+ bytes received but no valid reply within 0.2 s"
"""What a peer that sent something, but no reply, costs: the whole timeout (0.2 s here)."""
MISBEHAVIOUR = {
    "exception 6": (lambda r, im: exception_reply(r, 6), DeviceExceptionReply, "exception 6"),
    "another unit": (
        lambda r, im: register_reply(r, im, unit_delta=1),
        DeviceProtocolError,
        WAITED,
    ),
    "another transaction": (
        lambda r, im: register_reply(r, im, tid_delta=1),
        DeviceProtocolError,
        WAITED,
    ),
    "too few words": (
        lambda r, im: register_reply(r, im, count_delta=-26),
        DeviceProtocolError,
        "asked for 27 values, got 1",
    ),
    "not a frame": (
        lambda r, im: register_reply(r, im, protocol=1),
        DeviceProtocolError,
        "bytes received but no valid reply",
    ),
    "a frame longer than sent": (
        lambda r, im: register_reply(r, im)[:-4],
        DeviceProtocolError,
        WAITED,
    ),
    "hang-up mid-frame": (
        lambda r, im: [register_reply(r, im)[:20], b""],
        DeviceConnectionError,
        "connection lost",
    ),
}


@pytest.mark.parametrize("case", MISBEHAVIOUR, ids=list(MISBEHAVIOUR))
def test_misbehaving_replies_give_the_same_typed_errors(
    tmp_path: Path, tcp_client: str, case: str
) -> None:
    answer, kind, message = MISBEHAVIOUR[case]
    _, _, image = must_image()
    timeout = 0.2 if message == WAITED else 1.0  # a busy machine must not turn others into it
    with misbehaving_tcp_server(lambda request: answer(request, image)) as port:
        config = load_site(tmp_path, tcp_device("odd", "must_ep20", port, timeout=timeout))
        driver = driver_for(config, "odd")
        with pytest.raises(DeviceError) as info:
            asyncio.run(driver.read())
    assert type(info.value) is kind
    assert re.search(message, str(info.value)), str(info.value)
    assert str(info.value).startswith("odd: ")
    assert str(info.value).endswith("(unit 10, holding 30000-30026)")


@pytest.mark.parametrize(
    "answer",
    [
        lambda r, im: register_reply(r, im, tid_delta=-1) + register_reply(r, im),
        lambda r, im: [
            register_reply(r, im)[:5],
            register_reply(r, im)[5:17],
            register_reply(r, im)[17:],
        ],
    ],
    ids=["a late reply first", "in pieces"],
)
def test_a_reply_after_a_late_one_or_in_pieces_reads_every_value(
    tmp_path: Path, tcp_client: str, answer: Callable[[bytes, dict[int, int]], bytes]
) -> None:
    prof, values, image = must_image()
    with misbehaving_tcp_server(lambda request: answer(request, image)) as port:
        config = load_site(tmp_path, tcp_device("ups", "must_ep20", port, timeout=0.5))
        driver = driver_for(config, "ups")

        async def two_polls() -> list:
            samples = [await driver.read(), await driver.read()]
            await driver.close()
            return samples

        samples = asyncio.run(two_polls())
    for sample in samples:
        assert sample.valid_values() == pytest.approx(expected(prof, values))


def test_a_tcp_poll_through_the_lean_client_never_loads_pymodbus(tmp_path: Path) -> None:
    prof = profile("janitza_umg509pro")
    with tcp_server([simdevice(prof, sample_values(prof), 1)]) as port:
        site = write_site(tmp_path, tcp_device("umg509", "janitza_umg509pro", port))
        code = (
            "import asyncio, json, sys\n"
            "from energy_pipeline.config import load_config\n"
            "from energy_pipeline.drivers.registry import build_drivers\n"
            "from energy_pipeline.lake.device_state import StateFiles\n"
            f"config = load_config({str(site)!r})\n"
            "driver = build_drivers(config, state=StateFiles(config.data_dir))['umg509']\n"
            "sample = asyncio.run(driver.read())\n"
            "print(json.dumps([len(sample.valid_values()), 'pymodbus' in sys.modules]))\n"
        )
        env = {k: v for k, v in os.environ.items() if k != TCP_CLIENT_ENV}
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
        )
    assert json.loads(out.stdout) == [61, False]
