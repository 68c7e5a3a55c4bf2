"""The fake dongle in its own process, and the configs and drivers the B-route tests use."""

from __future__ import annotations

import logging
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from energy_pipeline.config import Config, EchonetDevice
from energy_pipeline.drivers.echonet.driver import STATE_KEY, BRouteMeter, Timing
from energy_pipeline.lake.device_state import StateFiles, device_state_path
from energy_pipeline_tests.conftest import cli_env
from energy_pipeline_tests.kit.sites import load_site

FROZEN = datetime(2026, 3, 10, 5, 12, 30, tzinfo=UTC)
RBID = "00112233445566778899AABBCCDDEEFF"
PASSWORD = "Zq7PassWord9"
WRONG_PASSWORD = "Wr0ngPassw0r"
FAST = Timing(
    request_timeout=0.4, command_timeout=1.0, join_timeout=2.0, backoff=0.01, backoff_cap=0.05
)


def meter_site(folder: Path, name: str, *, password: str = PASSWORD, retries: int = 2) -> Config:
    """The B-route site: one meter on the simulator's serial link, as `folder/name`."""
    meter = {
        "id": "meter1",
        "driver": "echonet_broute",
        "connection": {"serial_port": "data/sim/meter1.tty", "timeout": 1.0, "retries": retries},
        "credentials": {"rbid": RBID, "password": password},
    }
    return load_site(folder, [meter], site={"name": "demo", "timezone": "Asia/Tokyo"}, name=name)


def meter_device(config: Config) -> EchonetDevice:
    device = config.device("meter1")
    assert isinstance(device, EchonetDevice)
    return device


class Simulator:
    def __init__(self, folder: Path):
        self.folder = folder
        self.procs: list[tuple[subprocess.Popen[str], Path]] = []

    def start(self, *options: str, at: datetime = FROZEN) -> Config:
        """One simulator process serving the meter as of `at`; returns the config it uses."""
        config = meter_site(self.folder, "sim.yaml")
        errfile = self.folder / f"sim-{len(self.procs)}.err"
        with open(errfile, "w") as err:
            proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "energy_pipeline.simulators.echonet",
                    "--config",
                    str(config.path),
                    "--device",
                    "meter1",
                    "--frozen-at",
                    at.isoformat(),
                    *options,
                ],
                stdout=subprocess.PIPE,
                stderr=err,
                text=True,
                env=cli_env(),
            )
        self.procs.append((proc, errfile))
        assert proc.stdout is not None
        ready = proc.stdout.readline()
        assert "echonet b-route dongle on" in ready, errfile.read_text()
        return config

    def stop(self) -> list[str]:
        logs = []
        for proc, errfile in self.procs:
            proc.terminate()
            proc.wait(10)
            logs.append(errfile.read_text())
        return logs

    def unplug(self) -> None:
        """The newest dongle disappears: its process ends, the port link goes with it."""
        proc, _ = self.procs[-1]
        proc.terminate()
        proc.wait(10)


def run_simulator(folder: Path, caplog: pytest.LogCaptureFixture) -> Iterator[Simulator]:
    """Body of the `sim` fixtures: no credential in any simulator log or in the test's log."""
    caplog.set_level(logging.DEBUG)
    simulator = Simulator(folder)
    yield simulator
    for text in [*simulator.stop(), caplog.text]:
        for secret in (PASSWORD, RBID, WRONG_PASSWORD):
            assert secret not in text


def state_path(config: Config, device_id: str = "meter1") -> Path:
    """Where the collector's state store keeps a meter's state."""
    return device_state_path(config.data_dir, STATE_KEY.format(device_id=device_id))


def driver_for(config: Config, **kwargs: object) -> BRouteMeter:
    """A meter driver with fast timings and the collector's file-backed state store."""
    store = StateFiles(config.data_dir)(STATE_KEY.format(device_id="meter1"))
    defaults: dict[str, object] = {
        "state": store,
        "timing": FAST,
        "now": lambda: FROZEN,
        "sleep": lambda s: None,
    }
    defaults.update(kwargs)
    return BRouteMeter(meter_device(config), config, **defaults)  # type: ignore[arg-type]
