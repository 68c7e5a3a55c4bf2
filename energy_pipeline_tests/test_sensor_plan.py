"""The sensor's pure parts: which watermark counts, and what to request from a cursor."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from energy_pipeline.defs.sensors import Cursor, effective_watermark, plan

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
W0 = datetime(2025, 6, 1, tzinfo=UTC)


def status(cid: str, mark: datetime, updated: datetime) -> dict:
    return {
        "collector_id": cid,
        "sealed_watermark": mark.isoformat(),
        "updated_at": updated.isoformat(),
    }


def test_slowest_live_collector_decides_and_stale_ones_stop_holding_back() -> None:
    stale = timedelta(minutes=10)
    docs = [
        status("a", NOW - timedelta(minutes=2), NOW),
        status("b", NOW - timedelta(minutes=5), NOW - timedelta(minutes=1)),
        status("history", NOW - timedelta(days=3), NOW - timedelta(days=3)),  # one-shot, done
    ]
    mark, marks = effective_watermark(docs, NOW, stale)
    assert mark == NOW - timedelta(minutes=5) and set(marks) == {"a", "b", "history"}
    only_old = [docs[2], status("c", NOW - timedelta(days=1), NOW - timedelta(hours=5))]
    assert effective_watermark(only_old, NOW, stale)[0] == NOW - timedelta(days=1)
    assert effective_watermark([{"collector_id": "x"}], NOW, stale) == (None, {})


def test_plan_starts_at_first_data_caps_and_records_completed_hours() -> None:
    folders = {W0 + timedelta(hours=h): (100 + h, f"raw_readings/h{h}") for h in (3, 4)}
    runs, cur = plan(W0 + timedelta(hours=5), Cursor(), W0, 90, folders, {})
    assert [(r.start, r.end, r.reason) for r in runs] == [
        (W0 + timedelta(hours=3), W0 + timedelta(hours=4, minutes=30), "sealed")
    ]
    assert cur.folders == {"2025-06-01T03": 103}  # hour 4 is only half processed
    runs, cur = plan(W0 + timedelta(hours=5), cur, W0, 90, folders, {})
    assert [(r.start, r.end) for r in runs] == [
        (W0 + timedelta(hours=4, minutes=30), W0 + timedelta(hours=5))
    ]
    assert cur.folders == {"2025-06-01T03": 103, "2025-06-01T04": 104}
    assert plan(W0 + timedelta(hours=5), cur, W0, 90, folders, {})[0] == []  # nothing new


def test_plan_rereads_changed_hours_but_not_compacted_ones() -> None:
    folders = {W0 + timedelta(hours=h): (100 + h, f"raw_readings/h{h}") for h in (1, 2)}
    _, cur = plan(W0 + timedelta(hours=3), Cursor(), W0, 1440, folders, {})
    changed = {
        **folders,
        W0 + timedelta(hours=1): (999, "raw_readings/h1"),
        W0 + timedelta(hours=2): (555, "raw_readings/h2"),
    }
    manifest = {"raw_readings/h2": {"before": 102, "after": 555}}  # compaction, same rows
    runs, cur2 = plan(W0 + timedelta(hours=3), cur, W0, 1440, changed, manifest)
    assert [(r.start, r.end, r.reason) for r in runs] == [
        (W0 + timedelta(hours=1), W0 + timedelta(hours=2), "changed")
    ]
    assert cur2.folders["2025-06-01T01"] == 999 and cur2.folders["2025-06-01T02"] == 555
    late = {**changed, W0: (7, "raw_readings/h0")}  # an hour that had no folder gets one
    runs, _ = plan(W0 + timedelta(hours=3), cur2, W0, 1440, late, manifest)
    assert [(r.start, r.reason) for r in runs] == [(W0, "changed")]


def test_cursor_round_trips_and_window_start_clamps() -> None:
    cur = Cursor(processed=W0, sealed=W0, folders={"2025-06-01T00": 1})
    assert Cursor.loads(cur.dumps()) == cur
    runs, nxt = plan(W0 + timedelta(days=3), cur, W0 + timedelta(days=2), 60, {}, {})
    assert runs[0].start == W0 + timedelta(days=2) and nxt.folders == {}
