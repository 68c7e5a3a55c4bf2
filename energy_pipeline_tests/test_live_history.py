"""`/api/history` over a real lake: each hour read from the coarsest table that holds it (the
daily table's day, the minute table's hour, the raw readings), steps by range, parameters; and
the API's conditional, compressed and changed-only responses over a real socket."""

from __future__ import annotations

import asyncio
import gzip
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from energy_pipeline.catalog import build_catalog
from energy_pipeline.lake.layout import DAILY_READINGS, MINUTE_READINGS
from energy_pipeline.lake.tables import write_day, write_hourly
from energy_pipeline.live import build_outputs
from energy_pipeline.live.history import History, HistoryError, parse_query
from energy_pipeline.live.state import StandaloneState
from energy_pipeline.transforms.daily import daily_readings
from energy_pipeline.transforms.history import auto_step, bounded_step, resolution
from energy_pipeline.transforms.minute import compute_minutes
from energy_pipeline.transforms.schemas import DAILY_READINGS_SCHEMA, MINUTE_SCHEMA
from energy_pipeline_tests.lakedata import site, write_raw
from energy_pipeline_tests.live_support import Clock, http_get, ok, ups_site

BERLIN = ZoneInfo("Europe/Berlin")
DAY1 = datetime(2026, 3, 10, tzinfo=BERLIN)
NOW = datetime(2026, 3, 13, 12, 0, tzinfo=UTC)


def q(**params: str) -> dict[str, list[str]]:
    return {k: [v] for k, v in params.items()}


def test_ranges_and_steps() -> None:
    assert [resolution(s) for s in (3600, 86400, 7 * 86400, 30 * 86400, 365 * 86400)] == [
        "hour",
        "day",
        "week",
        "month",
        "year",
    ]
    assert [auto_step(s) for s in (3600, 86400, 7 * 86400, 30 * 86400, 365 * 86400)] == [
        5,
        120,
        900,
        3600,
        86400,
    ]
    assert bounded_step(86400, 1) == 18  # at most 5,000 points whatever the step asked


def test_query_parameters() -> None:
    got = parse_query(q(device="m1", metric="power_active_total", **{"from": "-24h"}), NOW, BERLIN)
    assert (got.start, got.end, got.step) == (NOW - timedelta(hours=24), NOW, 120)
    got = parse_query(
        q(device="m1", metric="x", **{"from": "2026-03-12T00:00", "to": "2026-03-12T06:00:00Z"}),
        NOW,
        BERLIN,
    )
    assert got.start == datetime(2026, 3, 11, 23, 0, tzinfo=UTC), "no offset: site local time"
    assert got.end == datetime(2026, 3, 12, 6, 0, tzinfo=UTC)
    assert parse_query(q(device="m1", metric="x", step="300"), NOW, BERLIN).step == 300
    for params, named in [
        (q(metric="x"), "device"),
        (q(device="../etc", metric="x"), "device"),
        (q(device="m1"), "metric"),
        (q(device="m1", metric="x", **{"from": "yesterday"}), "from"),
        (q(device="m1", metric="x", **{"from": "-1h", "to": "-2h"}), "from"),
        (q(device="m1", metric="x", step="fast"), "step"),
        (q(device="m1", metric="x", step="0"), "step"),
    ]:
        with pytest.raises(HistoryError, match=f"^{named}:"):
            parse_query(params, NOW, BERLIN)


