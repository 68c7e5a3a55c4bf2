"""The read planner on any map: every point covered, no request over the limit or across
register types, no forbidden address touched, nothing read outside the allowed ranges."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from energy_pipeline.drivers.modbus.planner import (
    MAX_BITS,
    MAX_REGISTERS,
    Block,
    plan_reads,
    points_in,
    word_positions,
)
from energy_pipeline.profiles import load_profile
from energy_pipeline.profiles.model import AddressRange, Point

PROFILES = Path(__file__).resolve().parent.parent / "energy_pipeline" / "profiles"
TYPES = ("holding", "input", "coil", "discrete")
WIDTH_TYPES = {1: "uint16", 2: "float32", 4: "float64"}


@st.composite
def maps(draw: st.DrawFn) -> tuple[list[Point], list[AddressRange], list[AddressRange], int]:
    forbidden = [
        AddressRange(
            register_type=draw(st.sampled_from(TYPES)), start=s, end=s + draw(st.integers(0, 20))
        )
        for s in draw(st.lists(st.integers(0, 600), max_size=3))
    ]
    points: list[Point] = []
    for i in range(draw(st.integers(1, 40))):
        register_type = draw(st.sampled_from(TYPES))
        if register_type in ("coil", "discrete"):
            kw: dict[str, object] = {"data_type": "bool"}
        elif draw(st.booleans()):
            kw = {"data_type": "string", "count": draw(st.integers(1, 125))}
        else:
            kw = {"data_type": WIDTH_TYPES[draw(st.sampled_from((1, 2, 4)))]}
        address = draw(st.integers(0, 700))
        p = Point(name=f"p{i}", address=address, register_type=register_type, **kw)
        if any(
            r.register_type == p.register_type
            and p.address <= r.end
            and p.address + p.width > r.start
            for r in forbidden
        ):
            continue
        points.append(p)
    allowed: list[AddressRange] = []
    if points and draw(st.booleans()):
        # one allowed range per point, padded, as a profile of "safe blocks" would have
        for p in points:
            pad = draw(st.integers(0, 30))
            allowed.append(
                AddressRange(
                    register_type=p.register_type,
                    start=max(0, p.address - pad),
                    end=min(65535, p.address + p.width - 1 + pad),
                )
            )
        allowed = [
            r
            for r in allowed
            if not any(
                f.register_type == r.register_type and r.start <= f.end and r.end >= f.start
                for f in forbidden
            )
        ]
        points = [
            p
            for p in points
            if any(
                r.register_type == p.register_type
                and r.start <= p.address
                and p.address + p.width - 1 <= r.end
                for r in allowed
            )
        ]
    return points, forbidden, allowed, draw(st.integers(0, 124))


@pytest.mark.slow
@settings(max_examples=300, deadline=None)
@given(maps())
def test_any_map_is_covered_within_every_rule(case: tuple) -> None:
    points, forbidden, allowed, max_gap = case
    blocks = plan_reads(points, max_gap=max_gap, forbidden=forbidden, allowed=allowed)
    for p in points:
        assert any(p in points_in(b, [p]) for b in blocks), p
    for b in blocks:
        limit = MAX_BITS if b.register_type in ("coil", "discrete") else MAX_REGISTERS
        assert 1 <= b.count <= limit
        assert b.end <= 65535
        for r in forbidden:
            assert r.register_type != b.register_type or b.end < r.start or b.start > r.end
        if allowed:
            assert any(
                r.register_type == b.register_type and r.start <= b.start and b.end <= r.end
                for r in allowed
            )
    positions = word_positions(blocks, points)
    assert set(positions) == {p.name for p in points}


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 2000), min_size=1, max_size=60, unique=True), st.integers(0, 40))
def test_greedy_is_minimal_and_never_splits_what_fits(addresses: list[int], max_gap: int) -> None:
    """With no address rules, the block count equals the count of forced breaks."""
    points = [Point(name=f"p{a}", address=a) for a in addresses]
    blocks = plan_reads(points, max_gap=max_gap)
    ordered = sorted(addresses)
    # A lower bound any plan must pay: each gap wider than max_gap forces a new request, and
    # each run must be cut every MAX_REGISTERS registers at least.
    runs: list[list[int]] = [[ordered[0]]]
    for a in ordered[1:]:
        if a - runs[-1][-1] - 1 > max_gap:
            runs.append([a])
        else:
            runs[-1].append(a)
    lower = sum(-(-(r[-1] - r[0] + 1) // MAX_REGISTERS) for r in runs)
    assert lower <= len(blocks) <= lower + len(runs)
    if all(r[-1] - r[0] + 1 <= MAX_REGISTERS for r in runs):
        assert len(blocks) == len(runs)


def test_shipped_profiles_plan_as_expected() -> None:
    janitza = load_profile("janitza_umg509pro", PROFILES)
    assert plan_reads(janitza.points) == (Block("holding", 19000, 122),)
    ep20 = load_profile("must_ep20", PROFILES)
    assert plan_reads(ep20.points, forbidden=ep20.forbidden, allowed=ep20.allowed) == (
        Block("holding", 30000, 27),
    )
    pv = load_profile("must_pv1800", PROFILES)
    blocks = plan_reads(pv.points, max_gap=124, forbidden=pv.forbidden, allowed=pv.allowed)
    assert [str(b) for b in blocks] == [
        "holding 15201-15216",
        "holding 20000-20005",
        "holding 25201-25277",
    ]


def test_register_types_never_share_a_request() -> None:
    points = [
        Point(name="h", address=10),
        Point(name="i", address=11, register_type="input"),
        Point(name="c", address=12, register_type="coil", data_type="bool"),
    ]
    assert [b.register_type for b in plan_reads(points)] == ["holding", "input", "coil"]


def test_a_point_that_cannot_be_read_alone_is_an_error() -> None:
    p = Point(name="x", address=100)
    with pytest.raises(ValueError, match="holding 100-100"):
        plan_reads([p], allowed=[AddressRange(start=0, end=50)])
