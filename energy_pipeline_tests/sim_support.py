"""Configs for simulator tests: written to tmp_path, ports chosen free on loopback."""

from __future__ import annotations

import socket
from pathlib import Path

from energy_pipeline.config import Config, load_config


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_config(folder: Path, devices_yaml: str, site: str = "plant-a") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "energy-pipeline.yaml"
    path.write_text(
        f"site: {{name: {site}, timezone: Europe/Berlin}}\n"
        "storage: {data_dir: data}\n"
        f"devices:\n{devices_yaml}"
    )
    return path


def site_config(folder: Path, devices_yaml: str, site: str = "plant-a") -> Config:
    return load_config(write_config(folder, devices_yaml, site))


# One device per built-in Modbus profile, for model tests (YAML list items under devices:).
BUILTIN_MODBUS_DEVICES = """
  - {id: umg509, driver: modbus, profile: janitza_umg509pro,
     connection: {transport: tcp, host: 127.0.0.1, port: 15020}}
  - {id: hp, driver: modbus, profile: heatpump_generic,
     connection: {transport: tcp, host: 127.0.0.1, port: 15021}}
  - {id: lux, driver: modbus, profile: luxtronik_shi,
     connection: {transport: tcp, host: 127.0.0.1, port: 15022}}
  - {id: ups1, driver: modbus, profile: must_ep20,
     connection: {transport: rtu, serial_port: data/sim/ups1.tty}}
  - {id: pv, driver: modbus, profile: must_pv1800,
     connection: {transport: rtu, serial_port: data/sim/pv.tty}}
"""
