"""One catalog of metric meaning: every metric of every built-in profile and driver means the
same on /metrics, in MQTT discovery and in the pipeline's cleaning and resampling; profiles
load one way, `path#model` included, for config validation and the catalog alike."""

from __future__ import annotations

import ast
import importlib.util
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

import energy_pipeline.profiles.model as schema
from energy_pipeline.catalog import Catalog, build_catalog
from energy_pipeline.catalog.build import family_metrics
from energy_pipeline.catalog.tables import bounds_table
from energy_pipeline.config import Config
from energy_pipeline.drivers.luxtronik.decode import layout
from energy_pipeline.live import build_outputs
from energy_pipeline.live.metrics import ReadingsText
from energy_pipeline.live.mqtt import MqttSink
from energy_pipeline.live.state import StandaloneState
from energy_pipeline.profiles import builtin_profiles, load_profile
from energy_pipeline.profiles.echonet_names import METRICS as ECHONET_METRICS
from energy_pipeline.profiles.luxtronik_names import Vector, defined_count
from energy_pipeline.readings import PollOutcome, Sample
from energy_pipeline.transforms.minute import compute_minutes
from energy_pipeline_tests.kit.sites import load_site
from energy_pipeline_tests.lakedata import write_raw

NOW = datetime(2025, 1, 15, 12, 0, tzinfo=UTC)
T0 = datetime(2025, 1, 15, 10, 0, tzinfo=UTC)


def _every_family_site(tmp_path: Path) -> Config:
    modbus = [
        {
            "id": f"mb_{name}",
            "driver": "modbus",
            "profile": name,
            "connection": {"transport": "tcp", "host": "127.0.0.1", "port": 15020 + i},
        }
        for i, name in enumerate(builtin_profiles())
    ]
    lux = {"id": "lux1", "driver": "luxtronik", "connection": {"host": "127.0.0.1", "port": 8889}}
    meter = {
        "id": "meter1",
        "driver": "echonet_broute",
        "connection": {"serial_port": "data/meter1.tty"},
        "credentials": {"rbid": "00112233445566778899AABBCCDDEEFF", "password": "0123456789AB"},
    }
    return load_site(
        tmp_path,
        [*modbus, lux, meter],
        site={"name": "all", "timezone": "Europe/Berlin"},
        extra="outputs:\n  mqtt: {host: 127.0.0.1}\n",
    )


def _reported(config: Config) -> dict[str, tuple[str, ...]]:
    """What each device's driver puts in its Sample names: the full metric sets."""
    lux = layout(*(defined_count(v) for v in Vector)).names
    out = {}
    for dev in config.devices:
        if dev.driver == "modbus":
            profile = load_profile(dev.profile, config.base_dir)  # type: ignore[attr-defined]
            out[dev.id] = tuple(p.name for p in profile.points if p.data_type != "string")
        else:
            out[dev.id] = lux if dev.driver == "luxtronik" else ECHONET_METRICS
    return out


def _exposition_kinds(text: str) -> dict[tuple[str, str], str]:
    kinds = {}
    for line in text.splitlines():
        family = line.split("{", 1)[0]
        if family in ("energy_reading", "energy_cumulative_total"):
            labels = dict(
                part.split("=", 1) for part in line.split("{", 1)[1].split("}")[0].split(",")
            )
            key = (labels["device"].strip('"'), labels["metric"].strip('"'))
            kinds[key] = "counter" if family == "energy_cumulative_total" else "gauge"
    return kinds


def test_every_builtin_metric_has_one_meaning(tmp_path: Path) -> None:
    config = _every_family_site(tmp_path)
    catalog = build_catalog(config)
    reported = _reported(config)
    live = build_outputs(config, StandaloneState(started_at=NOW), lambda: NOW)
    outcomes = [
        PollOutcome(d, NOW, NOW, NOW, 1, Sample(names, np.ones(len(names))))
        for d, names in reported.items()
    ]
    live.store.offer(outcomes)
    exposed = _exposition_kinds(ReadingsText(live.store).render())
    series = [(d, m) for d, names in reported.items() for m in names]
    bounds = {
        (row["device_id"], row["metric"]): row["is_counter"]
        for row in bounds_table(catalog, series).to_pylist()
    }
    mqtt = MqttSink(config.outputs.mqtt, config, live.store.meta)  # type: ignore[arg-type]
    for device_id, names in reported.items():
        device = catalog.devices[device_id]
        assert len(set(names)) == len(names), f"{device_id}: a metric reported twice"
        discovery = mqtt.discovery_payload(device_id)["cmps"]
        for name in names:
            meaning = device.metrics.get(name)
            assert meaning is not None, f"{device_id}.{name} has no catalog entry"
            assert catalog.metric(device_id, name) is meaning
            assert live.store.meta[device_id].metric(name) == meaning, f"{device_id}.{name}"
            kind = "counter" if meaning.counter else "gauge"
            assert exposed[(device_id, name)] == kind, f"/metrics {device_id}.{name}"
            assert bounds[(device_id, name)] is meaning.counter, f"pipeline {device_id}.{name}"
            component = discovery.get(f"{device_id}_{name}")
            if component is not None:
                assert component["name"] == meaning.display_name
                assert (component.get("state_class") == "total_increasing") is meaning.counter


