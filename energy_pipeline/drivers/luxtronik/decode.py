"""Raw Luxtronik vectors to engineering values, vectorised.

A poll returns ~1,750 integers. Everything that depends only on the vector lengths (names,
which index goes where, divisors, which positions are booleans or timestamps) is built once
per length triple into a `Layout` and cached, so decoding a poll is a handful of numpy
operations; only the few text attributes are built in Python.

Decisions (python-luxtronik 0.3.14 `datatypes.py` is the reference for the scaling):
* All three vectors are readings: parameters (settings such as setpoints and modes change
  over time and belong in the history), calculations (measurements) and visibilities (which
  menu items the controller shows: configuration, cheap to keep). The Luxtronik-logger seed
  kept all of them too.
* Celsius, Kelvin, Percent, Energy (kWh), Voltage, Hours are tenths; Pressure is hundredths
  (bar); everything else is taken as the device sends it (W, Hz, l/h, rpm, seconds, counts).
* Bool is 1.0/0.0 (any non-zero is true). Selection types (operating mode, heating mode, ...)
  are their numeric codes; the labels are python-luxtronik's `codes`.
* Timestamp is epoch seconds as the controller reports it (it counts its local wall clock as
  if it were UTC); zero or negative means "none" and is 0, as in the library.
* Text is not a reading: the firmware string (calculations 81..90, one ASCII code each) and
  the IPv4 addresses (calculations 91..94) become `Sample.attributes`, keyed by identifier.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from energy_pipeline.profiles.luxtronik_names import Definition, Vector, definition
from energy_pipeline.readings import Sample

DIVISORS = {
    "Celsius": 10.0,
    "Kelvin": 10.0,
    "Percent": 10.0,
    "Energy": 10.0,
    "Voltage": 10.0,
    "Hours": 10.0,
    "Pressure": 100.0,
}
BOOL_TYPES = frozenset({"Bool"})
TIMESTAMP_TYPES = frozenset({"Timestamp"})
VERSION_TYPE = "Version"
IP_TYPE = "IPAddress"
VERSION_WIDTH = 10
"""The firmware string occupies ten calculations, 81..90, one character code each."""

VECTOR_ORDER = (Vector.PARAMETERS, Vector.CALCULATIONS, Vector.VISIBILITIES)


@dataclass(frozen=True, slots=True)
class TextField:
    name: str
    datatype: str
    start: int
    stop: int


@dataclass(frozen=True, slots=True)
class Layout:
    """Where each reading comes from in the concatenated raw vectors, and how it scales."""

    lengths: tuple[int, int, int]
    names: tuple[str, ...]
    take: np.ndarray
    divisor: np.ndarray
    bools: np.ndarray
    timestamps: np.ndarray
    texts: tuple[TextField, ...]


def divisor(item: Definition) -> float:
    return DIVISORS.get(item.datatype, 1.0)


@lru_cache(maxsize=16)
def layout(n_parameters: int, n_calculations: int, n_visibilities: int) -> Layout:
    """The decoding plan for one length triple (a controller's lengths never change at run
    time, so the cache holds one entry per device model in practice)."""
    lengths = (n_parameters, n_calculations, n_visibilities)
    names: list[str] = []
    take: list[int] = []
    divisors: list[float] = []
    bools: list[int] = []
    timestamps: list[int] = []
    texts: list[TextField] = []
    offset = 0
    for vector, length in zip(VECTOR_ORDER, lengths, strict=True):
        skip_until = 0
        for index in range(length):
            item = definition(vector, index)
            position = offset + index
            if item.datatype == VERSION_TYPE:
                stop = min(position + VERSION_WIDTH, offset + length)
                texts.append(TextField(item.name, item.datatype, position, stop))
                skip_until = index + VERSION_WIDTH
                continue
            if index < skip_until:
                continue
            if item.datatype == IP_TYPE:
                texts.append(TextField(item.name, item.datatype, position, position + 1))
                continue
            if item.datatype in BOOL_TYPES:
                bools.append(len(names))
            elif item.datatype in TIMESTAMP_TYPES:
                timestamps.append(len(names))
            names.append(item.name)
            take.append(position)
            divisors.append(divisor(item))
        offset += length
    return Layout(
        lengths=lengths,
        names=tuple(names),
        take=np.asarray(take, dtype=np.intp),
        divisor=np.asarray(divisors, dtype=np.float64),
        bools=np.asarray(bools, dtype=np.intp),
        timestamps=np.asarray(timestamps, dtype=np.intp),
        texts=tuple(texts),
    )


def _text(field: TextField, raw: np.ndarray) -> str:
    codes = raw[field.start : field.stop]
    if field.datatype == IP_TYPE:
        return str(ipaddress.IPv4Address(int(codes[0]) & 0xFFFFFFFF))
    return "".join(chr(int(c)) for c in codes if 32 <= c < 127).strip()


def decode(parameters: np.ndarray, calculations: np.ndarray, visibilities: np.ndarray) -> Sample:
    """One poll's three raw vectors as a Sample; names are the cached layout's tuple."""
    plan = layout(len(parameters), len(calculations), len(visibilities))
    raw = np.concatenate((parameters, calculations, visibilities), dtype=np.int64)
    attributes = {field.name: _text(field, raw) for field in plan.texts}
    return Sample(plan.names, decode_values(raw, plan), attributes)


def decode_values(raw: np.ndarray, plan: Layout) -> np.ndarray:
    """The numeric values of concatenated raw vectors (one poll, or polls x items at once)."""
    values = raw[..., plan.take].astype(np.float64)
    values /= plan.divisor
    values[..., plan.bools] = values[..., plan.bools] != 0.0
    values[..., plan.timestamps] = np.maximum(values[..., plan.timestamps], 0.0)
    return values
