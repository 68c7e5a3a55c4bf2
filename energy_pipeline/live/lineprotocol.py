"""InfluxDB line protocol, built a batch at a time with Arrow's string kernels.

A point is `measurement,tag=value,... field=value,... timestamp`. What depends only on the
device — the escaped measurement and tag set, and the escaped field key of every metric — is
built once per device and metric-name tuple; a batch of polls is then a handful of vectorised
kernels over all of its values at once (finite check, float-to-text, join), never a Python
step per value. Arrow writes a float as the shortest text that reads back to the same double,
so values arrive exact.

Escaping follows the InfluxDB docs: measurements escape commas and spaces; tag keys, tag
values and field keys escape commas, equals signs and spaces. Line protocol has no newline and
no empty tag value: a newline becomes a space and an empty tag is left out. Fields are numbers
only (a state is an integer, `3i`); NaN and infinities are left out, and a point left without a
field is not sent, since InfluxDB would refuse it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from energy_pipeline.readings import PollOutcome

_MEASUREMENT = str.maketrans({",": "\\,", " ": "\\ ", "\n": " "})
_KEY = str.maketrans({",": "\\,", "=": "\\=", " ": "\\ ", "\n": " "})
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)


def escape_measurement(text: str) -> str:
    return text.translate(_MEASUREMENT)


def escape_key(text: str) -> str:
    """Tag keys, tag values and field keys."""
    return text.translate(_KEY)


def series_key(measurement: str, tags: Mapping[str, str]) -> str:
    """`measurement,tag=value,...`, tags sorted by key as InfluxDB keeps them."""
    parts = [escape_measurement(measurement)]
    parts += [f"{escape_key(k)}={escape_key(v)}" for k, v in sorted(tags.items()) if k and v]
    return ",".join(parts)


def epoch_us(ts: datetime) -> int:
    return (ts - _EPOCH) // _US


def to_precision(us: np.ndarray, precision: str) -> np.ndarray:
    """Microsecond instants in the unit the request names (`precision=`), floored."""
    if precision == "ns":
        return us * 1000
    if precision == "us":
        return us
    return us // (1000 if precision == "ms" else 1_000_000)


def encode_lines(
    series: pa.Array,
    stamps: np.ndarray,
    point_of_value: np.ndarray,
    keys: pa.Array,
    values: np.ndarray,
    integer: np.ndarray,
) -> bytes:
    """The request body for points given as flat arrays.

    `series` and `stamps` have one entry per point; `keys` (escaped field keys), `values` and
    `integer` (write as `<n>i`) one per value, grouped by point, `point_of_value` saying whose.
    """
    finite = np.isfinite(values)
    if not finite.all():
        point_of_value, values, integer = point_of_value[finite], values[finite], integer[finite]
        keys = keys.filter(pa.array(finite))
    counts = np.bincount(point_of_value, minlength=len(stamps))
    offsets = np.zeros(len(stamps) + 1, dtype=np.int32)
    np.cumsum(counts, out=offsets[1:])
    text = pc.cast(pa.array(values), pa.string())
    if integer.any():
        whole = pc.cast(pc.cast(pa.array(values), pa.int64(), safe=False), pa.string())
        text = pc.if_else(pa.array(integer), pc.binary_join_element_wise(whole, "i", ""), text)
    pairs = pc.binary_join_element_wise(keys, text, "=")
    fields = pc.binary_join(pa.ListArray.from_arrays(pa.array(offsets), pairs), ",")
    ends = pc.binary_join_element_wise(pc.cast(pa.array(stamps), pa.string()), "\n", "")
    lines = pc.binary_join_element_wise(series, fields, ends, " ")
    if not (counts > 0).all():
        lines = lines.filter(pa.array(counts > 0))
    return _text_of(lines)


def _text_of(lines: pa.StringArray) -> bytes:
    """The lines back to back, read straight from the array's character buffer."""
    if len(lines) == 0:
        return b""
    offsets = np.frombuffer(lines.buffers()[1], dtype=np.int32)
    first, last = int(offsets[lines.offset]), int(offsets[lines.offset + len(lines)])
    return lines.buffers()[2][first:last].to_pybytes()


@dataclass(frozen=True, slots=True)
class _FieldSet:
    names: tuple[str, ...]
    key_ids: np.ndarray
    integer: np.ndarray


