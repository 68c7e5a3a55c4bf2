"""Class 0x0288 property decoding against the captured EDTs of PROTOCOLS.md §2."""

from __future__ import annotations

import struct
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest

from energy_pipeline.drivers.echonet import frame as el
from energy_pipeline.drivers.echonet import meter as m

TOKYO = ZoneInfo("Asia/Tokyo")
BERLIN = ZoneInfo("Europe/Berlin")


def test_captured_reply_gives_1688_w_and_16_and_4_amps() -> None:
    frame = el.decode(
        bytes.fromhex(
            "108106E102880105FF017206800130880142E70400000698E80400A00028E0040004F3FDE3040000000B"
        )
    )
    assert m.instant_power_w(frame.prop(m.EPC_INSTANT_POWER)) == 1688.0
    r, t = m.instant_currents_a(frame.prop(m.EPC_INSTANT_CURRENT))
    assert (r, t) == (16.0, 4.0)
    assert m.total_current_a(r, t) == 20.0
    scale = m.Scale(coefficient=1, unit_kwh=m.unit_kwh(b"\x01"), digits=6)
    assert scale.kwh(m.counter_raw(frame.prop(m.EPC_CUMULATIVE))) == 32460.5
    assert scale.kwh(m.counter_raw(frame.prop(m.EPC_CUMULATIVE_REVERSE))) == 1.1


def test_captured_currents_and_single_phase_missing_t() -> None:
    assert m.instant_currents_a(bytes.fromhex("001E0032")) == (3.0, 5.0)
    r, t = m.instant_currents_a(bytes.fromhex("00507FFE"))
    assert (r, t) == (8.0, None)
    assert m.total_current_a(r, t) == 8.0
    assert m.instant_currents_a(bytes.fromhex("FFF60000")) == (-1.0, 0.0)


@pytest.mark.parametrize("raw", ["7FFFFFFE", "7FFFFFFF", "80000000"])
def test_power_sentinels_are_missing(raw: str) -> None:
    assert m.instant_power_w(bytes.fromhex(raw)) is None


def test_negative_power_is_export() -> None:
    assert m.instant_power_w(struct.pack(">i", -350)) == -350.0


def test_captured_fixed_time_readings_convert_meter_local_time_to_utc() -> None:
    ts, raw = m.fixed_time(bytes.fromhex("07EA05140E00000000FE68"), TOKYO)
    assert datetime.fromtimestamp(ts, UTC) == datetime(2026, 5, 20, 5, 0, tzinfo=UTC)
    assert raw == 65128
    ts, raw = m.fixed_time(bytes.fromhex("07EA0518161E0000000016"), TOKYO)
    assert datetime.fromtimestamp(ts, UTC) == datetime(2026, 5, 24, 13, 30, tzinfo=UTC)
    assert raw == 22


def test_fixed_time_without_data_is_missing() -> None:
    assert m.fixed_time(bytes.fromhex("07EA05140E0000FFFFFFFE"), TOKYO) is None
    assert m.fixed_time(bytes.fromhex("FFFFFFFFFFFFFF00000001"), TOKYO) is None


def test_unit_table_coefficient_and_digits() -> None:
    assert [m.unit_kwh(bytes((c,))) for c in (0, 1, 2, 3, 4, 0x0A, 0x0B, 0x0C, 0x0D)] == [
        1,
        0.1,
        0.01,
        0.001,
        0.0001,
        10,
        100,
        1000,
        10000,
    ]
    with pytest.raises(m.PropertyError, match="not defined"):
        m.unit_kwh(b"\x05")
    assert m.coefficient(None) == 1
    assert m.coefficient(struct.pack(">I", 40)) == 40
    with pytest.raises(m.PropertyError):
        m.coefficient(struct.pack(">I", 0))
    assert m.digits(b"\x06") == 6 and m.digits(None) == 8
    with pytest.raises(m.PropertyError):
        m.digits(b"\x09")
    scale = m.Scale(coefficient=40, unit_kwh=0.01, digits=6)
    assert scale.kwh(12345) == pytest.approx(4938.0)
    assert scale.modulus == 1_000_000


def test_wrong_lengths_are_property_errors() -> None:
    for fn in (m.instant_power_w, m.instant_currents_a, m.counter_raw):
        with pytest.raises(m.PropertyError):
            fn(b"\x00\x01")
    with pytest.raises(m.PropertyError):
        m.history(bytes(10))


