"""Class 0x0288 (low-voltage smart electric energy meter): property values to engineering units.

Pure functions over EDT bytes. Sentinels ("no data", under/overflow) become None, so a meter
that is still booting or a single-phase meter's missing T phase is a missing value, never a
number. Meter clocks are local time; timestamps leave here as UTC epoch seconds.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, tzinfo

EPC_OPERATION_STATUS = 0x80
EPC_FAULT_STATUS = 0x88
EPC_GET_MAP = 0x9F
EPC_COEFFICIENT = 0xD3
EPC_DIGITS = 0xD7
EPC_CUMULATIVE = 0xE0
EPC_UNIT = 0xE1
EPC_HISTORY = 0xE2
EPC_CUMULATIVE_REVERSE = 0xE3
EPC_INSTANT_POWER = 0xE7
EPC_INSTANT_CURRENT = 0xE8
EPC_FIXED_TIME = 0xEA
EPC_FIXED_TIME_REVERSE = 0xEB

NO_DATA_U32 = 0xFFFFFFFE
COUNTER_MAX = 99_999_999
SLOTS_PER_DAY = 48
SLOT_SECONDS = 1800
HISTORY_LEN = 2 + 4 * SLOTS_PER_DAY

UNIT_KWH: dict[int, float] = {
    0x00: 1.0,
    0x01: 0.1,
    0x02: 0.01,
    0x03: 0.001,
    0x04: 0.0001,
    0x0A: 10.0,
    0x0B: 100.0,
    0x0C: 1000.0,
    0x0D: 10000.0,
}

# Read on every poll in one Get; the static scale properties are read once per session.
POLL_EPCS = (
    EPC_INSTANT_POWER,
    EPC_INSTANT_CURRENT,
    EPC_CUMULATIVE,
    EPC_CUMULATIVE_REVERSE,
    EPC_FIXED_TIME,
    EPC_FIXED_TIME_REVERSE,
)


class PropertyError(ValueError):
    """An EDT whose length or content does not fit the property's layout."""


def _need(edt: bytes, length: int, what: str) -> None:
    if len(edt) != length:
        raise PropertyError(f"{what}: {len(edt)} bytes, expected {length}")


def instant_power_w(edt: bytes) -> float | None:
    """E7: int32 W; 0x7FFFFFFE no data, 0x7FFFFFFF overflow, 0x80000000 underflow."""
    _need(edt, 4, "E7 instantaneous power")
    (raw,) = struct.unpack(">i", edt)
    if raw in (0x7FFFFFFE, 0x7FFFFFFF, -0x80000000):
        return None
    return float(raw)


def _current(raw: int) -> float | None:
    if raw in (0x7FFE, 0x7FFF, -0x8000):
        return None
    return raw / 10.0


def instant_currents_a(edt: bytes) -> tuple[float | None, float | None]:
    """E8: int16 R and T in 0.1 A. Single-phase two-wire meters report T as 0x7FFE."""
    _need(edt, 4, "E8 instantaneous currents")
    r, t = struct.unpack(">hh", edt)
    return _current(r), _current(t)


def total_current_a(r: float | None, t: float | None) -> float | None:
    """The HEMS seed's `current_a`: R on single-phase two-wire, R + T on three-wire."""
    if r is None:
        return None
    return r if t is None else round(r + t, 1)


def coefficient(edt: bytes | None) -> int:
    """D3: uint32 multiplier, optional (absent from the Get map means 1)."""
    if edt is None:
        return 1
    _need(edt, 4, "D3 coefficient")
    (value,) = struct.unpack(">I", edt)
    if not 1 <= value <= 999_999:
        raise PropertyError(f"D3 coefficient {value}; expected 1..999999")
    return value


def unit_kwh(edt: bytes) -> float:
    _need(edt, 1, "E1 unit")
    try:
        return UNIT_KWH[edt[0]]
    except KeyError:
        raise PropertyError(f"E1 unit code {edt[0]:02X} is not defined") from None


def digits(edt: bytes | None) -> int:
    """D7: effective digits of the cumulative counters (1..8); absent means the full 8."""
    if edt is None:
        return 8
    _need(edt, 1, "D7 digits")
    if not 1 <= edt[0] <= 8:
        raise PropertyError(f"D7 digits {edt[0]}; expected 1..8")
    return edt[0]


def counter_raw(edt: bytes) -> int | None:
    """E0/E3: uint32 count 0..99,999,999; 0xFFFFFFFE no data."""
    _need(edt, 4, "cumulative energy")
    (raw,) = struct.unpack(">I", edt)
    if raw == NO_DATA_U32 or raw > COUNTER_MAX:
        return None
    return raw


@dataclass(frozen=True, slots=True)
class Scale:
    """kWh = count x D3 x E1 (node-wisunrb's `_multiplyCoefficientAndUnit`); wraps at 10^D7."""

    coefficient: int = 1
    unit_kwh: float = 0.1
    digits: int = 8
    kwh_per_count: float = field(init=False)
    modulus: int = field(init=False)
    places: int = field(init=False)

    def __post_init__(self) -> None:
        step = self.coefficient * self.unit_kwh
        object.__setattr__(self, "kwh_per_count", step)
        object.__setattr__(self, "modulus", 10**self.digits)
        object.__setattr__(
            self, "places", max(0, -math.floor(math.log10(step)) + 1) if step < 1 else 0
        )

    def kwh(self, count: int) -> float:
        """Rounded to the counter's resolution, so 3 x 0.1 reads 0.3, not 0.30000000000000004."""
        return round(count * self.kwh_per_count, self.places)


