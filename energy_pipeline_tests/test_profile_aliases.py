"""`aliases.prometheus` on profile points: the schema (a name, or a name with a state map that
covers every label), and /metrics exposing the MUST EP20 under the UPS monitor's gauge names
beside the labelled families, checked by the real promtool."""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from energy_pipeline.catalog import build_catalog
from energy_pipeline.live import build_outputs
from energy_pipeline.live.state import StandaloneState
from energy_pipeline.profiles import load_profile
from energy_pipeline.readings import PollOutcome, Sample
from energy_pipeline.yamlfile import ConfigError
from energy_pipeline_tests.conftest import require_program
from energy_pipeline_tests.kit.sites import load_site

UPS_NAMES = {
    "input_voltage": "ups_input_voltage",
    "output_voltage": "ups_output_voltage",
    "battery_voltage": "ups_battery_voltage",
    "battery_level": "ups_battery_level",
    "load_percent": "ups_load_percent",
    "load_power": "ups_load_power",
    "frequency": "ups_frequency",
    "input_frequency": "ups_input_frequency",
    "temperature": "ups_temperature",
    "status": "ups_status",
}

POINT = """\
manufacturer: Test
model: T
points:
  - {{name: status, address: 0, kind: state, labels: {{1: online, 2: battery}}, {extra}}}
"""


def problem(tmp_path: Path, extra: str) -> str:
    path = tmp_path / "p.yaml"
    path.write_text(POINT.format(extra=extra))
    with pytest.raises(ConfigError) as err:
        load_profile(str(path), path.parent)
    return str(err.value)


def test_the_ep20_profile_declares_every_ups_monitor_name() -> None:
    profile = load_profile("must_ep20", Path())
    declared = {p.name: p.prometheus_alias() for p in profile.points if p.aliases}
    assert {point: alias[0] for point, alias in declared.items()} == UPS_NAMES
    status = profile.points[[p.name for p in profile.points].index("status")]
    mapping = declared["status"][1]
    assert mapping is not None and set(mapping) == set(status.labels), "every work state mapped"
    assert status.labels[3] == "battery" and mapping[3] == 0.0
    assert status.labels[4] == "online" and mapping[4] == 1.0


def test_alias_schema_rejects_what_it_cannot_export(tmp_path: Path) -> None:
    message = problem(tmp_path, "aliases: {prometheus: {name: ups_status, map: {online: 1}}}")
    assert "p.yaml" in message and "missing ['battery']" in message
    message = problem(
        tmp_path, "aliases: {prometheus: {name: s, map: {online: 1, battery: 0, lost: 2}}}"
    )
    assert "unknown ['lost']" in message
    assert "reserved" in problem(tmp_path, "aliases: {prometheus: energy_reading}")
    assert "unknown key" in problem(tmp_path, "aliases: {influxdb: x}")
    assert "aliases.prometheus" in problem(tmp_path, "aliases: {prometheus: 'bad name'}")


