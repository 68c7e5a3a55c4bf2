"""`poll-once`, `health`, `profiles` and profile validation, run as a user would: the CLI in a
child process against real servers started by the test."""

from __future__ import annotations

import contextlib
import http.server
import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from energy_pipeline.drivers.modbus.client import TCP_CLIENT_ENV, TCP_CLIENTS
from energy_pipeline.drivers.serial_lock import hold_port
from energy_pipeline.profiles import load_profile
from energy_pipeline_tests.conftest import run_cli
from energy_pipeline_tests.kit.ports import free_port
from energy_pipeline_tests.kit.sites import write_site
from energy_pipeline_tests.modbus_support import (
    rtu_server,
    sample_values,
    simdevice,
    tcp_server,
)

pytestmark = pytest.mark.slow  # every test runs the CLI in child processes

PROFILES = Path(__file__).resolve().parent.parent / "energy_pipeline" / "profiles"
UPS_VALUES = sample_values(load_profile("must_ep20", PROFILES))


@pytest.fixture(scope="module")
def janitza_port() -> Iterator[int]:
    """A gateway: the Janitza as unit 1 and a MUST EP20 as unit 10 behind one TCP port."""
    prof = load_profile("janitza_umg509pro", PROFILES)
    ups = load_profile("must_ep20", PROFILES)
    with tcp_server(
        [simdevice(prof, sample_values(prof), 1), simdevice(ups, UPS_VALUES, 10)]
    ) as port:
        yield port


def tcp(dev_id: str, profile: str, port: int) -> str:
    return (
        f"  - {{id: {dev_id}, driver: modbus, profile: {profile}, connection: "
        f"{{transport: tcp, host: 127.0.0.1, port: {port}, timeout: 0.3, retries: 0}}}}\n"
    )


@contextlib.contextmanager
def http_server() -> Iterator[int]:
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def test_poll_once_json_reports_every_device_and_exits_1_on_failure(
    tmp_path: Path, janitza_port: int
) -> None:
    dead = free_port()
    site = write_site(
        tmp_path,
        tcp("umg509", "janitza_umg509pro", janitza_port)
        + tcp("ups1", "must_ep20", dead)
        + tcp("ups2", "must_ep20", janitza_port),
    )
    result = run_cli("poll-once", "--config", str(site), "--json")
    assert result.returncode == 1, result.stderr
    rows = json.loads(result.stdout)
    assert [r["device_id"] for r in rows] == ["umg509", "ups1", "ups2"]
    good, bad, shared = rows
    assert shared["ok"] and shared["values"]["status"] == UPS_VALUES["status"]
    assert good["ok"] is True and len(good["values"]) == 61 and good["attributes"] == {}
    assert good["values"]["voltage_l1_n"] == pytest.approx(1.0)
    assert good["ts"].endswith("+00:00")
    assert bad["ok"] is False and "values" not in bad
    assert bad["error"].startswith(f"ups1: cannot connect to 127.0.0.1:{dead}")


def test_poll_once_one_device_and_human_table(tmp_path: Path, janitza_port: int) -> None:
    site = write_site(tmp_path, tcp("umg509", "janitza_umg509pro", janitza_port))
    result = run_cli("poll-once", "--config", str(site), "--device", "umg509", "--json")
    assert result.returncode == 0, result.stderr
    assert len(json.loads(result.stdout)) == 1
    table = run_cli("poll-once", "--config", str(site))
    assert table.returncode == 0
    assert "umg509" in table.stdout and " ok " in table.stdout
    lines = {line.split()[0]: line.split()[1:] for line in table.stdout.splitlines()[1:]}
    assert lines["voltage_l1_n"] == ["1", "V"]
    assert lines["rotation_field"][1] == "(right)"
    unknown = run_cli("poll-once", "--config", str(site), "--device", "nosuch")
    assert unknown.returncode == 2 and "no device 'nosuch'" in unknown.stderr


def test_poll_once_over_rtu_and_a_port_held_by_another_process(tmp_path: Path) -> None:
    prof = load_profile("must_ep20", PROFILES)
    values = sample_values(prof)
    with rtu_server([simdevice(prof, values, 10)]) as tty:
        site = write_site(
            tmp_path,
            "  - {id: ups1, driver: modbus, profile: must_ep20,"
            f" connection: {{transport: rtu, serial_port: {tty}, timeout: 0.5}}}}\n",
        )
        result = run_cli("poll-once", "--config", str(site), "--json")
        assert result.returncode == 0, result.stderr
        (row,) = json.loads(result.stdout)
        assert row["values"]["battery_voltage"] == pytest.approx(values["battery_voltage"])
        with hold_port(tty, tmp_path / "data"):
            busy = run_cli("poll-once", "--config", str(site), "--json")
    assert busy.returncode == 1
    (row,) = json.loads(busy.stdout)
    assert f"in use by pid {os.getpid()}" in row["error"]


