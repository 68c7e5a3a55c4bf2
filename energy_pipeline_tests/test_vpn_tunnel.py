"""The site VPN for real: the product in an "office" network namespace reads a Janitza in a
"site" namespace through an OpenVPN tunnel it runs itself (see vpn_support)."""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest

from energy_pipeline.profiles import load_profile
from energy_pipeline_tests.collector_support import status, wait_for
from energy_pipeline_tests.modbus_support import sample_values
from energy_pipeline_tests.vpn_support import CLIENT_TUN_IP, SiteNet, site_net

pytestmark = pytest.mark.slow  # openvpn, a Modbus server and the CLI as processes in namespaces

PROFILES = Path(__file__).resolve().parent.parent / "energy_pipeline" / "profiles"
EXPECTED = sample_values(load_profile("janitza_umg509pro", PROFILES))


@pytest.fixture
def net(tmp_path: Path) -> Iterator[SiteNet]:
    with site_net(tmp_path / "vpn") as n:
        yield n


def _no_secret(net: SiteNet, *texts: str) -> None:
    for text in texts:
        assert net.password not in text


def test_poll_once_brings_an_auto_tunnel_up_reads_exact_values_and_takes_it_down(
    net: SiteNet, tmp_path: Path
) -> None:
    config = net.site_config(tmp_path / "data")
    result = net.cli("poll-once", "--config", str(config), "--json", "-v")
    assert result.returncode == 0, result.stderr
    [row] = json.loads(result.stdout)
    assert row["ok"] is True, row
    assert row["values"] == {k: pytest.approx(v) for k, v in EXPECTED.items() if k in row["values"]}
    assert len(row["values"]) == 61
    assert net.office_openvpn() == []
    assert net.office_pids() == []
    assert not (tmp_path / "data" / "state" / "vpn-site-a.json").exists()
    _no_secret(
        net, result.stdout, result.stderr, (tmp_path / "data/state/vpn-site-a.log").read_text()
    )


def test_vpn_up_keeps_running_and_poll_once_and_health_use_it(net: SiteNet, tmp_path: Path) -> None:
    config = net.site_config(tmp_path / "data", auto=False)
    before = net.cli("poll-once", "--config", str(config), "--json")
    assert before.returncode == 1
    assert "vpn site-a is down" in json.loads(before.stdout)[0]["error"]
    assert "vpn up --name site-a" in json.loads(before.stdout)[0]["error"]

    up = net.cli("vpn", "up", "--config", str(config), "--json")
    assert up.returncode == 0, up.stderr
    doc = json.loads(up.stdout)["site-a"]
    assert doc["state"] == "CONNECTED" and doc["local_ip"] == CLIENT_TUN_IP
    [pid] = net.office_openvpn()
    assert doc["pid"] == pid

    polled = net.cli("poll-once", "--config", str(config), "--json")
    assert polled.returncode == 0, polled.stderr
    assert json.loads(polled.stdout)[0]["values"]["voltage_l1_n"] == pytest.approx(
        EXPECTED["voltage_l1_n"]
    )
    health = net.cli("health", "--config", str(config), "--json")
    assert health.returncode == 0, health.stderr
    assert json.loads(health.stdout)["devices"][0]["ok"] is True
    assert net.office_openvpn() == [pid]  # the same openvpn, no second one

    shown = net.cli("vpn", "status", "--config", str(config), "--json")
    st = json.loads(shown.stdout)["site-a"]
    assert st["running"] and st["state"] == "CONNECTED" and st["since"]
    assert st["bytes_in"] > 0 and st["bytes_out"] > 0

    down = net.cli("vpn", "down", "--config", str(config))
    assert down.returncode == 0 and "stopped" in down.stdout, down.stderr
    assert net.office_pids() == []
    assert not (tmp_path / "data" / "state" / "vpn-site-a.json").exists()
    _no_secret(net, up.stdout, up.stderr, polled.stderr, shown.stdout, down.stdout)


def test_a_wrong_password_fails_within_the_timeout_and_says_so(
    net: SiteNet, tmp_path: Path
) -> None:
    (net.folder / "auth.txt").write_text("plant-a\nnot-the-password\n")
    config = net.site_config(tmp_path / "data", connect_timeout=8)
    started = time.monotonic()
    result = net.cli("vpn", "up", "--config", str(config))
    assert result.returncode == 1
    assert time.monotonic() - started < 15
    assert "vpn site-a" in result.stderr
    assert "not-the-password" not in result.stderr + result.stdout
    assert net.office_openvpn() == []


def _metrics(net: SiteNet, port: int) -> str:
    script = (
        "import urllib.request,sys;"
        f"sys.stdout.write(urllib.request.urlopen('http://127.0.0.1:{port}/metrics').read().decode())"
    )
    return net.ns_output(net.office, sys.executable, "-c", script)


