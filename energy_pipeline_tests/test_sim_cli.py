"""`simulate` and `demo` as a user runs them: child processes, real signals, real sockets."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from pymodbus.client import AsyncModbusTcpClient

from energy_pipeline_tests.conftest import REPO, cli_env, run_cli
from energy_pipeline_tests.kit.ports import free_port, taken_port
from energy_pipeline_tests.kit.sites import write_site

pytestmark = pytest.mark.slow  # every test runs the simulators or the demo in child processes


def devices(port: int) -> str:
    return (
        f"  - {{id: umg509, driver: modbus, profile: janitza_umg509pro, interval: 15,\n"
        f"     connection: {{transport: tcp, host: 127.0.0.1, port: {port}, timeout: 1}}}}\n"
        "  - {id: ups1, driver: modbus, profile: must_ep20,\n"
        "     connection: {transport: rtu, serial_port: data/sim/ups1.tty, unit_id: 10}}\n"
    )


async def read_frequency(port: int) -> float:
    client = AsyncModbusTcpClient("127.0.0.1", port=port)
    await client.connect()
    try:
        reply = await client.read_holding_registers(19050, count=2, device_id=1)
        return float(client.convert_from_registers(reply.registers, client.DATATYPE.FLOAT32))
    finally:
        client.close()


def test_simulate_serves_until_sigterm_then_exits_0_and_removes_its_links(tmp_path: Path) -> None:
    port = free_port()
    config = write_site(tmp_path, devices(port))
    proc = subprocess.Popen(
        [sys.executable, "-m", "energy_pipeline", "simulate", "--config", str(config), "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=cli_env(),
        cwd=REPO,
    )
    try:
        assert proc.stdout is not None
        ready = json.loads(proc.stdout.readline())
        link = tmp_path / "data" / "sim" / "ups1.tty"
        assert ready["endpoints"][0].startswith(f"umg509: modbus tcp 127.0.0.1:{port}")
        assert str(link) in ready["endpoints"][1] and link.is_symlink()
        assert asyncio.run(read_frequency(port)) == pytest.approx(50, abs=0.1)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0, proc.stderr.read() if proc.stderr else ""
        assert not link.is_symlink()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_simulate_reports_a_busy_port_with_exit_1(tmp_path: Path) -> None:
    with taken_port() as port:
        config = write_site(tmp_path, devices(port))
        result = run_cli("simulate", "--config", str(config), timeout=30)
    assert result.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr


def test_demo_polls_the_simulated_site_and_stops_cleanly(tmp_path: Path) -> None:
    config = write_site(tmp_path, devices(free_port()))
    result = run_cli(
        "demo",
        "--poll-only",
        "--config",
        str(config),
        "--refresh",
        "0.4",
        "--duration",
        "2",
        timeout=60,
    )
    out = result.stdout
    assert result.returncode == 0, result.stderr
    tables = out.split("energy-pipeline demo - site plant-a")
    assert len(tables) >= 3, out
    last = tables[-1]
    assert "umg509 (modbus)  ok" in last and "ups1 (modbus)  ok" in last, out
    assert "power_active_total" in last and "battery_level" in last, out
    assert not (tmp_path / "data" / "sim" / "ups1.tty").is_symlink()


def test_demo_stops_on_ctrl_c_with_exit_0(tmp_path: Path) -> None:
    config = write_site(tmp_path, devices(free_port()))
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "energy_pipeline",
            "demo",
            "--poll-only",
            "--config",
            str(config),
            "--refresh",
            "0.3",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=cli_env(),
        cwd=REPO,
    )
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith("ups1 (modbus)"):
                break
        os.kill(proc.pid, signal.SIGINT)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_the_shipped_demo_config_is_valid_and_simulates_every_device() -> None:
    result = run_cli("config", "validate", str(REPO / "energy-pipeline.yaml"), "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["devices"] >= 3