def test_each_hour_comes_from_the_coarsest_table_that_holds_it(tmp_path: Path) -> None:
    """Three local days of one reading a minute: day 1 materialised as the daily table, day 2
    as minute tables, day 3 only raw. Power is 100, 200, 300 W on the three days; energy
    rises 1 Wh a minute, so every day but the first (no previous value) adds 1,440 Wh."""
    config = site(tmp_path)
    data = config.data_dir
    start = DAY1.astimezone(UTC)
    rows = []
    for i in range(3 * 1440):
        ts = start + timedelta(minutes=i)
        rows.append((ts, "m1", "power_active_total", 100.0 * (1 + i // 1440)))
        rows.append((ts, "m1", "energy_active_import_total", 5000.0 + i))
    write_raw(data, rows, per_minute=False)
    catalog = build_catalog(config)
    day2, day3 = start + timedelta(days=1), start + timedelta(days=2)
    minutes, _ = compute_minutes(data, catalog, start, day2, NOW)
    write_day(
        data,
        DAILY_READINGS,
        DAY1.date(),
        daily_readings(minutes, DAY1.date(), BERLIN),
        DAILY_READINGS_SCHEMA,
    )
    minutes, _ = compute_minutes(data, catalog, day2, day3, NOW)
    write_hourly(data, MINUTE_READINGS, minutes, day2, day3, MINUTE_SCHEMA)

    history = History(data, catalog.devices, "Europe/Berlin")
    span = {"from": start.isoformat(), "to": (start + timedelta(days=3)).isoformat()}
    power = history.read(
        parse_query(q(device="m1", metric="power_active_total", step="86400", **span), NOW, BERLIN)
    )
    energy = history.read(
        parse_query(
            q(device="m1", metric="energy_active_import_total", step="86400", **span), NOW, BERLIN
        )
    )
    history.close()
    assert power["step"] == 86400 and power["resolution"] == "week"  # 3 days
    assert power["t"] == [int((start + timedelta(days=d)).timestamp()) for d in range(3)]
    assert power["avg"] == [100.0, 200.0, 300.0]
    assert power["count"] == [1440, 1440, 1440]
    assert power["files"] == {"minute_rows": 1 + 24, "raw": 24 + 1}, "day 3 raw, and its lookback"
    assert power["unit"] == "W" and power["name"] == "power active total"
    assert energy["kind"] == "counter"
    assert energy["delta"] == [1439.0, 1440.0, 1440.0]
    assert energy["last"] == [5000.0 + 1439, 5000.0 + 2879, 5000.0 + 4319]


def serve_ups(tmp_path: Path, test) -> None:
    config = ups_site(tmp_path, "outputs:\n  http: {port: 0}\n")
    clock = Clock()
    live = build_outputs(config, StandaloneState(started_at=clock()), clock)

    async def main() -> None:
        for sink in live.sinks:
            await sink.start()
        try:
            assert live.http is not None and live.http.port
            await test(live, live.http.port, clock)
        finally:
            for sink in reversed(live.sinks):
                await sink.stop()

    asyncio.run(main())


def test_etag_gzip_and_changed_values_only(tmp_path: Path) -> None:
    async def check(live, port: int, clock: Clock) -> None:
        for i in range(40):
            live.store.offer(
                [ok("ups1", clock.advance(1), load_power=400 + i), ok("ups2", clock())]
            )
        status, headers, plain = await http_get(port, "/api/telemetry")
        assert status == 200 and "content-encoding" not in headers
        etag = headers["etag"]
        status, headers, body = await http_get(port, "/api/devices", {"Accept-Encoding": "gzip"})
        assert status == 200 and headers["content-encoding"] == "gzip"
        assert headers["vary"] == "Accept-Encoding"
        assert json.loads(gzip.decompress(body))["devices"][0]["ups"]["status"] == "status"
        status, headers, body = await http_get(port, "/api/telemetry", {"If-None-Match": etag})
        assert status == 304 and body == b"" and headers["etag"] == etag

        status, _, body = await http_get(port, "/api/telemetry?since=0&view=cards")
        first = json.loads(body)
        assert first["full"] and first["devices"]["ups1"]["values"]["load_power"] == 439
        assert "temperature" not in first["devices"]["ups1"]["values"], "cards only"
        seq = first["seq"]
        status, _, body = await http_get(port, f"/api/telemetry?since={seq}&view=cards")
        assert json.loads(body) == {"seq": seq, "full": False, "devices": {}}
        live.store.offer([ok("ups1", clock.advance(1), load_power=500)])
        status, _, body = await http_get(port, f"/api/telemetry?since={seq}&view=cards")
        delta = json.loads(body)
        assert not delta["full"] and list(delta["devices"]) == ["ups1"]
        assert delta["devices"]["ups1"]["values"] == {"load_power": 500}
        assert len(body) < len(plain) / 3
        status, _, body = await http_get(port, "/api/telemetry?since=x")
        assert status == 400 and "since" in json.loads(body)["error"]

        status, _, body = await http_get(port, "/api/history?device=ups1&metric=load_power&step=a")
        assert status == 400 and json.loads(body)["error"].startswith("step:")
        status, _, body = await http_get(port, "/api/history?device=ups1&metric=load_power")
        doc = json.loads(body)
        assert status == 200 and doc["t"] == [] and doc["step"] == 120 and doc["unit"] == "W"

    serve_ups(tmp_path, check)