def test_collect_rides_out_a_vpn_server_restart(net: SiteNet, tmp_path: Path) -> None:
    data = tmp_path / "data"
    config = net.site_config(data, "outputs: {http: {host: 127.0.0.1, port: 18080}}\n")
    log = tmp_path / "collect.log"
    proc = net.cli_background("collect", "--config", str(config), stderr=log)

    def device(state: str):
        def check():
            doc = status(data) or {}
            mine = doc.get("pid") == proc.pid
            return doc if mine and doc["devices"]["umg1"]["state"] == state else None

        return check

    up = wait_for(device("up"), 30, "umg1 up through the tunnel")
    assert up["vpn"]["site-a"]["state"] == "CONNECTED"
    assert 'energy_vpn_up{tunnel="site-a"} 1.0' in _metrics(net, 18080)
    [first] = net.office_openvpn()
    polled = net.cli("poll-once", "--config", str(config), "--json")
    assert polled.returncode == 0 and json.loads(polled.stdout)[0]["ok"], polled.stderr
    assert net.office_openvpn() == [first], "poll-once used the collector's tunnel"

    net.stop_server()
    down = wait_for(device("vpn_down"), 15, "umg1 vpn_down after the server stopped")
    assert down["vpn"]["site-a"]["state"] != "CONNECTED"
    assert 'energy_vpn_up{tunnel="site-a"} 0.0' in _metrics(net, 18080)
    net.start_server()
    back = wait_for(device("up"), 30, "umg1 up again after the server restart")
    assert back["vpn"]["site-a"]["state"] == "CONNECTED"
    [client] = net.office_openvpn()  # one openvpn, restarted or not, never two

    os.kill(client, signal.SIGKILL)  # openvpn itself dies: the collector starts a new one
    again = wait_for(
        lambda: (d := device("up")()) and d["vpn"]["site-a"]["pid"] not in (None, client) and d,
        30,
        "umg1 up through a restarted openvpn",
    )
    assert again["vpn"]["site-a"]["restarts"] >= 1
    assert net.office_openvpn() == [again["vpn"]["site-a"]["pid"]]

    proc.send_signal(signal.SIGTERM)
    assert proc.wait(20) == 0, log.read_text()
    assert net.office_openvpn() == []
    assert not (data / "state" / "vpn-site-a.json").exists()

    raw = str(data / "raw_readings" / "**" / "*.parquet")
    polls = str(data / "polls" / "**" / "*.parquet")
    with duckdb.connect() as db:
        dupes = db.sql(
            f"SELECT count(*) FROM (SELECT device_id, ts, metric FROM read_parquet('{raw}') "
            "GROUP BY ALL HAVING count(*) > 1)"
        ).fetchall()
        kinds = db.sql(f"SELECT ok, error FROM read_parquet('{polls}') ORDER BY ts").fetchall()
        readings = db.sql(f"SELECT count(DISTINCT ts) FROM read_parquet('{raw}')").fetchall()
    assert dupes == [(0,)]
    assert readings[0][0] >= 2
    assert kinds[0] == (True, None), "the tunnel is up before the first poll"
    assert any("vpn site-a is down" in (e or "") for _, e in kinds)
    logged = log.read_text()
    assert "device unreachable: vpn down" in logged and "vpn up" in logged
    _no_secret(net, logged, (data / "state" / "collector-main.json").read_text())


def test_collect_waits_for_a_manual_tunnel_uses_it_and_leaves_it_running(
    net: SiteNet, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    config = net.site_config(data, auto=False)
    log = tmp_path / "collect.log"
    proc = net.cli_background("collect", "--config", str(config), stderr=log)

    def device_state() -> str | None:
        doc = status(data) or {}
        return doc["devices"]["umg1"]["state"] if doc.get("pid") == proc.pid else None

    wait_for(lambda: device_state() == "vpn_down", 30, "umg1 vpn_down while no tunnel runs")
    assert net.office_openvpn() == []  # not auto: collect never starts one itself
    up = net.cli("vpn", "up", "--config", str(config))
    assert up.returncode == 0, up.stderr
    [pid] = net.office_openvpn()
    wait_for(lambda: device_state() == "up", 30, "umg1 up once the tunnel is up")

    proc.send_signal(signal.SIGTERM)
    assert proc.wait(20) == 0, log.read_text()
    assert net.office_openvpn() == [pid]  # the user's tunnel keeps running
    record = json.loads((data / "state" / "vpn-site-a.json").read_text())
    assert record["owner"] == "vpn-up" and record["status"]["state"] == "CONNECTED"
    assert net.cli("vpn", "down", "--config", str(config)).returncode == 0
    assert net.office_openvpn() == []