class PointEncoder:
    """Points of one measurement: each device's series key and each metric's escaped field
    key, kept once, so a batch costs kernels over its values plus one dictionary look-up per
    point."""

    def __init__(
        self,
        measurement: str,
        precision: str,
        device_tags: Mapping[str, Mapping[str, str]],
        integer_fields: Mapping[str, frozenset[str]],
        default_tags: Mapping[str, str],
    ):
        self.measurement = measurement
        self.precision = precision
        self.device_tags = device_tags
        self.integer_fields = integer_fields
        self.default_tags = default_tags
        self._series: dict[str, str] = {}
        self._fieldsets: dict[str, _FieldSet] = {}
        self._key_ids: dict[str, int] = {}
        self._keys: list[str] = []
        self._key_array = pa.array([], pa.string())

    def series(self, device: str) -> str:
        found = self._series.get(device)
        if found is None:
            tags = {**self.default_tags, **self.device_tags.get(device, {}), "device_id": device}
            found = self._series[device] = series_key(self.measurement, tags)
        return found

    def _key_table(self, names: Sequence[str]) -> np.ndarray:
        ids = []
        for name in names:
            key = self._key_ids.get(name)
            if key is None:
                key = self._key_ids[name] = len(self._keys)
                self._keys.append(escape_key(name))
            ids.append(key)
        if len(self._key_array) != len(self._keys):
            self._key_array = pa.array(self._keys, pa.string())
        return np.array(ids, dtype=np.int32)

    def _fieldset(self, device: str, names: tuple[str, ...]) -> _FieldSet:
        found = self._fieldsets.get(device)
        if found is None or (found.names is not names and found.names != names):
            ints = self.integer_fields.get(device, frozenset())
            found = _FieldSet(
                names, self._key_table(names), np.array([n in ints for n in names], dtype=bool)
            )
            self._fieldsets[device] = found
        return found

    def outcomes(self, outcomes: Sequence[PollOutcome]) -> bytes:
        """One point per successful poll, at the poll's scheduled instant."""
        series, stamps, values, key_ids, integer, sizes = [], [], [], [], [], []
        for outcome in outcomes:
            sample = outcome.sample
            if sample is None or not sample.names:
                continue
            fs = self._fieldset(outcome.device_id, sample.names)
            series.append(self.series(outcome.device_id))
            stamps.append(epoch_us(outcome.ts))
            values.append(sample.values)
            key_ids.append(fs.key_ids)
            integer.append(fs.integer)
            sizes.append(len(sample.names))
        if not series:
            return b""
        return encode_lines(
            pa.array(series, pa.string()),
            to_precision(np.array(stamps, dtype=np.int64), self.precision),
            np.repeat(np.arange(len(series)), sizes),
            self._key_array.take(pa.array(np.concatenate(key_ids))),
            np.concatenate(values).astype(np.float64, copy=False),
            np.concatenate(integer),
        )

    def long_table(self, table: pa.Table) -> bytes:
        """Points from lake rows (`ts`, `device_id`, `metric`, `value`) sorted by device and
        ts: one point per device and instant."""
        if table.num_rows == 0:
            return b""
        ts = table.column("ts").cast(pa.int64()).to_numpy()
        devices = table.column("device_id").combine_chunks().dictionary_encode()
        metrics = table.column("metric").combine_chunks().dictionary_encode()
        dev_ids = devices.indices.to_numpy(zero_copy_only=False).astype(np.int64)
        metric_ids = metrics.indices.to_numpy(zero_copy_only=False).astype(np.int64)
        new_point = np.ones(len(ts), dtype=bool)
        new_point[1:] = (ts[1:] != ts[:-1]) | (dev_ids[1:] != dev_ids[:-1])
        starts = np.flatnonzero(new_point)
        device_names = devices.dictionary.to_pylist()
        metric_names = metrics.dictionary.to_pylist()
        key_ids = self._key_table(metric_names)
        pair = dev_ids * len(metric_names) + metric_ids
        pairs, pair_of_row = np.unique(pair, return_inverse=True)
        ints = np.array(
            [
                metric_names[p % len(metric_names)]
                in self.integer_fields.get(device_names[p // len(metric_names)], frozenset())
                for p in pairs.tolist()
            ],
            dtype=bool,
        )
        series = pa.array([self.series(d) for d in device_names], pa.string())
        return encode_lines(
            series.take(pa.array(dev_ids[starts])),
            to_precision(ts[starts], self.precision),
            np.cumsum(new_point) - 1,
            self._key_array.take(pa.array(key_ids[metric_ids])),
            table.column("value").to_numpy().astype(np.float64, copy=False),
            ints[pair_of_row],
        )
