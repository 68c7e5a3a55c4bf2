"""The Modbus simulators on the wire: pymodbus clients and the real drivers read the models'
values over loopback TCP and over a pty symlinked at the configured serial port."""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient

from energy_pipeline.config import Config
from energy_pipeline.drivers.modbus.codec import decode_point
from energy_pipeline.drivers.registry import build_drivers
from energy_pipeline.lake.device_state import StateFiles
from energy_pipeline.simulators import SimulatorError, device_model, modbus, start_all
from energy_pipeline.simulators.serial_pty import SerialLinkError
from energy_pipeline_tests.kit.ports import free_port
from energy_pipeline_tests.kit.sites import load_site

FROZEN = datetime(2026, 1, 14, 12, 30, 5, tzinfo=UTC)


def frozen_clock() -> float:
    return FROZEN.timestamp() + 0.4


def serve(config: Config, body: Callable[[list[str]], Awaitable[Any]]) -> Any:
    async def main() -> Any:
        async with contextlib.AsyncExitStack() as stack:
            lines = await modbus.start(config.devices, config, stack, clock=frozen_clock)  # type: ignore[arg-type]
            return await body(lines)

    return asyncio.run(main())


def tcp(dev_id: str, profile: str, port: int, unit: int = 1) -> str:
    return (
        f"  - {{id: {dev_id}, driver: modbus, profile: {profile}, connection: "
        f"{{transport: tcp, host: 127.0.0.1, port: {port}, unit_id: {unit}, timeout: 1}}}}\n"
    )


def rtu(dev_id: str, profile: str, port: str, unit: int) -> str:
    return (
        f"  - {{id: {dev_id}, driver: modbus, profile: {profile}, connection: "
        f"{{transport: rtu, serial_port: {port}, unit_id: {unit}, timeout: 1}}}}\n"
    )


def test_tcp_server_answers_a_pymodbus_client_with_the_models_values(tmp_path: Path) -> None:
    port = free_port()
    config = load_site(tmp_path, tcp("umg509", "janitza_umg509pro", port))
    model = device_model(config.devices[0], config)
    expected = model.values_at(FROZEN)
    points = {p.name: p for p in model.profile.points}

    async def body(lines: list[str]) -> dict[str, float]:
        assert lines == [f"umg509: modbus tcp 127.0.0.1:{port} (unit 1, profile janitza_umg509pro)"]
        client = AsyncModbusTcpClient("127.0.0.1", port=port)
        await client.connect()
        try:
            reply = await client.read_holding_registers(19000, count=122, device_id=1)
            assert not reply.isError()
            words = reply.registers
            return {
                name: float(decode_point(words[p.address - 19000 :][: p.width], p))
                for name, p in points.items()
            }
        finally:
            client.close()

    got = serve(config, body)
    assert got == expected
    assert got["power_active_total"] > 1000 and got["frequency"] == pytest.approx(50, abs=0.1)


def test_reads_outside_the_map_and_writes_are_refused(tmp_path: Path) -> None:
    port = free_port()
    config = load_site(tmp_path, tcp("umg509", "janitza_umg509pro", port))

    async def body(_lines: list[str]) -> tuple[int, int, int, int]:
        client = AsyncModbusTcpClient("127.0.0.1", port=port)
        await client.connect()
        try:
            past_end = await client.read_holding_registers(19100, count=30, device_id=1)
            inputs = await client.read_input_registers(19000, count=2, device_id=1)
            write = await client.write_register(19000, 1, device_id=1)
            other_unit = await client.read_holding_registers(19000, count=2, device_id=9)
            return (
                past_end.exception_code,
                inputs.exception_code,
                write.exception_code,
                other_unit.exception_code,
            )
        finally:
            client.close()

    assert serve(config, body) == (2, 2, 1, 0x0B)


