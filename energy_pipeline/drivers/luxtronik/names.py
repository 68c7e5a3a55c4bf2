"""Identifiers and datatypes of the three Luxtronik vectors, taken from python-luxtronik 0.3.14.

Its users know the values by these identifiers (`ID_WEB_Temperatur_TVL`, ...), so the metric
names are the library's, read from its definition tables once at import rather than copied
into a second table that could drift. The datatype is kept as the library's class name
(`Celsius`, `Energy`, `Bool`, ...); `decode.py` maps it to scaling.

Controllers return firmware-dependent vector lengths. An index the library does not define
keeps a stable name built from the index (`Unknown_Parameter_1130`, `Unknown_Calculation_262`,
`Unknown_Visibility_360`), the same names the library itself uses for gaps.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from types import MappingProxyType

from luxtronik.calculations import Calculations
from luxtronik.parameters import Parameters
from luxtronik.visibilities import Visibilities

from energy_pipeline.drivers.luxtronik import protocol


class Vector(Enum):
    """The three read-only vectors, by the command that fetches each."""

    PARAMETERS = protocol.READ_PARAMETERS
    CALCULATIONS = protocol.READ_CALCULATIONS
    VISIBILITIES = protocol.READ_VISIBILITIES


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
