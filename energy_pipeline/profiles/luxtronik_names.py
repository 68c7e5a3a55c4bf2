"""Identifiers and datatypes of the three Luxtronik vectors, taken from python-luxtronik 0.3.14,
and what they mean: the unit of each datatype and which identifiers only ever grow.

Its users know the values by these identifiers (`ID_WEB_Temperatur_TVL`, ...), so the metric
names are the library's, read from its definition tables once at import rather than copied
into a second table that could drift. The datatype is kept as the library's class name
(`Celsius`, `Energy`, `Bool`, ...); `decode.py` maps it to scaling.

Controllers return firmware-dependent vector lengths. An index the library does not define
keeps a stable name built from the index (`Unknown_Parameter_1130`, `Unknown_Calculation_262`,
`Unknown_Visibility_360`), the same names the library itself uses for gaps.

These are device facts, so they sit beside the register-map profiles: the driver decodes with
them and the metric catalog reads their meaning from them, without either importing the other.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from types import MappingProxyType

from luxtronik.calculations import Calculations
from luxtronik.parameters import Parameters
from luxtronik.visibilities import Visibilities

from energy_pipeline.profiles.model import Kind


class Vector(Enum):
    """The three read-only vectors (the driver's protocol says which command fetches each)."""

    PARAMETERS = "parameters"
    CALCULATIONS = "calculations"
    VISIBILITIES = "visibilities"


@dataclass(frozen=True, slots=True)
class Definition:
    name: str
    datatype: str


UNKNOWN_DATATYPE = "Unknown"

_UNKNOWN_PREFIX = {
    Vector.PARAMETERS: "Unknown_Parameter_",
    Vector.CALCULATIONS: "Unknown_Calculation_",
    Vector.VISIBILITIES: "Unknown_Visibility_",
}


def _table(entries: Mapping[int, object]) -> Mapping[int, Definition]:
    return MappingProxyType(
        {
            index: Definition(entry.name, type(entry).__name__)  # type: ignore[attr-defined]
            for index, entry in sorted(entries.items())
        }
    )


DEFINITIONS: Mapping[Vector, Mapping[int, Definition]] = MappingProxyType(
    {
        Vector.PARAMETERS: _table(Parameters().parameters),
        Vector.CALCULATIONS: _table(Calculations().calculations),
        Vector.VISIBILITIES: _table(Visibilities().visibilities),
    }
)


def definition(vector: Vector, index: int) -> Definition:
    """The library's identifier and datatype, or a stable index-based name for unknown ones."""
    known = DEFINITIONS[vector].get(index)
    if known is not None:
        return known
    return Definition(f"{_UNKNOWN_PREFIX[vector]}{index}", UNKNOWN_DATATYPE)


def defined_count(vector: Vector) -> int:
    """How many indexes the library knows for a vector (1126, 260, 355 in 0.3.14)."""
    return max(DEFINITIONS[vector]) + 1


UNITS: Mapping[str, str] = MappingProxyType(
    {
        "Celsius": "°C",
        "Kelvin": "K",
        "Voltage": "V",
        "Pressure": "bar",
        "Flow": "l/h",
        "Speed": "rpm",
        "Power": "W",
        "Frequency": "Hz",
        "Percent2": "%",
        "Seconds": "s",
        "Hours": "h",
        "Energy": "kWh",
    }
)
"""Units of the library's datatypes, as the decoded (scaled) values carry them."""

COUNTER_PREFIXES = ("ID_WEB_WMZ_", "ID_WEB_Zaehler_")
"""What only ever grows: the heat meter's energies (Wärmemengenzähler, calculations 151..154)
and the operating-time and impulse counters (Zähler, calculations 56..66, 145, 161). Not the
datatype `Hours`: in 0.3.14 only the cooling on/off time settings (parameters 850, 851) have it,
and a setting is a gauge."""

PUBLISH: Mapping[str, str] = MappingProxyType(
    {
        "ID_WEB_Temperatur_TVL": "Flow temperature",
        "ID_WEB_Temperatur_TRL": "Return temperature",
        "ID_WEB_Temperatur_TA": "Outdoor temperature",
        "ID_WEB_Temperatur_TBW": "Hot water temperature",
        "ID_WEB_WMZ_Heizung": "Heat quantity, heating",
        "ID_WEB_WMZ_Brauchwasser": "Heat quantity, hot water",
        "Heat_Output": "Heat output",
    }
)
"""Shown on the dashboard and offered to MQTT discovery, like a profile's `publish: true`, with
the words the Luxtronik web interface uses for them."""


def kind(name: str) -> Kind:
    return "counter" if name.startswith(COUNTER_PREFIXES) else "gauge"