def test_driver_reads_exactly_what_the_model_says(tmp_path: Path) -> None:
    port = free_port()
    config = load_site(
        tmp_path,
        tcp("umg509", "janitza_umg509pro", port)
        + tcp("hp", "heatpump_generic", port, unit=2)
        + tcp("lux", "luxtronik_shi", free_port()),
    )

    async def body(lines: list[str]) -> dict[str, dict[str, float]]:
        assert len(lines) == 3
        drivers = build_drivers(config, state=StateFiles(config.data_dir))
        try:
            return {i: (await d.read()).valid_values() for i, d in drivers.items()}
        finally:
            for d in drivers.values():
                await d.close()

    got = serve(config, body)
    for dev in config.devices:
        expected = device_model(dev, config).values_at(FROZEN)
        assert got[dev.id] == expected, dev.id


def test_rtu_devices_share_one_pty_linked_at_the_configured_port(tmp_path: Path) -> None:
    config = load_site(
        tmp_path,
        rtu("ups1", "must_ep20", "data/sim/bus.tty", 10)
        + rtu("hp", "heatpump_generic", "data/sim/bus.tty", 3),
    )
    link = tmp_path / "data" / "sim" / "bus.tty"

    async def body(lines: list[str]) -> tuple[list[int], list[int], dict[str, Any]]:
        assert link.is_symlink() and str(link.readlink()).startswith("/dev/pts/")
        assert all(str(link.readlink()) in line for line in lines)
        client = AsyncModbusSerialClient(str(link), baudrate=9600, timeout=1)
        await client.connect()
        try:
            ups = await client.read_holding_registers(30000, count=27, device_id=10)
            hp = await client.read_input_registers(0, count=13, device_id=3)
            assert not ups.isError() and not hp.isError()
        finally:
            client.close()
        drivers = build_drivers(config, state=StateFiles(config.data_dir))
        try:
            samples = {i: (await d.read()).valid_values() for i, d in drivers.items()}
        finally:
            for d in drivers.values():
                await d.close()
        return ups.registers, hp.registers, samples

    ups_words, hp_words, samples = serve(config, body)
    assert not link.exists() and not link.is_symlink()
    ups_model, hp_model = (device_model(d, config) for d in config.devices)
    assert ups_words[2] in (3, 4) and ups_words[4] == 1000
    assert ups_words[17] == ups_model.values_at(FROZEN)["battery_level"]
    assert hp_words[0] == hp_model.words_at(FROZEN)["outdoor_temperature"][0]
    assert samples == {
        "ups1": ups_model.values_at(FROZEN),
        "hp": hp_model.values_at(FROZEN),
    }


def test_pv1800_simulator_is_strict_about_its_blocks(tmp_path: Path) -> None:
    config = load_site(tmp_path, rtu("pv", "must_pv1800", "data/sim/pv.tty", 4))

    async def body(_lines: list[str]) -> dict[str, int | None]:
        client = AsyncModbusSerialClient(
            str(tmp_path / "data/sim/pv.tty"), baudrate=19200, timeout=1
        )
        await client.connect()
        reads = {
            "probe": (20001, 5),  # the vendor tool's probe
            "display": (25201, 79),
            "charger": (15201, 21),
            "across_20016": (20010, 10),
            "gap": (20050, 2),
            "before_10101": (10009, 92),
            "past_25279": (25270, 12),
        }
        try:
            result: dict[str, int | None] = {}
            for name, (address, count) in reads.items():
                reply = await client.read_holding_registers(address, count=count, device_id=4)
                result[name] = reply.exception_code if reply.isError() else None
            return result
        finally:
            client.close()

    assert serve(config, body) == {
        "probe": None,
        "display": None,
        "charger": None,
        "across_20016": 2,
        "gap": 2,
        "before_10101": 2,
        "past_25279": 2,
    }


def test_a_stale_link_from_a_crashed_run_is_replaced(tmp_path: Path) -> None:
    config = load_site(tmp_path, rtu("ups1", "must_ep20", "data/ups.tty", 10))
    stale = tmp_path / "data" / "ups.tty"
    stale.parent.mkdir(parents=True)
    stale.symlink_to("/dev/pts/does-not-exist")

    async def body(_lines: list[str]) -> str:
        return str(stale.readlink())

    assert serve(config, body).startswith("/dev/pts/")
    assert not stale.is_symlink()


