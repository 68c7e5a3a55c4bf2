"""What ships: the must_ep20 profile's alarms (the UPS seed's) become rules with no config,
Home Assistant discovery honours a configured list, and transitions reach the log."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from energy_pipeline.catalog import build_catalog
from energy_pipeline.live import build_outputs
from energy_pipeline.live.alerts import site_rules
from energy_pipeline.live.mqtt import MqttSink
from energy_pipeline.live.state import StandaloneState
from energy_pipeline_tests.kit.sites import load_site
from energy_pipeline_tests.live_support import Clock, ok, ups_site

UPS_DEVICES = """
  - id: ups1
    driver: modbus
    profile: must_ep20
    connection: {transport: tcp, host: 127.0.0.1, port: 1502}
"""


def test_must_ep20_ships_the_ups_seed_alarms(tmp_path: Path) -> None:
    config = load_site(tmp_path, UPS_DEVICES)
    rules = {
        (d, r.metric, r.op, r.threshold)
        for d, r in site_rules(config, build_catalog(config).devices)
    }
    assert rules == {
        ("ups1", "input_voltage", "<", 180),
        ("ups1", "battery_level", "<", 20),
        ("ups1", "temperature", ">", 40),
        ("ups1", "load_percent", ">", 80),
        ("ups1", "status", "==", 3),
    }


def test_discovery_uses_the_configured_list(tmp_path: Path) -> None:
    config = ups_site(
        tmp_path,
        "outputs:\n  mqtt: {host: 127.0.0.1, publish: {ups2: [temperature, energy_total]}}\n",
    )
    assert config.outputs.mqtt is not None
    sink = MqttSink(config.outputs.mqtt, config, build_catalog(config).devices)
    configured = sink.discovery_payload("ups2")["cmps"]
    assert set(configured) == {"ups2_temperature", "ups2_energy_total"}
    assert configured["ups2_temperature"]["device_class"] == "temperature"
    assert len(sink.discovery_payload("ups1")["cmps"]) == 5, "others: the profile's list"


def test_transitions_are_logged_once(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    config = ups_site(tmp_path)
    clock = Clock()
    live = build_outputs(config, StandaloneState(started_at=clock()), clock)
    with caplog.at_level(logging.INFO, logger="energy_pipeline.alerts"):
        for level in (10, 5, 30, 26):
            live.alerts.offer([ok("ups1", clock.advance(1), battery_level=level)])
    lines = [r.getMessage() for r in caplog.records]
    assert lines == [
        "alert raised: ups1 battery_level < 20",
        "alert cleared: ups1 battery_level < 20",
    ]
    assert caplog.records[0].levelno == logging.WARNING