def test_the_fixed_name_families_are_defined_once() -> None:
    for gone in ("energy_pipeline.live.meta", "energy_pipeline.transforms.catalog"):
        assert importlib.util.find_spec(gone) is None, f"{gone} is a second definition"
    catalog = Catalog(families=family_metrics())
    lux = set(layout(*(defined_count(v) for v in Vector)).names)
    assert not lux & set(ECHONET_METRICS), "a name in two families would have two meanings"
    assert set(catalog.families) >= set(ECHONET_METRICS)


@pytest.mark.parametrize(
    ("metric", "kind", "unit"),
    [
        # Operating-time and impulse counters only grow: counters (were gauges live).
        ("ID_WEB_Zaehler_BetrZeitVD1", "counter", "s"),
        ("ID_WEB_Zaehler_BetrZeitImpVD1", "counter", ""),
        ("ID_WEB_Zaehler_BetrZeitWP", "counter", "s"),
        ("ID_WEB_Zaehler_BetrZeitSW", "counter", ""),
        ("ID_WEB_Zaehler_BetrZeitSolar", "counter", "s"),
        # Cooling on/off time settings carry the datatype Hours but are settings: gauges.
        ("ID_Einst_Kuhl_Zeit_Ein_akt", "gauge", "h"),
        ("ID_Einst_Kuhl_Zeit_Aus_akt", "gauge", "h"),
        ("ID_WEB_WMZ_Heizung", "counter", "kWh"),
        # EA/EB cumulative energy at the last :00/:30 is unwrapped by the driver: counters
        # (were gauges in the pipeline).
        ("historical_cumulative_power_kwh", "counter", "kWh"),
        ("historical_cumulative_power_export_kwh", "counter", "kWh"),
        ("recent_30min_consumption_kwh", "gauge", "kWh"),
    ],
)
def test_disputed_family_metrics(metric: str, kind: str, unit: str) -> None:
    meaning = Catalog(families=family_metrics()).metric("gone", metric)
    assert (meaning.kind, meaning.unit) == (kind, unit)


HPMANAGER = """\
models:
  small:
    registers:
      - {name: flow_temperature, address: 0, data_type: int16, scale: 0.1, unit: celsius}
  big:
    manufacturer: Acme
    registers:
      - {name: flow_temperature, address: 0, data_type: int16, scale: 0.1, unit: celsius}
      - {name: heat_energy, address: 1, data_type: uint16, unit: kwh, kind: counter}
      - {name: mode, address: 2, enum_values: {0: standby, 1: heating}}
"""


def test_catalog_and_minutes_for_an_hpmanager_model(tmp_path: Path) -> None:
    hp1 = {
        "id": "hp1",
        "driver": "modbus",
        "profile": "registers.yml#big",
        "connection": {"transport": "tcp", "host": "127.0.0.1", "port": 15020},
    }
    config = load_site(
        tmp_path,
        [hp1],
        site={"name": "hp", "timezone": "Europe/Berlin"},
        profiles={"registers.yml": HPMANAGER},
    )
    catalog = build_catalog(config)
    device = catalog.devices["hp1"]
    assert (device.manufacturer, device.model) == ("Acme", "big")
    energy = device.metrics["heat_energy"]
    assert (energy.kind, energy.unit, energy.wrap) == ("counter", "kWh", 65536.0)
    assert device.metrics["mode"].labels == {0: "standby", 1: "heating"}
    # The counter wraps at 2**16 between the second and third reading: the minute deltas say so.
    rows = [
        (T0 + timedelta(seconds=20 * i), "hp1", "heat_energy", v)
        for i, v in enumerate([65530.0, 65534.0, 2.0])
    ] + [(T0 + timedelta(seconds=20 * i), "hp1", "flow_temperature", 30.0 + i) for i in range(3)]
    write_raw(config.data_dir, rows)
    out, _ = compute_minutes(config.data_dir, catalog, T0, T0 + timedelta(minutes=1), NOW)
    by_metric = {r["metric"]: r for r in out.to_pylist()}
    assert by_metric["heat_energy"]["delta"] == pytest.approx(8.0)
    assert by_metric["flow_temperature"]["avg"] == pytest.approx(31.0)


def test_a_profile_kind_wins_over_an_energy_name(tmp_path: Path) -> None:
    """Janitza's net energy (19060) falls while exporting: a gauge, and not the energy role."""
    catalog = build_catalog(_every_family_site(tmp_path))
    device = "mb_janitza_umg509pro"
    assert catalog.metric(device, "energy_active_total").kind == "gauge"
    both = ("energy_active_total", "energy_active_import_total")
    assert catalog.energy_metric(device, both) == "energy_active_import_total"
    assert catalog.energy_metric(device, both[:1]) is None


def test_the_profile_schema_imports_no_loader() -> None:
    """profiles/model.py is the schema both loaders build on, so it imports neither (also not
    inside a function): no model <-> hpmanager cycle."""

    tree = ast.parse(Path(schema.__file__).read_text())
    imported = {
        node.module
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module is not None
    } | {
        alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    }
    assert not {m for m in imported if m.startswith("energy_pipeline.")}, imported
