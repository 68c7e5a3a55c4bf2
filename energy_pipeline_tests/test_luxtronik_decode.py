"""Luxtronik names and decoding: python-luxtronik's identifiers, and values equal to what the
library's own per-value conversion gives, from one vectorised pass."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from luxtronik import datatypes
from luxtronik.calculations import Calculations
from luxtronik.parameters import Parameters
from luxtronik.visibilities import Visibilities

from energy_pipeline.drivers.luxtronik.decode import (
    BOOL_TYPES,
    DIVISORS,
    IP_TYPE,
    TIMESTAMP_TYPES,
    VERSION_TYPE,
    decode,
    layout,
)
from energy_pipeline.profiles.luxtronik_names import DEFINITIONS, Vector, defined_count, definition

RAW_TYPES = {
    "Unknown",
    "Percent2",
    "Power",
    "Flow",
    "Frequency",
    "Seconds",
    "Pulses",
    "Speed",
    "Count",
    "Level",
    "Icon",
    "Errorcode",
}


def _vectors(rng: np.random.Generator, extra: int = 0):
    params = rng.integers(-3000, 3000, defined_count(Vector.PARAMETERS) + extra).astype(">i4")
    calcs = rng.integers(-3000, 3000, defined_count(Vector.CALCULATIONS) + extra).astype(">i4")
    calcs[81:91] = [ord(c) for c in "V3.91.0"] + [0, 0, 0]
    calcs[91:95] = [-1062726476, -256, -1062726401, -1062726655]
    vis = rng.integers(-1, 2, defined_count(Vector.VISIBILITIES) + extra).astype("i1")
    return params, calcs, vis


def test_library_counts_and_identifiers() -> None:
    assert defined_count(Vector.PARAMETERS) == 1126
    assert defined_count(Vector.CALCULATIONS) == 260
    assert defined_count(Vector.VISIBILITIES) == 355
    assert definition(Vector.CALCULATIONS, 10).name == "ID_WEB_Temperatur_TVL"
    assert definition(Vector.CALCULATIONS, 10).datatype == "Celsius"
    assert definition(Vector.PARAMETERS, 2).name == "ID_Einst_BWS_akt"


def test_unknown_indexes_keep_stable_index_names() -> None:
    assert definition(Vector.PARAMETERS, 1130).name == "Unknown_Parameter_1130"
    assert definition(Vector.CALCULATIONS, 262).name == "Unknown_Calculation_262"
    assert definition(Vector.VISIBILITIES, 360).name == "Unknown_Visibility_360"


def test_every_library_datatype_has_a_decision() -> None:
    """A new library version with a new datatype must be looked at, not silently passed raw."""
    decided = set(DIVISORS) | BOOL_TYPES | TIMESTAMP_TYPES | {VERSION_TYPE, IP_TYPE} | RAW_TYPES
    used = {d.datatype for table in DEFINITIONS.values() for d in table.values()}
    undecided = {
        t for t in used - decided if not issubclass(getattr(datatypes, t), datatypes.SelectionBase)
    }
    assert undecided == set()


def _library_value(entry: datatypes.Base, raw: int) -> float:
    if isinstance(entry, datatypes.SelectionBase):
        return float(raw)
    if isinstance(entry, datatypes.Timestamp):
        return float(max(raw, 0))
    return float(entry.from_heatpump(raw))


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_values_equal_the_library_conversion(seed: int) -> None:
    params, calcs, vis = _vectors(np.random.default_rng(seed), extra=5)
    sample = decode(params, calcs, vis)
    got = dict(zip(sample.names, sample.values.tolist(), strict=True))
    checked = 0
    for table, raw in (
        (Parameters().parameters, params),
        (Calculations().calculations, calcs),
        (Visibilities().visibilities, vis),
    ):
        for index, entry in table.items():
            if isinstance(entry, datatypes.Version | datatypes.IPAddress):
                assert entry.name not in got
                continue
            assert got[entry.name] == _library_value(entry, int(raw[index])), entry.name
            checked += 1
    # The library's tables hold 1126 + 251 + 355 entries (82..90 are the firmware's tail);
    # five of them (firmware, four IP addresses) are attributes.
    assert checked == 1126 + 251 + 355 - 5
    assert got["Unknown_Parameter_1130"] == float(params[1130])
    assert got["Unknown_Visibility_359"] == float(vis[359])
    assert len(sample.names) == len(set(sample.names)) == checked + 15


def test_scaling_of_the_documented_types() -> None:
    params, calcs, vis = _vectors(np.random.default_rng(0))
    calcs[10], calcs[180], calcs[151], calcs[44], calcs[95], calcs[257] = (
        352,
        1834,
        123456,
        5,
        -7,
        8040,
    )
    values = decode(params, calcs, vis).valid_values()
    assert values["ID_WEB_Temperatur_TVL"] == 35.2
    assert values["ID_WEB_LIN_HD"] == 18.34
    assert values["ID_WEB_WMZ_Heizung"] == 12345.6
    assert values["ID_WEB_VD1out"] == 1.0
    assert values["ID_WEB_ERROR_Time0"] == 0.0
    assert values["Heat_Output"] == 8040.0


def test_text_goes_to_attributes() -> None:
    sample = decode(*_vectors(np.random.default_rng(0)))
    assert sample.attributes == {
        "ID_WEB_SoftStand": "V3.91.0",
        "ID_WEB_AdresseIP_akt": "192.168.20.180",
        "ID_WEB_SubNetMask_akt": "255.255.255.0",
        "ID_WEB_Add_Broadcast": "192.168.20.255",
        "ID_WEB_Add_StdGateway": "192.168.20.1",
    }
    assert not {f"Unknown_Calculation_{i}" for i in range(82, 91)} & set(sample.names)


def test_names_tuple_is_the_same_object_from_poll_to_poll() -> None:
    rng = np.random.default_rng(5)
    first = decode(*_vectors(rng))
    second = decode(*_vectors(rng))
    assert first.names is second.names
    assert first.values.dtype == np.float64


def test_short_vectors_decode_what_is_there() -> None:
    """A firmware with fewer calculations than the library knows: no crash, no invented names."""
    params, calcs, vis = _vectors(np.random.default_rng(0))
    sample = decode(params[:10], calcs[:85], vis[:0])
    assert "ID_WEB_WP_BZ_akt" in sample.names
    assert "ID_WEB_Temperatur_TVL" in sample.names
    assert sample.attributes["ID_WEB_SoftStand"] == "V3.9"
    assert len(sample.names) == 10 + 81
    assert layout(10, 85, 0).lengths == (10, 85, 0)


@given(
    st.lists(st.integers(-(2**31), 2**31 - 1), max_size=40),
    st.lists(st.integers(-(2**31), 2**31 - 1), max_size=300),
    st.lists(st.integers(-128, 127), max_size=40),
)
@settings(max_examples=100, deadline=None)
def test_any_integers_decode_to_finite_values(
    params: list[int], calcs: list[int], vis: list[int]
) -> None:
    sample = decode(
        np.array(params, dtype=">i4"), np.array(calcs, dtype=">i4"), np.array(vis, dtype="i1")
    )
    assert len(sample.names) == len(sample.values)
    assert np.isfinite(sample.values).all()
    assert all(isinstance(v, str) for v in sample.attributes.values())
