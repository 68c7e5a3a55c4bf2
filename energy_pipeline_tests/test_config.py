"""Config loading: typed values, ${VAR}, and errors that name file, key, line and expectation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from energy_pipeline.config import ModbusDevice, load_config
from energy_pipeline.yamlfile import ConfigError
from energy_pipeline_tests.conftest import run_cli

GOOD = """\
site:
  name: plant-a
  timezone: Europe/Berlin
storage:
  data_dir: lake
devices:
  - id: umg509
    driver: modbus
    profile: janitza_umg509pro
    connection: {transport: tcp, host: 127.0.0.1, port: 5020}
    interval: 60
  - id: meter1
    driver: echonet_broute
    connection: {serial_port: /dev/ttyUSB1}
    credentials: {rbid: "${B_ROUTE_ID}", password: "${B_ROUTE_PASSWORD}"}
"""
ENV = {"B_ROUTE_ID": "0" * 32, "B_ROUTE_PASSWORD": "SECRETPW1234"}


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "site.yaml"
    path.write_text(text)
    return path


def test_good_config_resolves_paths_and_env(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, GOOD), env=ENV)
    assert config.data_dir == (tmp_path / "lake").resolve()
    dev = config.devices[0]
    assert isinstance(dev, ModbusDevice) and dev.connection.port == 5020
    assert config.devices[1].credentials.password.get_secret_value() == "SECRETPW1234"


@pytest.mark.parametrize(
    ("old", "new", "key", "expected"),
    [
        ("interval: 60", "interval: 0", "devices[0].interval", "greater than 0"),
        ("port: 5020}", "port: 5020, unit_id: 300}", "devices[0].connection.unit_id", "247"),
        ("driver: modbus", "driver: bacnet", "devices[0].driver", "modbus"),
        ("profile: janitza_umg509pro", "profile: nosuch", "devices[0].profile", "unknown profile"),
        ("transport: tcp, host: 127.0.0.1", "transport: rtu", "serial_port", "missing"),
        ("id: meter1", "id: umg509", "devices[1].id", "duplicate"),
        ("timezone: Europe/Berlin", "timezone: Mars/Base", "site.timezone", "IANA"),
        ("    interval: 60", "    intervall: 60", "devices[0].intervall", "unknown key"),
    ],
)
def test_bad_values_name_key_line_and_expectation(
    tmp_path: Path, old: str, new: str, key: str, expected: str
) -> None:
    assert old in GOOD
    path = write(tmp_path, GOOD.replace(old, new, 1))
    with pytest.raises(ConfigError) as info:
        load_config(path, env=ENV)
    text = str(info.value)
    assert str(path) in text and key in text and expected in text
    assert f"{path}:" in text.split(key)[0]  # a line number precedes the key


def test_unset_variable_is_an_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"B_ROUTE_PASSWORD is not set"):
        load_config(write(tmp_path, GOOD), env={"B_ROUTE_ID": "0" * 32})


def test_secret_values_never_echoed(tmp_path: Path) -> None:
    env = {"B_ROUTE_ID": "0" * 32, "B_ROUTE_PASSWORD": "TOOSHORT"}
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, GOOD), env=env)
    assert "credentials.password" in str(info.value)
    assert "TOOSHORT" not in str(info.value)


def test_cli_validate_exit_codes(tmp_path: Path) -> None:
    good = write(tmp_path, GOOD)
    ok = run_cli("config", "validate", str(good), "--json", env=ENV)
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["devices"] == 2
    bad = tmp_path / "bad.yaml"
    bad.write_text(GOOD.replace("interval: 60", "interval: -5"))
    res = run_cli("config", "validate", "--config", str(bad), env=ENV)
    assert res.returncode == 2
    assert "devices[0].interval" in res.stderr and str(bad) in res.stderr
    assert "SECRETPW1234" not in res.stderr


def test_cli_schema_is_json_schema() -> None:
    res = run_cli("config", "schema")
    assert res.returncode == 0
    schema = json.loads(res.stdout)
    assert "devices" in schema["properties"]
