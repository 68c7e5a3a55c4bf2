"""Backfill after an outage: the meter's half-hour history fills the gap, once, in the lake.

The driver runs against the fake dongle in its own process on a real pty. Time passes by
unplugging the dongle and plugging in one that serves the meter as of a later frozen instant,
with the driver's clock moved along, so every backfilled value compares exactly with the model.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from energy_pipeline.collector.landing import Landing
from energy_pipeline.collector.state import CollectorState, DeviceState
from energy_pipeline.config import Config
from energy_pipeline.drivers.base import DeviceError
from energy_pipeline.drivers.echonet.driver import BACKFILL_DAYS_PER_POLL
from energy_pipeline.drivers.echonet.meter import SLOT_SECONDS
from energy_pipeline.readings import Backfill, PollOutcome, Sample
from energy_pipeline.simulators.echonet import DongleOptions, MeterModel, meter_model
from energy_pipeline_tests.echonet_support import (
    Simulator,
    driver_for,
    meter_device,
    meter_site,
    run_simulator,
    state_path,
)

T1 = datetime(2026, 3, 9, 14, 40, tzinfo=UTC)  # 23:40 in Tokyo
T2 = T1 + timedelta(minutes=100)  # 01:20 the next day: slots 00:00, 00:30, 01:00 were missed
BACKFILLED = (
    "historical_timestamp",
    "historical_cumulative_power_kwh",
    "recent_30min_timestamp",
    "recent_30min_consumption_kwh",
)

Rows = dict[tuple[datetime, str], float]


@pytest.fixture
def sim(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> Iterator[Simulator]:
    yield from run_simulator(tmp_path, caplog)


class Clock:
    def __init__(self, now: datetime):
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def rows_of(sample: Sample) -> Rows:
    backfill = sample.backfill
    assert backfill is not None
    assert backfill.ts_us.dtype == np.int64 and backfill.values.dtype == np.float64
    instants = [datetime.fromtimestamp(us / 1e6, UTC) for us in backfill.ts_us.tolist()]
    rows = dict(
        zip(zip(instants, backfill.metrics, strict=True), backfill.values.tolist(), strict=True)
    )
    assert len(rows) == len(backfill)  # no (ts, metric) twice
    return rows


def slots_between(start: datetime, end: datetime) -> list[datetime]:
    first = datetime.fromtimestamp((start.timestamp() // SLOT_SECONDS + 1) * SLOT_SECONDS, UTC)
    count = int((end - first).total_seconds() // SLOT_SECONDS) + 1
    instants = (first + timedelta(seconds=SLOT_SECONDS * k) for k in range(count))
    return [s for s in instants if s < end]


def model_rows(model: MeterModel, slots: list[datetime]) -> Rows:
    """What a live poll at each slot instant reports for the slot: the backfill's reference."""
    return {(s, name): model.values_at(s)[name] for s in slots for name in BACKFILLED}


def model_of(config: Config, offset_kwh: float = 0.0) -> MeterModel:
    return meter_model(meter_device(config), config, DongleOptions(offset_kwh=offset_kwh))


@pytest.mark.slow
@pytest.mark.parametrize("wrap", [False, True], ids=["plain", "counter-wraps-in-the-gap"])
def test_a_gap_across_midnight_is_backfilled_with_the_models_values(
    sim: Simulator, wrap: bool
) -> None:
    offset = 0.0
    if wrap:  # the 7-digit counter passes 10^7 at 00:25, between the missed slots
        plain = model_of(meter_site(sim.folder, "sim.yaml"))
        modulus_kwh = plain.scale.modulus * plain.scale.kwh_per_count
        offset = modulus_kwh - plain.energy_kwh(T1 + timedelta(minutes=45))
    options = ("--offset-kwh", repr(offset))
    config = sim.start(*options, at=T1)
    model = model_of(config, offset)
    clock = Clock(T1)
    driver = driver_for(config, now=clock)

    async def go() -> tuple[Sample, list[DeviceError], Sample]:
        first = await driver.read()
        sim.unplug()
        clock.now = T1 + timedelta(minutes=40)
        errors = []
        try:
            await driver.read()
        except DeviceError as exc:
            errors.append(exc)
        sim.start(*options, at=T2)
        clock.now = T2
        after = await driver.read()
        await driver.close()
        return first, errors, after

    first, errors, after = asyncio.run(go())
    assert first.backfill is None
    assert len(errors) == 1  # the dongle really was gone
    slots = slots_between(T1, T2)
    assert [s.astimezone(model.tz).strftime("%H:%M") for s in slots] == ["00:00", "00:30", "01:00"]
    assert rows_of(after) == model_rows(model, slots)
    # The poll's own readings are untouched by the backfill.
    assert after.valid_values() == model.values_at(T2)