def test_a_path_that_is_not_a_symlink_is_never_replaced(tmp_path: Path) -> None:
    config = load_site(tmp_path, rtu("ups1", "must_ep20", "data/ups.tty", 10))
    real = tmp_path / "data" / "ups.tty"
    real.parent.mkdir(parents=True)
    real.write_text("not a pty")

    async def body(_lines: list[str]) -> None:
        raise AssertionError("must not start")

    with pytest.raises(SerialLinkError, match="not a symlink"):
        serve(config, body)
    assert real.read_text() == "not a pty"


def test_a_busy_port_and_duplicate_unit_ids_are_clear_errors(tmp_path: Path) -> None:
    port = free_port()
    config = load_site(tmp_path, tcp("a", "janitza_umg509pro", port))
    twice = load_site(
        tmp_path / "twice",
        tcp("a", "janitza_umg509pro", port) + tcp("b", "heatpump_generic", port),
    )

    async def main() -> None:
        async with contextlib.AsyncExitStack() as stack:
            await start_all(config, None, stack)
            async with contextlib.AsyncExitStack() as second:
                with pytest.raises(SimulatorError, match=f"cannot listen on 127.0.0.1:{port}"):
                    await start_all(config, None, second)
        async with contextlib.AsyncExitStack() as stack:
            with pytest.raises(SimulatorError, match="unit id 1 is already used by a"):
                await start_all(twice, None, stack)

    asyncio.run(main())


def test_values_refresh_every_second(tmp_path: Path) -> None:
    port = free_port()
    config = load_site(tmp_path, tcp("umg509", "janitza_umg509pro", port))
    now = [FROZEN.timestamp()]
    model = device_model(config.devices[0], config)
    point = next(p for p in model.profile.points if p.name == "energy_active_import_total")

    async def main() -> list[float]:
        async with contextlib.AsyncExitStack() as stack:
            await modbus.start(config.devices, config, stack, clock=lambda: now[0])  # type: ignore[arg-type]
            client = AsyncModbusTcpClient("127.0.0.1", port=port)
            await client.connect()
            seen = []
            for step in (0.0, 0.5, 0.6, 3600.0):
                now[0] += step
                reply = await client.read_holding_registers(point.address, count=2, device_id=1)
                seen.append(float(decode_point(reply.registers, point)))
            client.close()
            return seen

    first, same_second, next_second, hour_later = asyncio.run(main())
    assert first == same_second
    assert not math.isnan(first)
    assert hour_later - first > 5_000
    assert next_second >= first


def test_coils_and_discrete_inputs_land_on_their_bit(tmp_path: Path) -> None:
    (tmp_path / "bits.yaml").write_text(
        """
manufacturer: Acme
model: Relay box
points:
  - {name: relay_a, address: 21, register_type: coil, data_type: bool, kind: state,
     labels: {1: closed}}
  - {name: relay_b, address: 23, register_type: coil, data_type: bool, kind: state}
  - {name: door, address: 3, register_type: discrete, data_type: bool, kind: state,
     labels: {1: open}}
"""
    )
    port = free_port()
    config = load_site(tmp_path, tcp("relays", "bits.yaml", port))

    async def body(_lines: list[str]) -> tuple[list[bool], list[bool], int]:
        client = AsyncModbusTcpClient("127.0.0.1", port=port)
        await client.connect()
        try:
            coils = await client.read_coils(21, count=3, device_id=1)
            door = await client.read_discrete_inputs(3, count=1, device_id=1)
            outside = await client.read_coils(40, count=1, device_id=1)
            return coils.bits[:3], door.bits[:1], outside.exception_code
        finally:
            client.close()

    assert serve(config, body) == ([True, False, False], [True], 2)
