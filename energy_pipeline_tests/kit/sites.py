"""Site configs for tests, written as a user would write them and loaded by the real loader.

Sections given as dicts are written as YAML flow mappings; `devices` may also be YAML list
items as text, which keeps a test's devices readable next to the assertions about them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from energy_pipeline.config import Config, load_config

PLANT = {"name": "plant-a", "timezone": "Europe/Berlin"}
"""The site most tests use."""

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


def write_site(
    folder: Path,
    devices: str | list[dict[str, Any]] = "",
    *,
    site: dict[str, Any] | None = PLANT,
    data_dir: str | Path | None = "data",
    collector: dict[str, Any] | None = None,
    profiles: dict[str, str] | None = None,
    extra: str = "",
    name: str = "site.yaml",
) -> Path:
    """`folder/name` with the given sections (`site` or `data_dir` None: no such section), profile
    files beside it (`profiles`: file name -> YAML) and `extra` YAML appended verbatim."""
    folder.mkdir(parents=True, exist_ok=True)
    for file_name, text in (profiles or {}).items():
        (folder / file_name).write_text(text)
    lines = []
    if site is not None:
        lines.append(f"site: {json.dumps(site)}\n")
    if data_dir is not None:
        lines.append(f"storage: {json.dumps({'data_dir': str(data_dir)})}\n")
    if collector is not None:
        lines.append(f"collector: {json.dumps(collector)}\n")
    if isinstance(devices, list):
        lines.append(f"devices: {json.dumps(devices)}\n")
    elif devices:
        lines.append(f"devices:\n{devices}")
    path = folder / name
    path.write_text("".join(lines) + extra)
    return path


def load_site(folder: Path, devices: str | list[dict[str, Any]] = "", **sections: Any) -> Config:
    """`write_site`, loaded."""
    return load_config(write_site(folder, devices, **sections))