class RolloverCounter:
    """Turns a counter that wraps at 10^D7 into one that only grows.

    A reading below the previous one is a wrap when the drop is more than half the range
    (a small drop is a meter glitch or replacement and is passed through, not "fixed").
    """

    def __init__(self, wraps: int = 0, last: int | None = None):
        self.wraps = wraps
        self.last = last

    def update(self, raw: int, modulus: int) -> int:
        if self.last is not None and raw < self.last and self.last - raw > modulus // 2:
            self.wraps += 1
        self.last = raw
        return raw + self.wraps * modulus


def fixed_time(edt: bytes, tz: tzinfo) -> tuple[float, int] | None:
    """EA/EB: meter-local YYYY MM DD hh mm ss + uint32 count -> (UTC epoch s, count).

    None when the meter has no reading yet (sentinel count or an impossible date).
    """
    _need(edt, 11, "EA/EB fixed-time cumulative")
    year, month, day, hour, minute, second, raw = struct.unpack(">HBBBBBI", edt)
    if raw == NO_DATA_U32 or raw > COUNTER_MAX:
        return None
    try:
        local = datetime(year, month, day, hour, minute, second, tzinfo=tz)
    except ValueError:
        return None
    return local_epoch(local), raw


def local_epoch(local: datetime) -> float:
    """Epoch seconds of a site wall-clock time (fold=0: the first of a repeated hour)."""
    return local.timestamp()


def history(edt: bytes) -> tuple[int, list[int | None]]:
    """E2/E4: uint16 day + 48 uint32 slot counts (slot i at i x 30 min local), None = no data."""
    _need(edt, HISTORY_LEN, "E2 history")
    day, *slots = struct.unpack(">H48I", edt)
    if day > 99:
        raise PropertyError(f"E2 history day {day}; expected 0..99")
    return day, [None if v == NO_DATA_U32 or v > COUNTER_MAX else v for v in slots]


def slot_epoch(day: date, slot: int, tz: tzinfo) -> float:
    """UTC epoch seconds of history slot `slot` of local day `day`.

    Slots are wall-clock times (i x 30 min after local midnight), so on a DST day the slot
    after 01:30 is 02:00 local whatever the elapsed time.
    """
    hours, half = divmod(slot, 2)
    if hours == 24:
        return local_epoch(datetime.combine(day + timedelta(days=1), time(0), tzinfo=tz))
    return local_epoch(datetime.combine(day, time(hours, 30 * half), tzinfo=tz))


def newest_slot(slots: Sequence[int | None]) -> int | None:
    for i in range(len(slots) - 1, -1, -1):
        if slots[i] is not None:
            return i
    return None


def half_hour_consumption(
    today: Sequence[int | None], yesterday: Sequence[int | None] | None, modulus: int
) -> tuple[int, int] | None:
    """(slot, counts consumed in the 30 minutes ending at that slot) for today's newest slot.

    Slot 0 (00:00) pairs with yesterday's slot 47 (23:30), so callers fetch yesterday's
    history only when today's newest reading is at midnight. None when the newest reading
    has no valid predecessor exactly 30 minutes earlier: a longer gap is not a half hour.
    """
    slot = newest_slot(today)
    if slot is None:
        return None
    value = today[slot]
    previous = today[slot - 1] if slot > 0 else (yesterday[-1] if yesterday else None)
    if value is None or previous is None:
        return None
    return slot, (value - previous) % modulus


@dataclass(frozen=True, slots=True)
class SlotReading:
    """One history slot: the unwrapped count, and what was consumed since the slot before."""

    day: date
    slot: int
    total: int
    consumed: int | None

    @property
    def ordinal(self) -> int:
        return slot_ordinal(self.day, self.slot)


def slot_ordinal(day: date, slot: int) -> int:
    """Consecutive slots have consecutive ordinals, across midnight and DST days alike."""
    return day.toordinal() * SLOTS_PER_DAY + slot


def history_readings(
    days: Sequence[tuple[date, Sequence[int | None]]],
    now_raw: int,
    now_total: int,
    modulus: int,
    before: SlotReading | None = None,
) -> list[SlotReading]:
    """Unwrapped readings of consecutive history days (oldest first), no-data slots skipped.

    A past count is unwrapped against the current reading (`now_raw`, unwrapped `now_total`):
    what was consumed since is (now_raw - raw) mod 10^D7, so a wrap in between is accounted
    for. `consumed` needs the slot just before, which may be `before` (the last slot read by
    an earlier call) for the first slot.
    """
    readings: list[SlotReading] = []
    previous = before
    for day, slots in days:
        for slot, raw in enumerate(slots):
            if raw is None:
                continue
            total = now_total - (now_raw - raw) % modulus
            consumed = (
                total - previous.total
                if previous is not None and previous.ordinal + 1 == slot_ordinal(day, slot)
                else None
            )
            previous = SlotReading(day, slot, total, consumed)
            readings.append(previous)
    return readings