def test_health_measures_connect_round_trip_and_http(tmp_path: Path, janitza_port: int) -> None:
    dead = free_port()
    site = write_site(tmp_path, tcp("umg509", "janitza_umg509pro", janitza_port))
    with http_server() as web:
        ok = run_cli(
            "health", "--config", str(site), "--json", "--http", f"http://127.0.0.1:{web}/"
        )
        assert ok.returncode == 0, ok.stderr
        report = json.loads(ok.stdout)
        (dev,) = report["devices"]
        assert dev["ok"] and dev["tcp_connect_ms"] > 0 and dev["roundtrip_ms"] > 0
        assert report["http"][0]["ok"] and report["http"][0]["status"] == 200
        human = run_cli("health", "--config", str(site))
        assert human.returncode == 0 and "umg509" in human.stdout and "round trip" in human.stdout
    web_down = run_cli("health", "--config", str(site), "--http", f"http://127.0.0.1:{dead}/")
    assert web_down.returncode == 1 and "FAILED" in web_down.stdout
    site = write_site(tmp_path, tcp("umg509", "janitza_umg509pro", dead))
    down = run_cli("health", "--config", str(site), "--json")
    assert down.returncode == 1
    (dev,) = json.loads(down.stdout)["devices"]
    assert dev["ok"] is False and "tcp connect" in dev["error"] and dev["roundtrip_ms"] is None


def test_profiles_lists_the_builtins() -> None:
    result = run_cli("profiles", "--json")
    assert result.returncode == 0
    rows = {r["name"]: r for r in json.loads(result.stdout)}
    assert set(rows) >= {
        "janitza_umg509pro",
        "must_ep20",
        "must_pv1800",
        "luxtronik_shi",
        "nibe_s1155",
        "heatpump_generic",
    }
    assert rows["janitza_umg509pro"]["points"] >= 50
    assert rows["must_ep20"]["unit_id"] == 10
    table = run_cli("profiles")
    assert "Janitza" in table.stdout and "61 points" in table.stdout


def test_config_validate_checks_the_profile_content(tmp_path: Path) -> None:
    (tmp_path / "mine.yaml").write_text(
        "manufacturer: Acme\nmodel: X\npoints:\n"
        "  - {name: a, address: 1}\n"
        "  - {name: b, address: 2, data_type: float33}\n"
    )
    site = write_site(tmp_path, tcp("dev1", "mine.yaml", 502))
    result = run_cli("config", "validate", str(site))
    assert result.returncode == 2
    assert f"{site}:" in result.stderr and "devices[0].profile" in result.stderr
    assert f"{tmp_path / 'mine.yaml'}:5: points[1].data_type" in result.stderr


def test_hpmanager_registers_file_is_a_profile(tmp_path: Path, janitza_port: int) -> None:
    (tmp_path / "registers.yml").write_text(
        "models:\n"
        "  janitza_hp:\n"
        "    description: Janitza read through an HPManager map\n"
        "    registers:\n"
        "      - name: voltage\n"
        "        address: 19000\n"
        "        register_type: holding\n"
        "        data_type: float32\n"
        "        unit: volt\n"
        "      - name: rotation\n"
        "        address: 19052\n"
        "        data_type: float32\n"
        "        unit: enum\n"
        "        enum_values: {0: none, 1: right}\n"
    )
    site = write_site(tmp_path, tcp("hp", "registers.yml#janitza_hp", janitza_port))
    result = run_cli("poll-once", "--config", str(site), "--json")
    assert result.returncode == 0, result.stderr
    (row,) = json.loads(result.stdout)
    assert row["values"] == {"voltage": 1.0, "rotation": 1.0}
    bad = write_site(tmp_path, tcp("hp", "registers.yml#nosuch", janitza_port))
    result = run_cli("config", "validate", str(bad))
    assert result.returncode == 2 and "no model 'nosuch'" in result.stderr


def test_both_tcp_clients_poll_alike_and_an_unknown_one_is_bad_input(
    tmp_path: Path, janitza_port: int
) -> None:
    site = write_site(tmp_path, tcp("umg509", "janitza_umg509pro", janitza_port))
    polls = {
        client: run_cli("poll-once", "--config", str(site), "--json", env={TCP_CLIENT_ENV: client})
        for client in TCP_CLIENTS
    }
    for result in polls.values():
        assert result.returncode == 0, result.stderr
    lean, theirs = (json.loads(polls[c].stdout) for c in ("lean", "pymodbus"))
    assert lean[0]["values"] == theirs[0]["values"] and len(lean[0]["values"]) == 61
    unknown = "$ENERGY_PIPELINE_MODBUS_TCP: expected one of lean, pymodbus, got 'fast'"
    collect = run_cli("collect", "--config", str(site), env={TCP_CLIENT_ENV: "fast"})
    assert collect.returncode == 2 and unknown in collect.stderr
    poll = run_cli("poll-once", "--config", str(site), env={TCP_CLIENT_ENV: "fast"})
    assert poll.returncode == 1 and unknown in poll.stdout  # reported like any device failure