@pytest.mark.slow
def test_a_long_outage_is_caught_up_a_few_days_per_poll(sim: Simulator) -> None:
    config = sim.start(at=T1)
    model = model_of(config)
    t3 = T1 + timedelta(days=3)
    clock = Clock(T1)
    driver = driver_for(config, now=clock)

    async def go() -> list[Sample]:
        samples = [await driver.read()]
        sim.unplug()
        with pytest.raises(DeviceError):
            await driver.read()
        sim.start(at=t3)
        for k in range(3):
            clock.now = t3 + timedelta(seconds=10 * k)
            samples.append(await driver.read())
        await driver.close()
        return samples

    _, catching_up, caught_up, steady = asyncio.run(go())
    first, second = rows_of(catching_up), rows_of(caught_up)
    assert steady.backfill is None
    newest_first = max(ts for ts, _ in first).astimezone(model.tz)
    assert newest_first.strftime("%d %H:%M") == "10 23:30"  # days 9 and 10 of March
    assert BACKFILL_DAYS_PER_POLL == 2
    assert not first.keys() & second.keys()
    assert {**first, **second} == model_rows(model, slots_between(T1, t3))


@pytest.mark.slow
def test_a_restart_backfills_from_the_state_file(sim: Simulator) -> None:
    config = sim.start(at=T1)
    model = model_of(config)
    path = state_path(config)
    clock = Clock(T1)
    before = driver_for(config, now=clock)
    later = T1 + timedelta(seconds=10)

    async def first_run() -> str | None:
        await before.read()
        clock.now = later
        await before.read()
        # Saved one poll late: a crash now would re-read from the first poll on.
        saved = json.loads(path.read_text())["covered_until"]
        await before.close()
        return saved

    assert asyncio.run(first_run()) == T1.isoformat()
    assert json.loads(path.read_text())["covered_until"] == later.isoformat()
    sim.unplug()
    sim.start(at=T2)
    after = driver_for(config, now=lambda: T2)

    async def second_run() -> Sample:
        try:
            return await after.read()
        finally:
            await after.close()

    assert rows_of(asyncio.run(second_run())) == model_rows(model, slots_between(later, T2))


# -- the collector's durable path -------------------------------------------------------------

S = datetime(2025, 11, 23, 4, 0, tzinfo=UTC)  # a half-hour slot, and a minute the lake has
NAMES = ("instant_power_w", "historical_cumulative_power_kwh")


class StillClock:
    def __init__(self, now: float):
        self.now = now

    def time(self) -> float:
        return self.now


def poll(
    ts: datetime, values: tuple[float, float], backfill: Backfill | None = None
) -> PollOutcome:
    sample = Sample(NAMES, np.array(values), backfill=backfill)
    return PollOutcome("meter1", ts, ts, ts + timedelta(seconds=1), 1, sample)


def landing(config: Config, now: datetime) -> Landing:
    state = CollectorState("main", 1, now)
    state.devices["meter1"] = DeviceState("meter1", 10.0)
    return Landing(config, state, StillClock(now.timestamp()))  # type: ignore[arg-type]


def lake(data_dir: Path) -> list[tuple[str, datetime, str, float]]:
    files = sorted((data_dir / "raw_readings").rglob("*.parquet"))
    table = pa.concat_tables([pq.read_table(f) for f in files])
    return sorted(
        zip(*(table[c].to_pylist() for c in ("device_id", "ts", "metric", "value")), strict=True)
    )


def test_backfilled_slots_land_in_their_minutes_exactly_once(tmp_path: Path) -> None:
    config = Config.model_validate({"storage": {"data_dir": str(tmp_path / "data")}})
    p = S + timedelta(hours=1)
    slots = [S, S + timedelta(minutes=30), p]
    backfill = Backfill(
        np.array([int(t.timestamp() * 1e6) for t in slots], np.int64),
        ("historical_cumulative_power_kwh",) * 3,
        np.array([100.0, 100.4, 100.9]),
    )
    # The poll at S read power but not the fixed-time reading; its minute is sealed.
    first = landing(config, S + timedelta(minutes=2))
    first.stage([poll(S, (640.0, np.nan))])
    first.persist(None)
    first.settle()
    assert list((tmp_path / "data" / "raw_readings").rglob("*.parquet"))
    # After the outage, a poll brings the slots back; it is acknowledged (in the WAL) and the
    # process dies before sealing (a poll still in flight at S held sealing back).
    first.clock.now = (p + timedelta(seconds=5)).timestamp()  # type: ignore[attr-defined]
    first.stage([poll(p, (700.0, 100.9), backfill)])
    first.persist(S.timestamp())
    first.close()
    # The restart replays the WAL; the driver, whose state was saved one poll late, brings the
    # same slots again with its next poll.
    second = landing(config, p + timedelta(minutes=1))
    second.recover()
    second.stage([poll(p + timedelta(seconds=10), (710.0, 100.9), backfill)])
    second.final_seal()
    second.close()
    cumulative = "historical_cumulative_power_kwh"
    assert lake(tmp_path / "data") == [
        ("meter1", S, cumulative, 100.0),  # shares its instant with the poll's power: kept
        ("meter1", S, "instant_power_w", 640.0),
        ("meter1", S + timedelta(minutes=30), cumulative, 100.4),
        ("meter1", p, cumulative, 100.9),  # the poll's own, not the backfill's as well
        ("meter1", p, "instant_power_w", 700.0),
        ("meter1", p + timedelta(seconds=10), cumulative, 100.9),
        ("meter1", p + timedelta(seconds=10), "instant_power_w", 710.0),
    ]
