"""The `outputs:` and `alerts:` sections validate like the rest of the file: errors name the
file, line, key and expectation; secrets are never echoed and are redacted from logs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from energy_pipeline.config import load_config
from energy_pipeline.logs import redact
from energy_pipeline.yamlfile import ConfigError
from energy_pipeline_tests.conftest import run_cli
from energy_pipeline_tests.live_support import ups_site, ups_site_file

GOOD = """\
outputs:
  http: {port: 0, token: "${HTTP_TOKEN}", chart: [ups1.input_voltage], cards: {ups1: [load_power]}}
  mqtt:
    host: broker.local
    username: ep
    password: "${MQTT_PASSWORD}"
    tls: {ca_file: ca.pem}
    publish: {ups2: [battery_level]}
  webhook: {url: "https://hooks.example/ep", secret: "${HOOK_SECRET}"}
  file: {path: out, format: csv, record: hems}
  stdout: {format: hems}
  pubsub: {project: my-project, topic: hems-data, format: hems, batch_max_messages: 50}
alerts:
  rules:
    - {device: ups1, metric: temperature, op: ">", threshold: 40, clear: 38, for_seconds: 60}
    - {device: "*", kind: stale, after: 300}
    - {device: ups2, kind: device_down, failures: 5, severity: critical}
"""
ENV = {"HTTP_TOKEN": "tok-123456", "MQTT_PASSWORD": "mqtt-pass-987", "HOOK_SECRET": "hook-555"}


def site(tmp_path: Path, extra: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    for k, v in ENV.items():
        monkeypatch.setenv(k, v)
    path = ups_site_file(tmp_path, extra)
    return path


def test_good_sections_load_and_register_secrets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = load_config(site(tmp_path, GOOD, monkeypatch))
    out = config.outputs
    assert out.http is not None and out.http.host == "127.0.0.1"
    assert out.mqtt is not None and out.mqtt.port == 1883 and out.mqtt.qos == 1
    assert out.file is not None and config.resolve(out.file.path) == tmp_path / "out"
    assert out.file.record == "hems" and out.stdout is not None and out.stdout.format == "hems"
    assert out.pubsub is not None and out.pubsub.batch_max_seconds == 1.0
    assert [r.kind for r in config.alerts.rules] == ["threshold", "stale", "device_down"]
    line = "connecting as ep with mqtt-pass-987, token tok-123456, hmac hook-555"
    assert redact(line) == "connecting as ep with ***, token ***, hmac ***"


def test_outputs_default_to_off(tmp_path: Path) -> None:
    config = ups_site(tmp_path)
    assert config.outputs.http is None and config.outputs.mqtt is None
    assert config.alerts.profile_defaults is True


@pytest.mark.parametrize(
    ("old", "new", "key", "expected"),
    [
        ("host: broker.local", "hots: broker.local", "outputs.mqtt.hots", "unknown key"),
        ("format: csv", "format: xml", "outputs.file.format", "'jsonl' or 'csv'"),
        ("record: hems}", "record: flat}", "outputs.file.record", "'reading' or 'hems'"),
        ("stdout: {format: hems}", "stdout: {format: csv}", "outputs.stdout.format", "'hems'"),
        ("project: my-project", "project: My_Project", "outputs.pubsub.project", "pattern"),
        ("format: hems, batch", "format: avro, batch", "outputs.pubsub.format", "'json' or"),
        ("batch_max_messages: 50", "batch_max_messages: 5000", "outputs.pubsub", "1000"),
        ('url: "https://', 'url: "ftp://', "outputs.webhook.url", "https?://"),
        ("cards: {ups1:", "cards: {nosuch:", "outputs.http.cards.nosuch", "no device 'nosuch'"),
        ("publish: {ups2:", "publish: {ups9:", "outputs.mqtt.publish.ups9", "no device"),
        ("chart: [ups1.input_voltage]", "chart: [voltage]", "outputs.http.chart[0]", "pattern"),
        ("device: ups2, kind", "device: ghost, kind", "alerts.rules[2].device", "no device"),
        ('op: ">", ', "", "alerts.rules[0]", "need metric, op and threshold"),
        ("kind: stale, after: 300", "kind: stale", "alerts.rules[1]", "need after"),
        ("kind: device_down", "kind: dead", "alerts.rules[2].kind", "'threshold'"),
        ("severity: critical", "severity: panic", "alerts.rules[2].severity", "'critical'"),
    ],
)
def test_bad_values_name_key_line_and_expectation(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    old: str,
    new: str,
    key: str,
    expected: str,
) -> None:
    assert old in GOOD
    path = site(tmp_path, GOOD.replace(old, new, 1), monkeypatch)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    text = str(info.value)
    assert f"{path}:" in text and key in text and expected in text, text


def test_cli_exits_2_and_never_echoes_the_mqtt_password(tmp_path: Path) -> None:
    path = ups_site_file(tmp_path, GOOD.replace("username: ep", "username: [ep]"))
    result = run_cli("config", "validate", str(path), env=ENV)
    assert result.returncode == 2
    assert "outputs.mqtt.username" in result.stderr
    for secret in ENV.values():
        assert secret not in result.stderr + result.stdout


def test_schema_describes_outputs_and_alerts() -> None:
    result = run_cli("config", "schema")
    schema = json.loads(result.stdout)
    assert {"outputs", "alerts"} <= set(schema["properties"])
    assert "MqttOutput" in schema["$defs"] and "AlertRule" in schema["$defs"]
