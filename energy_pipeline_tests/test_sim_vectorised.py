"""`values_between`: a day of a Modbus or Luxtronik model in one array call, equal to
`values_at` per instant.

Equality is to the bit, not approximate: `simulate-history` and a live poll of the simulator
must report the same numbers. Instants are drawn across the years, on the site's DST days, and
on UTC, local and hour boundaries (the UPS plans its outages per hour, the heat pump per cycle).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from energy_pipeline.simulators import ArrayDeviceModel, device_model
from energy_pipeline.simulators.history import instants, model_matrix
from energy_pipeline.simulators.modbus import ProfileModel
from energy_pipeline_tests.kit.sites import BUILTIN_MODBUS_DEVICES, load_site

GENERIC_PROFILE = """
manufacturer: Acme
model: Flow meter
points:
  - {name: flow_rate, address: 0, data_type: float32, unit: m3/h, min: 0, max: 40}
  - {name: line_voltage, address: 2, scale: 0.1, unit: V}
  - {name: line_current, address: 3, scale: 0.01, unit: A}
  - {name: heat_energy, address: 10, data_type: uint32, unit: kWh, kind: counter}
  - {name: run_hours, address: 12, data_type: uint32, kind: counter}
  - {name: valve, address: 14, kind: state, labels: {3: closed, 4: open}}
  - {name: tripped, address: 5, register_type: coil, data_type: bool, kind: state}
"""

DEVICES = (
    BUILTIN_MODBUS_DEVICES
    + """
  - {id: acme, driver: modbus, profile: meter.yaml,
     connection: {transport: tcp, host: 127.0.0.1, port: 15030}}
  - {id: luxnet, driver: luxtronik, connection: {host: 127.0.0.1, port: 18889}}
  - id: meter1
    driver: echonet_broute
    connection: {serial_port: data/sim/meter1.tty, baudrate: 115200}
    credentials: {rbid: "00112233445566778899AABBCCDDEEFF", password: "0123456789AB"}
"""
)

# Europe/Berlin's DST days and an ordinary winter day, each from 00:00 UTC.
DAYS = [
    datetime(2026, 3, 29, tzinfo=UTC),
    datetime(2026, 10, 25, tzinfo=UTC),
    datetime(2026, 1, 14, tzinfo=UTC),
]
ARRAY_MODELS = ("umg509", "hp", "lux", "ups1", "pv", "acme", "luxnet")


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    folder = tmp_path_factory.mktemp("site")
    (folder / "meter.yaml").write_text(GENERIC_PROFILE)
    config = load_site(folder, DEVICES)
    return {d.id: device_model(d, config) for d in config.devices}


def per_instant(model: ArrayDeviceModel, epoch_s: np.ndarray) -> np.ndarray:
    rows = [model.values_at(datetime.fromtimestamp(t, UTC)) for t in epoch_s.tolist()]
    names = tuple(rows[0])
    assert all(tuple(row) == names for row in rows)
    return np.array([list(row.values()) for row in rows])


def boundary_instants() -> np.ndarray:
    """Seconds around UTC midnight, Berlin midnight, the DST switches and hour starts."""
    edges = []
    for day in DAYS:
        for hours in (0, 1, 2, 3, 22, 23, 24):
            edge = (day + timedelta(hours=hours)).timestamp()
            edges += [edge - 1, edge, edge + 1, edge + 0.5]
    return np.array(edges)


def assert_rows_equal(model: ArrayDeviceModel, epoch_s: np.ndarray) -> None:
    names, matrix = model.values_between(epoch_s)
    assert names == tuple(model.values_at(datetime.fromtimestamp(float(epoch_s[0]), UTC)))
    expected = per_instant(model, epoch_s)
    mismatch = np.argwhere(matrix != expected)
    assert mismatch.size == 0, [
        (names[j], float(matrix[i, j]), float(expected[i, j])) for i, j in mismatch[:5]
    ]


@pytest.mark.parametrize("device_id", ARRAY_MODELS)
def test_vectorised_rows_equal_values_at_on_boundaries_and_dst_days(site, device_id) -> None:
    model = site[device_id]
    assert isinstance(model, ArrayDeviceModel)
    assert_rows_equal(model, boundary_instants())


@pytest.mark.parametrize("device_id", ARRAY_MODELS)
@settings(max_examples=15, deadline=None)
@given(
    micros=st.lists(
        st.integers(
            int(datetime(2020, 1, 2, tzinfo=UTC).timestamp() * 1e6),
            int(datetime(2032, 1, 1, tzinfo=UTC).timestamp() * 1e6),
        ),
        min_size=1,
        max_size=25,
    )
)
def test_vectorised_rows_equal_values_at_at_random_instants(site, device_id, micros) -> None:
    epoch_s = np.array([datetime.fromtimestamp(m / 1e6, UTC).timestamp() for m in micros])
    assert_rows_equal(site[device_id], epoch_s)


@pytest.mark.slow
@pytest.mark.parametrize("device_id", ARRAY_MODELS)
def test_a_whole_day_at_poll_interval_equals_values_at(site, device_id) -> None:
    """The history's own case: one call per device-day, instants on the poll grid."""
    day = DAYS[0]
    assert_rows_equal(site[device_id], instants(day, day + timedelta(days=1), 15))


@pytest.mark.slow
@pytest.mark.parametrize("device_id", ARRAY_MODELS)
def test_counters_only_grow_across_day_chunks(site, device_id) -> None:
    model = site[device_id]
    names = model.values_between(np.array([DAYS[1].timestamp()]))[0]
    if isinstance(model, ProfileModel):
        counters = [i for i, p in enumerate(model.points) if p.kind == "counter"]
    else:  # Luxtronik: operating hours, compressor starts, heat quantities
        heat = ("ID_WEB_WMZ_Heizung", "ID_WEB_WMZ_Brauchwasser", "ID_WEB_WMZ_Seit")
        counters = [i for i, n in enumerate(names) if n.startswith("ID_WEB_Zaehler") or n in heat]
    assert counters or device_id in ("ups1", "pv")
    chunks = [
        model.values_between(instants(day, day + timedelta(days=1), 30))[1]
        for day in (DAYS[1] - timedelta(days=1), DAYS[1], DAYS[1] + timedelta(days=1))
    ]
    joined = np.vstack(chunks)
    assert np.all(np.diff(joined[:, counters], axis=0) >= 0)
    start = DAYS[1] - timedelta(days=1)
    at_once = model.values_between(instants(start, start + timedelta(days=3), 30))[1]
    np.testing.assert_array_equal(at_once, joined)


def test_history_uses_the_array_path_and_falls_back_per_instant(site) -> None:
    ts = instants(DAYS[2], DAYS[2] + timedelta(minutes=10), 30)
    model = site["umg509"]
    names, matrix = model_matrix(model, ts)
    np.testing.assert_array_equal(matrix, per_instant(model, ts))
    meter = site["meter1"]
    assert not isinstance(meter, ArrayDeviceModel)
    names, matrix = model_matrix(meter, ts)
    first = meter.values_at(datetime.fromtimestamp(float(ts[0]), UTC))
    assert names == tuple(first) and matrix.shape == (len(ts), len(first))
    np.testing.assert_array_equal(matrix[0], np.array(list(first.values())))


def test_instants_before_the_epoch_are_refused_in_an_array_too(site) -> None:
    epoch_s = np.array([datetime(2026, 1, 1, tzinfo=UTC).timestamp(), 1.5e9])
    with pytest.raises(ValueError, match="EPOCH"):
        site["hp"].values_between(epoch_s)
