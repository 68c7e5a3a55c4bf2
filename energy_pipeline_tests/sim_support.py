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
