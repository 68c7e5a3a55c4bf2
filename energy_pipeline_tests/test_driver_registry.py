"""Every driver family in one shape: built from the table, with the members the collector uses."""

from __future__ import annotations

from pathlib import Path

from energy_pipeline.config import DRIVER_NAMES
from energy_pipeline.drivers.registry import FAMILIES, build_drivers
from energy_pipeline.lake.device_state import StateFiles
from energy_pipeline_tests.kit.sites import load_site

DEVICES = """
  - {id: hp, driver: modbus, profile: heatpump_generic,
     connection: {transport: tcp, host: 127.0.0.1, port: 15021, timeout: 0.5, retries: 3}}
  - {id: ups1, driver: modbus, profile: must_ep20,
     connection: {transport: rtu, serial_port: data/bus.tty, unit_id: 10}}
  - {id: ups2, driver: modbus, profile: must_ep20,
     connection: {transport: rtu, serial_port: data/link.tty, unit_id: 11}}
  - {id: lux1, driver: luxtronik, connection: {host: 127.0.0.1, timeout: 2.0, retries: 1}}
  - id: meter1
    driver: echonet_broute
    connection: {serial_port: data/wisun.tty, timeout: 4.0, retries: 2}
    credentials: {rbid: "00112233445566778899AABBCCDDEEFF", password: "Zq7PassWord9"}
"""


def test_the_table_covers_every_driver_name_of_the_config() -> None:
    assert sorted(FAMILIES) == sorted(DRIVER_NAMES)


def test_every_driver_declares_attempts_budget_and_bus(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "bus.tty").touch()
    (tmp_path / "data" / "link.tty").symlink_to(tmp_path / "data" / "bus.tty")
    config = load_site(tmp_path, DEVICES)
    drivers = build_drivers(config, state=StateFiles(config.data_dir))
    assert list(drivers) == ["hp", "ups1", "ups2", "lux1", "meter1"]
    budgets = {dev_id: d.read_budget for dev_id, d in drivers.items()}
    # timeout x (retries + 1) + 1 s, from each device's own connection settings
    assert budgets == {"hp": 3.0, "ups1": 4.0, "ups2": 4.0, "lux1": 5.0, "meter1": 13.0}
    assert all(d.last_attempts == 0 for d in drivers.values())
    bus = str((tmp_path / "data" / "bus.tty").resolve())
    assert drivers["ups1"].bus_key == drivers["ups2"].bus_key == ("serial", bus)
    assert drivers["hp"].bus_key == ("tcp", "127.0.0.1", "15021")
    assert drivers["lux1"].bus_key is None
    wisun = str((tmp_path / "data" / "wisun.tty").resolve())
    assert drivers["meter1"].bus_key == ("serial", wisun)
