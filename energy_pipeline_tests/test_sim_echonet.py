"""The smart-meter model behind the fake dongle, and the dongle's pty link discipline."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from energy_pipeline.config import Config
from energy_pipeline.drivers.echonet import meter as m
from energy_pipeline.simulators import device_model, start_all
from energy_pipeline.simulators.echonet import DongleOptions, meter_model
from energy_pipeline_tests.echonet_support import meter_device, meter_site

TS = datetime(2026, 7, 1, 3, 17, 42, tzinfo=UTC)  # 12:17:42 in Tokyo


@pytest.fixture
def config(tmp_path: Path) -> Config:
    return meter_site(tmp_path, "site.yaml")


def test_values_are_deterministic_and_counters_only_grow(config: Config) -> None:
    model = device_model(meter_device(config), config)
    assert model.values_at(TS) == device_model(meter_device(config), config).values_at(TS)
    readings = [model.values_at(TS + timedelta(minutes=7 * i)) for i in range(300)]
    cumulative = [r["cumulative_power_kwh"] for r in readings]
    assert all(b >= a for a, b in itertools.pairwise(cumulative))
    assert cumulative[-1] > cumulative[0]
    assert all(100 < r["instant_power_w"] < 6000 for r in readings)


def test_energy_over_an_hour_matches_the_power_it_reports(config: Config) -> None:
    model = meter_model(meter_device(config), config, DongleOptions(unit_code=0x03))
    start, end = TS, TS + timedelta(hours=1)
    used = (
        model.values_at(end)["cumulative_power_kwh"]
        - model.values_at(start)["cumulative_power_kwh"]
    )
    mean_w = sum(model.power_w(start + timedelta(minutes=i)) for i in range(60)) / 60
    assert used == pytest.approx(mean_w / 1000, rel=0.02)


def test_half_hour_values_come_from_the_last_local_boundary(config: Config) -> None:
    values = device_model(meter_device(config), config).values_at(TS)
    boundary = datetime(2026, 7, 1, 3, 0, tzinfo=UTC)  # 12:00 Tokyo
    assert values["historical_timestamp"] == boundary.timestamp()
    assert values["recent_30min_timestamp"] == boundary.timestamp()
    assert 0 < values["recent_30min_consumption_kwh"] < 5
    assert values["current_a"] == pytest.approx(values["current_r_a"] + values["current_t_a"])


def test_history_matches_the_model_and_marks_future_slots(config: Config) -> None:
    model = device_model(meter_device(config), config)
    day, slots = m.history(model.property(m.EPC_HISTORY, TS, 0) or b"")
    assert day == 0
    assert m.newest_slot(slots) == 24  # 12:00
    assert slots[25:] == [None] * 23
    noon = datetime(2026, 7, 1, 3, 0, tzinfo=UTC)
    assert slots[24] == model.counts(noon) % model.scale.modulus
    _, yesterday = m.history(model.property(m.EPC_HISTORY, TS, 1) or b"")
    assert None not in yesterday


def test_property_map_leaves_out_an_unused_coefficient(config: Config) -> None:
    from energy_pipeline.drivers.echonet import frame as el

    plain = device_model(meter_device(config), config)
    scaled = meter_model(meter_device(config), config, DongleOptions(coefficient=10))
    assert m.EPC_COEFFICIENT not in el.property_map(plain.property(m.EPC_GET_MAP, TS, 0) or b"")
    assert plain.property(m.EPC_COEFFICIENT, TS, 0) is None
    assert m.EPC_COEFFICIENT in el.property_map(scaled.property(m.EPC_GET_MAP, TS, 0) or b"")


def test_start_links_the_pty_and_refuses_to_replace_a_real_file(config: Config) -> None:
    link = config.base_dir / "data" / "sim" / "meter1.tty"

    async def serve() -> str:
        async with contextlib.AsyncExitStack() as stack:
            [line] = await start_all(config, None, stack)
            assert link.is_symlink() and str(link.readlink()).startswith("/dev/pts/")
            return line

    assert "meter1" in asyncio.run(serve())
    assert not link.exists()
    link.parent.mkdir(parents=True, exist_ok=True)
    link.write_text("not a tty")

    async def refuse() -> None:
        async with contextlib.AsyncExitStack() as stack:
            await start_all(config, None, stack)

    with pytest.raises(FileExistsError, match="not a symlink"):
        asyncio.run(refuse())
    assert link.read_text() == "not a tty"
