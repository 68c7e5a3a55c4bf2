"""The B-route driver against the fake dongle, which runs in its own process on a real pty.

The simulator serves the meter as of a frozen instant and the driver is given the same clock,
so every value can be compared exactly with the meter model.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import math
import os
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from energy_pipeline.config import Config
from energy_pipeline.drivers.base import (
    DeviceConnectionError,
    DeviceError,
    DeviceTimeout,
    PortBusyError,
)
from energy_pipeline.drivers.echonet import build
from energy_pipeline.drivers.echonet.driver import BRouteMeter
from energy_pipeline.drivers.serial_lock import hold_port
from energy_pipeline.lake.device_state import StateFile, StateFiles
from energy_pipeline.profiles.echonet_names import METRICS
from energy_pipeline.simulators.echonet import DongleOptions, meter_model
from energy_pipeline_tests.echonet_support import (
    FROZEN,
    RBID,
    WRONG_PASSWORD,
    Simulator,
    driver_for,
    meter_device,
    meter_site,
    run_simulator,
    state_path,
)


@pytest.fixture
def sim(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> Iterator[Simulator]:
    yield from run_simulator(tmp_path, caplog)


def read_n(driver: BRouteMeter, n: int = 1) -> list[dict[str, float]]:
    async def go() -> list[dict[str, float]]:
        try:
            return [(await driver.read()).valid_values() for _ in range(n)]
        finally:
            await driver.close()

    return asyncio.run(go())


def expected(config: Config, **options: object) -> dict[str, float]:
    model = meter_model(meter_device(config), config, replace(DongleOptions(), **options))
    return model.values_at(FROZEN)


@pytest.mark.parametrize(
    "options",
    [
        (),
        ("--dialect", "dual"),
        ("--data-mode", "binary", "--no-echo"),
        ("--dialect", "dual", "--data-mode", "binary"),
    ],
    ids=["single-hex", "dual-hex", "single-binary-noecho", "dual-binary"],
)
def test_reads_every_metric_in_both_dialects_and_data_modes(
    sim: Simulator, options: tuple[str, ...]
) -> None:
    config = sim.start(*options)
    [values] = read_n(driver_for(config))
    assert values == expected(config)
    assert set(values) == set(METRICS)
    assert values["instant_power_w"] > 0 and values["current_t_a"] > 0
    saved = json.loads(state_path(config).read_text())
    assert saved["dual"] is ("dual" in options)


def test_scaling_and_a_single_phase_meter(sim: Simulator) -> None:
    options = {"single_phase": True, "coefficient": 10, "unit_code": 0x02}
    config = sim.start("--single-phase", "--coefficient", "10", "--unit-code", "0x02")
    [values] = read_n(driver_for(config))
    assert values == expected(config, **options)
    assert "current_t_a" not in values
    assert values["current_a"] == values["current_r_a"]


def test_build_gives_each_meter_the_state_store_of_its_key(sim: Simulator) -> None:
    config = sim.start()
    keys: list[str] = []

    def stores(key: str) -> StateFile:
        keys.append(key)
        return StateFiles(config.data_dir)(key)

    [driver] = build([meter_device(config)], config, stores)
    assert isinstance(driver, BRouteMeter) and driver.device_id == "meter1"
    assert keys == ["echonet-meter1"]
    asyncio.run(driver.read())
    asyncio.run(driver.close())
    assert json.loads(state_path(config).read_text())["pan"] is not None


def test_failed_scans_are_retried_and_a_restart_skips_the_scan(
    sim: Simulator, caplog: pytest.LogCaptureFixture
) -> None:
    config = sim.start("--fail-scans", "2")
    [values] = read_n(driver_for(config))
    assert values == expected(config)
    scans = [r.getMessage() for r in caplog.records if "SKSCAN" in r.getMessage()]
    assert [s.split()[-1] for s in scans] == ["4", "5", "6"]
    caplog.clear()
    [again] = read_n(driver_for(config))
    assert again == values
    assert "SKSCAN" not in caplog.text and "SKJOIN" in caplog.text


def test_scan_duration_keeps_growing_across_polls(sim: Simulator) -> None:
    config = meter_site(sim.folder, "driver.yaml", retries=0)
    sim.start("--fail-scans", "1")
    driver = driver_for(config)

    async def go() -> tuple[DeviceError, dict[str, float]]:
        with pytest.raises(DeviceConnectionError, match=r"active scan \(duration 4\)") as err:
            await driver.read()
        sample = await driver.read()
        await driver.close()
        return err.value, sample.valid_values()

    error, values = asyncio.run(go())
    assert error.kind == "connection"
    assert values == expected(config)


def test_a_failed_join_forgets_the_scan_and_rescans_after_a_backoff(
    sim: Simulator, caplog: pytest.LogCaptureFixture
) -> None:
    config = sim.start("--fail-joins", "1")
    sleeps: list[float] = []
    [values] = read_n(driver_for(config, sleep=sleeps.append))
    assert values == expected(config)
    assert sleeps == [0.01]
    assert "EVENT 24" in caplog.text
    assert caplog.text.count("SKSCAN") == 2


def test_wrong_credentials_are_a_typed_error_without_the_secret(
    sim: Simulator, caplog: pytest.LogCaptureFixture
) -> None:
    sim.start()
    config = meter_site(sim.folder, "driver.yaml", password=WRONG_PASSWORD, retries=1)
    sleeps: list[float] = []
    driver = driver_for(config, sleep=sleeps.append)
    with pytest.raises(DeviceConnectionError, match="EVENT 24") as err:
        read_n(driver)
    assert WRONG_PASSWORD not in str(err.value) and RBID not in str(err.value)
    assert sleeps == [0.01]
    assert json.loads(state_path(config).read_text())["pan"] is None


def test_session_expiry_reauthenticates_without_losing_a_poll(
    sim: Simulator, caplog: pytest.LogCaptureFixture
) -> None:
    config = sim.start("--expire-after", "2")
    polls = read_n(driver_for(config), 4)
    assert polls == [expected(config)] * 4
    assert "EVENT 29" in caplog.text and "re-authenticating" in caplog.text


@pytest.mark.slow
@pytest.mark.parametrize(
    ("mode", "every"),
    # A truncated binary datagram swallows the bytes after it (its length says so), so the
    # real reply behind it is lost and the retry must get through: garble every other one.
    [("hex", "1"), ("binary", "2")],
)
def test_garbage_and_truncated_frames_never_break_a_poll(
    sim: Simulator, mode: str, every: str
) -> None:
    config = sim.start("--garble-every", every, "--data-mode", mode)
    driver = driver_for(config)
    polls = read_n(driver, 3)
    assert polls == [expected(config)] * 3
    assert driver.last_attempts == (1 if mode == "hex" else 2)


@pytest.mark.parametrize(
    ("options", "attempts"),
    [(("--reply-before-ok",), 1), (("--tx-fail-every", "2"), 2), (("--reply-delay", "0.05"), 1)],
    ids=["reply-overtakes-ok", "transmission-failures", "radio-latency"],
)
def test_dongle_timing_quirks_are_absorbed(
    sim: Simulator, options: tuple[str, ...], attempts: int
) -> None:
    config = sim.start(*options)
    driver = driver_for(config)
    assert read_n(driver, 3) == [expected(config)] * 3
    assert driver.last_attempts == attempts


def test_a_vanishing_dongle_is_reopened_and_rejoined_without_a_scan(
    sim: Simulator, caplog: pytest.LogCaptureFixture
) -> None:
    config = sim.start("--vanish-after", "6", "--vanish-for", "0.3")
    driver = driver_for(config)

    async def go() -> tuple[list[DeviceError], dict[str, float]]:
        errors: list[DeviceError] = []
        for _ in range(3):
            await driver.read()
        for _ in range(50):
            await asyncio.sleep(0.1)
            try:
                values = (await driver.read()).valid_values()
            except DeviceError as exc:
                errors.append(exc)
                continue
            if errors:
                await driver.close()
                return errors, values
        raise AssertionError("the driver never came back")

    errors, values = asyncio.run(go())
    assert values == expected(config)
    assert {e.kind for e in errors} <= {"connection", "timeout"}
    assert caplog.text.count("SKSCAN") == 1
    assert caplog.text.count("dongle ready") == 2


def test_a_missing_port_is_a_connection_error(tmp_path: Path) -> None:
    config = meter_site(tmp_path, "driver.yaml")
    with pytest.raises(DeviceConnectionError, match="cannot open the serial port: No such file"):
        read_n(driver_for(config))


def test_a_port_held_by_another_process_is_busy(sim: Simulator) -> None:
    config = sim.start()
    port = config.resolve(meter_device(config).connection.serial_port)
    with hold_port(port, config.data_dir, owner="collector"), pytest.raises(PortBusyError):
        read_n(driver_for(config))


def test_counter_wrap_is_unwrapped_and_remembered(sim: Simulator) -> None:
    config = meter_site(sim.folder, "driver.yaml")
    model = meter_model(meter_device(config), config, DongleOptions())
    modulus_kwh = model.scale.modulus * model.scale.kwh_per_count
    offset = modulus_kwh - model.energy_kwh(FROZEN) + 1.05
    sim.start("--offset-kwh", str(offset))
    path = state_path(config)
    path.parent.mkdir(parents=True)
    last = model.scale.modulus - 5
    path.write_text(json.dumps({"counters": {"E0": {"wraps": 0, "last": last}}}))
    [values] = read_n(driver_for(config))
    assert values["cumulative_power_kwh"] == pytest.approx(modulus_kwh + 1.0, abs=0.11)
    saved = json.loads(path.read_text())
    assert saved["counters"]["E0"]["wraps"] == 1


def test_history_day_gives_the_meters_half_hour_readings(sim: Simulator) -> None:
    config = sim.start()
    driver = driver_for(config)
    model = meter_model(meter_device(config), config, DongleOptions())

    async def go() -> list[tuple[float, float]]:
        try:
            return await driver.history_day(1)
        finally:
            await driver.close()

    rows = asyncio.run(go())
    assert len(rows) == 48
    first_ts, first_kwh = rows[0]
    at = datetime.fromtimestamp(first_ts, UTC)
    assert at == datetime(2026, 3, 8, 15, 0, tzinfo=UTC)  # 2026-03-09 00:00 in Tokyo
    assert first_kwh == model.scale.kwh(model.counts(at))
    assert all(b[1] >= a[1] for a, b in itertools.pairwise(rows))
    assert not any(math.isnan(kwh) for _, kwh in rows)


def test_a_silent_dongle_times_out_without_blocking_the_event_loop(tmp_path: Path) -> None:
    config = meter_site(tmp_path, "driver.yaml")
    link = config.resolve(meter_device(config).connection.serial_port)
    link.parent.mkdir(parents=True)
    master, slave = os.openpty()
    link.symlink_to(os.ttyname(slave))
    driver = driver_for(config)

    async def go() -> tuple[list[DeviceError], int]:
        ticks = 0
        errors: list[DeviceError] = []

        async def ticker() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        task = asyncio.create_task(ticker())
        for _ in range(2):
            try:
                await driver.read()
            except DeviceError as exc:
                errors.append(exc)
        task.cancel()
        await driver.close()
        return errors, ticks

    try:
        errors, ticks = asyncio.run(go())
    finally:
        os.close(master)
        os.close(slave)
    # The second poll retries cleanly (the first released the port and its lock).
    assert [type(e) for e in errors] == [DeviceTimeout, DeviceTimeout]
    assert ticks >= 80  # two 1 s command timeouts passed while the loop kept running
