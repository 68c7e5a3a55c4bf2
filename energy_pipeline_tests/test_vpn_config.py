"""The `vpn:` section and `devices[].vpn`: validation with exit 2, and the tunnel's state as
`status`, /metrics and /api/health show it (no tunnel needed for these)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from energy_pipeline.collector.state import CollectorState, TunnelState
from energy_pipeline.collector.status import render, status_document
from energy_pipeline.config import load_config
from energy_pipeline.live import build_outputs
from energy_pipeline.live.api import LiveApi
from energy_pipeline.live.state import StandaloneDevice, StandaloneState
from energy_pipeline.ops.vpn.tunnel import TunnelRecord, openvpn_argv, status_from_record
from energy_pipeline.yamlfile import ConfigError
from energy_pipeline_tests.conftest import run_cli
from energy_pipeline_tests.kit.sites import write_site

AUTH_SECRET_PATH = "/run/secrets/site-a-credentials.txt"


def _site(tmp_path: Path, device_vpn: str | None = "site-a", **tunnel: object) -> Path:
    (tmp_path / "site-a.ovpn").write_text("client\n")
    device = {
        "id": "umg1",
        "driver": "modbus",
        "profile": "janitza_umg509pro",
        "connection": {"transport": "tcp", "host": "10.231.1.1"},
    }
    if device_vpn:
        device["vpn"] = device_vpn
    vpn = {"site-a": {"config": "site-a.ovpn", **tunnel}, "site-b": {"config": "site-a.ovpn"}}
    return write_site(tmp_path, [device], extra=f"vpn: {json.dumps(vpn)}\n")


def test_a_valid_vpn_section(tmp_path: Path) -> None:
    auth = tmp_path / "auth.txt"
    auth.write_text("user\npass\n")
    config = load_config(
        _site(tmp_path, auth="${AUTH}", auto=True, management_port=7505), {"AUTH": str(auth)}
    )
    tunnel = config.vpn["site-a"]
    assert tunnel.auto and tunnel.management_port == 7505 and tunnel.connect_timeout == 30
    assert tunnel.max_retries is None
    assert config.devices[0].vpn == "site-a"
    argv = openvpn_argv("/usr/sbin/openvpn", tunnel, config, 7505, tmp_path / "pw")
    assert argv[:5] == [
        "/usr/sbin/openvpn",
        "--cd",
        str(tmp_path),
        "--config",
        str(tmp_path / "site-a.ovpn"),
    ]
    assert argv[5:10] == [
        "--management",
        "127.0.0.1",
        "7505",
        str(tmp_path / "pw"),
        "--management-hold",
    ]
    assert argv[10:] == ["--auth-user-pass", str(auth)]


def test_an_unknown_tunnel_names_file_key_and_the_tunnels(tmp_path: Path) -> None:
    path = _site(tmp_path, device_vpn="site-c")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    text = str(err.value)
    assert f"{path}:" in text and "devices[0].vpn" in text
    assert "no tunnel 'site-c'" in text and "expected one of site-a, site-b" in text
    result = run_cli("config", "validate", str(path))
    assert result.returncode == 2 and "devices[0].vpn" in result.stderr


def test_a_missing_ovpn_file_is_exit_2(tmp_path: Path) -> None:
    path = _site(tmp_path)
    (tmp_path / "site-a.ovpn").unlink()
    result = run_cli("poll-once", "--config", str(path))
    assert result.returncode == 2
    assert "vpn.site-a.config" in result.stderr and "site-a.ovpn does not exist" in result.stderr


def test_a_missing_auth_file_from_a_variable_is_not_shown(tmp_path: Path) -> None:
    path = _site(tmp_path, auth="${SITE_A_AUTH}")
    result = run_cli("config", "validate", str(path), env={"SITE_A_AUTH": AUTH_SECRET_PATH})
    assert result.returncode == 2
    assert "vpn.site-a.auth" in result.stderr and "does not exist" in result.stderr
    assert AUTH_SECRET_PATH not in result.stderr


@pytest.mark.parametrize(
    ("tunnel", "key"),
    [
        ({"connect_timeout": 0}, "connect_timeout"),
        ({"management_port": 70000}, "management_port"),
        ({"max_retries": -1}, "max_retries"),
        ({"autostart": True}, "autostart"),
    ],
)
def test_bad_tunnel_values(tmp_path: Path, tunnel: dict, key: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(_site(tmp_path, **tunnel))
    assert f"vpn.site-a.{key}" in str(err.value)


def _tunnel() -> TunnelState:
    return TunnelState(
        "site-a",
        "CONNECTED",
        datetime(2026, 12, 2, 3, 0, tzinfo=UTC),
        "10.231.1.2",
        "10.231.0.2",
        4187,
        3912,
        restarts=1,
        pid=123,
        management_port=7505,
    )


def test_status_file_and_text_show_the_tunnel(tmp_path: Path) -> None:
    state = CollectorState("main", 1, datetime(2026, 12, 2, tzinfo=UTC))
    state.vpn["site-a"] = _tunnel()
    doc = status_document(state)
    assert doc["vpn"]["site-a"] == {
        "state": "CONNECTED",
        "up": True,
        "since": "2026-12-02T03:00:00+00:00",
        "local_ip": "10.231.1.2",
        "remote_ip": "10.231.0.2",
        "bytes_in": 4187,
        "bytes_out": 3912,
        "restarts": 1,
        "last_error": None,
        "pid": 123,
        "management_port": 7505,
    }
    text = render([{**doc, "running": True}], load_config(_site(tmp_path)))
    assert (
        "vpn site-a  CONNECTED  since 2026-12-02T03:00:00+00:00  10.231.1.2 -> 10.231.0.2" in text
    )
    assert "in 4187 B  out 3912 B  restarts 1" in text
    record = TunnelRecord("site-a", 123, 7505, "x.ovpn", "collect", 1, "t", doc["vpn"]["site-a"])
    assert status_from_record(record) == _tunnel()


def test_metrics_and_health_show_the_tunnel(tmp_path: Path) -> None:
    config = load_config(_site(tmp_path))
    tunnel = _tunnel()
    state = StandaloneState(devices={"umg1": StandaloneDevice("vpn_down")}, vpn={"site-a": tunnel})
    live = build_outputs(config, state)
    text = live.metrics.render().decode()
    assert 'energy_vpn_up{tunnel="site-a"} 1.0' in text
    assert 'energy_vpn_received_bytes_total{tunnel="site-a"} 4187.0' in text
    assert 'energy_vpn_sent_bytes_total{tunnel="site-a"} 3912.0' in text
    assert 'energy_device_up{device="umg1"} 0.0' in text
    tunnel.state = "RECONNECTING"
    assert 'energy_vpn_up{tunnel="site-a"} 0.0' in live.metrics.render().decode()
    api = LiveApi(live.store, state, None, {"umg1": 60.0}, {})
    _, doc = api.health(datetime.now(UTC))
    assert doc["vpn"] == {"site-a": "RECONNECTING"}
    assert doc["devices"] == {"umg1": "vpn_down"}


def test_the_sql_devices_table_names_each_device_s_tunnel(tmp_path: Path) -> None:
    result = run_cli(
        "sql", "SELECT device_id, vpn FROM devices", "--csv", "--config", str(_site(tmp_path))
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["device_id,vpn", "umg1,site-a"]
