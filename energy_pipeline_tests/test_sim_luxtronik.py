"""The simulated Luxtronik heat pump: deterministic, counters that only grow, values that follow
the site's weather, and a server that is never a write target."""

from __future__ import annotations

import asyncio
import contextlib
import struct
from datetime import UTC, datetime, timedelta

import pytest

from energy_pipeline.config import Config
from energy_pipeline.drivers.luxtronik.decode import decode
from energy_pipeline.drivers.luxtronik.driver import LuxtronikDriver
from energy_pipeline.simulators import SimulatorError
from energy_pipeline.simulators.luxtronik import HeatPumpModel, LuxtronikServer, device_model, start
from energy_pipeline_tests.kit.ports import free_port, taken_port

COUNTERS = (
    "ID_WEB_Zaehler_BetrZeitVD1",
    "ID_WEB_Zaehler_BetrZeitImpVD1",
    "ID_WEB_Zaehler_BetrZeitHz",
    "ID_WEB_Zaehler_BetrZeitBW",
    "ID_WEB_WMZ_Heizung",
    "ID_WEB_WMZ_Brauchwasser",
    "ID_WEB_WMZ_Seit",
)
WINTER = datetime(2026, 1, 14, tzinfo=UTC)
SUMMER = datetime(2026, 7, 14, tzinfo=UTC)


def config(port: int = 8889) -> Config:
    return Config.model_validate(
        {
            "site": {"name": "plant-a", "timezone": "Europe/Berlin"},
            "devices": [
                {
                    "id": "lux1",
                    "driver": "luxtronik",
                    "connection": {"host": "127.0.0.1", "port": port, "timeout": 1.0},
                }
            ],
        }
    )


def model() -> HeatPumpModel:
    cfg = config()
    return device_model(cfg.devices[0], cfg)


def test_same_instant_gives_the_same_values_whatever_was_asked_first() -> None:
    ts = WINTER + timedelta(hours=7, minutes=13, seconds=30)
    late_first, early_first = model(), model()
    late = late_first.values_at(ts)
    early_first.values_at(datetime(2020, 3, 1, tzinfo=UTC))
    assert early_first.values_at(ts) == late


def test_values_are_the_drivers_names() -> None:
    m = model()
    assert set(m.values_at(WINTER)) == set(decode(*m.raw_at(WINTER)).names)


def test_counters_only_grow_and_the_compressor_cycles() -> None:
    m = model()
    previous: dict[str, float] | None = None
    compressor = set()
    modes = set()
    for step in range(0, 2 * 86400, 7 * 60 + 3):
        values = m.values_at(WINTER + timedelta(seconds=step))
        compressor.add(values["ID_WEB_VD1out"])
        modes.add(values["ID_WEB_WP_BZ_akt"])
        if previous is not None:
            for name in COUNTERS:
                assert values[name] >= previous[name], name
        previous = values
    assert compressor == {0.0, 1.0}
    assert {0.0, 1.0} <= modes


def test_a_cold_day_runs_the_compressor_longer_and_hotter() -> None:
    m = model()

    def day(start: datetime) -> tuple[float, float, float]:
        begin, end = m.values_at(start), m.values_at(start + timedelta(days=1))
        hours = (end[COUNTERS[0]] - begin[COUNTERS[0]]) / 3600
        return hours, begin["ID_WEB_Temperatur_TA"], begin["ID_WEB_Sollwert_TRL_HZ"]

    winter_hours, winter_ta, winter_target = day(WINTER)
    summer_hours, summer_ta, summer_target = day(SUMMER)
    assert winter_ta < summer_ta
    assert winter_hours > 2 * summer_hours
    assert winter_target > summer_target


def test_the_server_refuses_writes_and_keeps_serving() -> None:
    cfg = config(free_port())

    async def go() -> tuple[bytes, list[str], int]:
        async with contextlib.AsyncExitStack() as stack:
            lines = await start(cfg.devices, cfg, stack)
            port = int(lines[0].rsplit(":", 1)[1])
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(struct.pack(">iii", 3002, 2, 650))
            answer = await asyncio.wait_for(reader.read(), 2.0)
            writer.close()
            drv = LuxtronikDriver("lux1", "127.0.0.1", port, timeout=1.0, retries=0)
            sample = await drv.read()
            return answer, lines, int(sample.values[sample.names.index("ID_Einst_BWS_akt")])

    answer, lines, setpoint = asyncio.run(go())
    assert answer == b""
    assert lines[0].startswith("lux1: luxtronik tcp 127.0.0.1:")
    assert setpoint == 50


@pytest.mark.parametrize("ts", [WINTER, SUMMER])
def test_plausible_ranges(ts: datetime) -> None:
    values = model().values_at(ts + timedelta(hours=10, minutes=5))
    assert -25 < values["ID_WEB_Temperatur_TA"] < 40
    assert 15 < values["ID_WEB_Temperatur_TVL"] < 60
    assert 40 <= values["ID_WEB_Temperatur_TBW"] <= 50
    assert 0 <= values["ID_WEB_LIN_HD"] < 30


def test_a_busy_port_is_a_simulator_error() -> None:
    with taken_port() as port:
        cfg = config(port)

        async def go() -> None:
            async with contextlib.AsyncExitStack() as stack:
                await start(cfg.devices, cfg, stack)

        with pytest.raises(SimulatorError, match=r"lux1: cannot listen on 127\.0\.0\.1"):
            asyncio.run(go())


def test_what_the_server_sends_is_what_the_model_says_for_that_instant() -> None:
    """Live polls and `simulate-history` agree: the driver reads the model's values."""
    instant = WINTER + timedelta(hours=5, minutes=41, seconds=17)
    m = model()

    async def go() -> dict[str, float]:
        server = LuxtronikServer(m, "127.0.0.1", 0, clock=lambda: instant)
        await server.start()
        try:
            drv = LuxtronikDriver("lux1", "127.0.0.1", server.port, timeout=1.0, retries=0)
            return (await drv.read()).valid_values()
        finally:
            await server.stop()

    assert asyncio.run(go()) == m.values_at(instant)