def test_counter_sentinel_and_out_of_range_are_missing() -> None:
    assert m.counter_raw(bytes.fromhex("FFFFFFFE")) is None
    assert m.counter_raw(struct.pack(">I", 100_000_000)) is None
    assert m.counter_raw(struct.pack(">I", 99_999_999)) == 99_999_999


def test_rollover_counter_only_grows_across_a_wrap() -> None:
    counter = m.RolloverCounter()
    modulus = 10**6
    seen = [counter.update(raw, modulus) for raw in (999_990, 999_999, 3, 40, 39)]
    assert seen == [999_990, 999_999, 1_000_003, 1_000_040, 1_000_039]
    assert counter.wraps == 1
    resumed = m.RolloverCounter(counter.wraps, counter.last)
    assert resumed.update(50, modulus) == 1_000_050


def _history(day: int, slots: list[int | None]) -> bytes:
    values = [m.NO_DATA_U32 if v is None else v for v in slots]
    return struct.pack(">H48I", day, *values)


def test_history_and_latest_half_hour_consumption() -> None:
    slots: list[int | None] = [1000 + 3 * i for i in range(29)] + [None] * 19
    day, decoded = m.history(_history(0, slots))
    assert day == 0 and decoded == slots
    assert m.newest_slot(decoded) == 28
    assert m.half_hour_consumption(decoded, None, 10**6) == (28, 3)


def test_midnight_slot_pairs_with_yesterdays_last_and_wraps() -> None:
    today: list[int | None] = [2] + [None] * 47
    yesterday: list[int | None] = [999_000 + i for i in range(47)] + [999_998]
    assert m.half_hour_consumption(today, None, 10**6) is None
    assert m.half_hour_consumption(today, yesterday, 10**6) == (0, 4)


def test_a_gap_before_the_newest_slot_is_not_a_half_hour() -> None:
    today: list[int | None] = [10, 11, None, 15] + [None] * 44
    assert m.half_hour_consumption(today, None, 10**6) is None
    assert m.half_hour_consumption([None] * 48, None, 10**6) is None


def test_slots_are_wall_clock_times_on_dst_days() -> None:
    spring = date(2026, 3, 29)  # Berlin skips 02:00-03:00; Japanese meters know no DST
    at = [datetime.fromtimestamp(m.slot_epoch(spring, s, BERLIN), UTC) for s in (0, 3, 6, 47)]
    assert at == [
        datetime(2026, 3, 28, 23, 0, tzinfo=UTC),
        datetime(2026, 3, 29, 0, 30, tzinfo=UTC),
        datetime(2026, 3, 29, 1, 0, tzinfo=UTC),
        datetime(2026, 3, 29, 21, 30, tzinfo=UTC),
    ]
    assert (
        m.slot_epoch(date(2026, 5, 20), 28, TOKYO)
        == datetime(2026, 5, 20, 5, 0, tzinfo=UTC).timestamp()
    )


def test_history_readings_unwrap_against_now_bridge_midnight_and_skip_gaps() -> None:
    modulus = 10**6
    monday, tuesday = date(2026, 3, 9), date(2026, 3, 10)
    yesterday: list[int | None] = [None] * 46 + [999_990, 999_998]
    today: list[int | None] = [4, None, 20] + [None] * 45
    # Now the meter shows 30 after one wrap: the unwrapped total is 1,000,030.
    readings = m.history_readings([(monday, yesterday), (tuesday, today)], 30, 1_000_030, modulus)
    assert [(r.day, r.slot, r.total, r.consumed) for r in readings] == [
        (monday, 46, 999_990, None),  # nothing read before it
        (monday, 47, 999_998, 8),
        (tuesday, 0, 1_000_004, 6),  # across midnight and the wrap
        (tuesday, 2, 1_000_020, None),  # slot 1 has no data: not a half hour
    ]


def test_history_readings_continue_from_an_earlier_call() -> None:
    day = date(2026, 3, 10)
    earlier = m.SlotReading(date(2026, 3, 9), 47, 500, None)
    [first, _] = m.history_readings([(day, [510, 525] + [None] * 46)], 600, 600, 10**6, earlier)
    assert first.consumed == 10
    [alone, _] = m.history_readings([(day, [510, 525] + [None] * 46)], 600, 600, 10**6)
    assert alone.consumed is None