def test_a_mapped_alias_needs_a_labelled_state(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(
        "manufacturer: T\nmodel: T\npoints:\n"
        "  - {name: v, address: 0, aliases: {prometheus: {name: x, map: {a: 1}}}}\n"
    )
    with pytest.raises(ConfigError, match="state point with labels"):
        load_profile(str(path), path.parent)
    path.write_text(
        "manufacturer: T\nmodel: T\npoints:\n"
        "  - {name: v, address: 0, aliases: {prometheus: x}}\n"
        "  - {name: w, address: 1, aliases: {prometheus: x}}\n"
    )
    with pytest.raises(ConfigError, match="given to two points"):
        load_profile(str(path), path.parent)


def ups_outcome(device: str, status: float, **values: float) -> PollOutcome:
    names = tuple(UPS_NAMES)
    base = dict.fromkeys(names, 1.0) | {"input_voltage": 229.8, "status": status} | values
    ts = datetime(2026, 3, 1, 12, tzinfo=UTC)
    sample = Sample(names, np.array([base[n] for n in names], dtype=np.float64))
    return PollOutcome(device, ts, ts, ts, 1, sample)


def test_metrics_expose_the_ups_monitor_gauges(tmp_path: Path) -> None:
    promtool = require_program("promtool")
    config = load_site(
        tmp_path,
        "  - {id: ups1, driver: modbus, profile: must_ep20,"
        " connection: {transport: rtu, serial_port: /dev/null}}\n"
        "  - {id: ups2, driver: modbus, profile: must_ep20,"
        " connection: {transport: rtu, serial_port: /dev/null}}\n",
    )
    live = build_outputs(config, StandaloneState(started_at=datetime(2026, 3, 1, tzinfo=UTC)))
    live.store.offer(
        [ups_outcome("ups1", 4.0), ups_outcome("ups2", 3.0, battery_level=float("nan"))]
    )
    body = live.metrics.render()
    lint = subprocess.run(
        [promtool, "check", "metrics"], input=body, capture_output=True, check=False
    )
    assert lint.returncode == 0 and lint.stdout == lint.stderr == b"", lint
    text = body.decode()
    assert 'ups_input_voltage{device="ups1"} 229.8' in text
    assert 'ups_status{device="ups1"} 1.0' in text, "work state 4 (online) is line power"
    assert 'ups_status{device="ups2"} 0.0' in text, "work state 3 (battery)"
    assert 'ups_battery_level{device="ups1"}' in text
    assert 'ups_battery_level{device="ups2"}' not in text, "no reading, no sample"
    assert text.count("# TYPE ups_status gauge") == 1, "one family across devices"
    assert "# HELP ups_input_voltage Grid (input) voltage" in text
    assert 'energy_reading{device="ups1",metric="input_voltage",unit="V"} 229.8' in text


def test_the_catalog_gives_outputs_names_precision_and_order(tmp_path: Path) -> None:
    config = load_site(
        tmp_path,
        "  - {id: ups1, driver: modbus, profile: must_ep20,"
        " connection: {transport: rtu, serial_port: /dev/null}}\n"
        "  - {id: umg509, driver: modbus, profile: janitza_umg509pro,"
        " connection: {transport: tcp, host: 127.0.0.1, port: 15020}}\n"
        "  - {id: meter1, driver: echonet_broute, connection: {serial_port: /dev/ttyS9},"
        ' credentials: {rbid: "00112233445566778899AABBCCDDEEFF", password: "abcdefghijkl"}}\n'
        "  - {id: lux1, driver: luxtronik, connection: {host: 127.0.0.1}}\n",
    )
    catalog = build_catalog(config)
    ups = catalog.devices["ups1"]
    assert ups.metric("input_voltage").display_name == "Grid (input) voltage"
    assert ups.metric("input_voltage").decimals() == 1, "x0.1 V register"
    assert ups.metric("load_power").decimals() == 0 and ups.metric("status").decimals() == 0
    assert ups.metric("input_voltage").prometheus == ("ups_input_voltage", None)
    umg = catalog.devices["umg509"]
    assert umg.metric("voltage_l1_n").display_name == "Voltage L1-N"
    assert umg.metric("voltage_l1_n").decimals() == 1, "a float32 in V: the unit's default"
    meter = catalog.devices["meter1"]
    assert meter.metric("instant_power_w").display_name == "Instantaneous power"
    assert meter.metric("current_r_a").decimals() == 1, "E8 reports 0.1 A"
    assert catalog.devices["lux1"].metric("ID_WEB_Temperatur_TVL").display_name == (
        "Flow temperature"
    )
    order = catalog.column_order("umg509", ["frequency", "zz_extra", "current_l1", "voltage_l1_n"])
    assert order == ["voltage_l1_n", "current_l1", "frequency", "zz_extra"], "register order"
