"""The dashboard in headless Chromium (Playwright driving Debian's chromium, no browser
download): the page's own script fetches the API and draws the overview, the UPS panel and a
device page whose charts read simulated lake history through /api/history. Screenshots are
kept under energy_pipeline_tests/artifacts/ (ignored by git) and their paths printed."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from energy_pipeline.config import Config, load_config
from energy_pipeline.live import LiveOutputs, build_outputs
from energy_pipeline.live.state import StandaloneDevice, StandaloneState
from energy_pipeline.readings import PollOutcome, Sample
from energy_pipeline.simulators.history import simulate_history
from energy_pipeline_tests.conftest import require_program
from energy_pipeline_tests.kit.sites import write_site
from energy_pipeline_tests.live_support import Clock

pytestmark = pytest.mark.slow

ARTIFACTS = Path(__file__).parent / "artifacts"
WIDTHS = (390, 1400, 1920)
TOKEN = "dash-token-1"

DEVICES = [
    {
        "id": "meter1",
        "driver": "modbus",
        "profile": "janitza_umg509pro",
        "interval": 60,
        "connection": {"transport": "tcp", "host": "127.0.0.1", "port": 1502},
        "tags": {"name": "Main distribution board"},
    },
    {
        "id": "ups1",
        "driver": "modbus",
        "profile": "must_ep20",
        "interval": 5,
        "connection": {"transport": "tcp", "host": "127.0.0.1", "port": 1503, "unit_id": 10},
        "tags": {"name": "Server room UPS"},
    },
]

METER = {
    "energy_active_import_total": 1818041344.0,
    "power_active_total": 12345.6,
    "voltage_l1_n": 230.5,
    "frequency": 49.98,
}
UPS = {
    "input_voltage": 0.0,
    "output_voltage": 229.8,
    "status": 3.0,
    "battery_level": 64.0,
    "load_power": 987.6,
    "load_percent": 35.0,
}


def site(tmp_path: Path) -> Config:
    path = write_site(
        tmp_path,
        DEVICES,
        site={"name": "testsite", "timezone": "Europe/Berlin"},
        extra=f"outputs:\n  http: {{port: 0, token: {TOKEN}}}\n",
    )
    return load_config(path)


def outcome(live: LiveOutputs, device: str, clock: Clock, values: dict[str, float]) -> PollOutcome:
    names = tuple(live.store.meta[device].metrics)
    sample = Sample(names, np.array([values.get(n, 1.0) for n in names], dtype=np.float64))
    ts = clock()
    return PollOutcome(device, ts, ts, ts + timedelta(milliseconds=12), 1, sample)


OVERFLOW = """() => {
  const width = window.innerWidth;
  const wide = [...document.querySelectorAll("body *")]
    .filter(e => e.getClientRects().length && e.getBoundingClientRect().right > width + 0.5)
    .map(e => e.tagName + "." + e.className);
  const cut = [...document.querySelectorAll(".card, td.value, .chart")]
    .filter(e => e.scrollWidth > e.clientWidth + 1).map(e => e.className + ":" + e.id);
  return {scroll: document.documentElement.scrollWidth, inner: width, wide, cut};
}"""


def cells(page_values: list[dict[str, Any]]) -> dict[tuple[str, str], str]:
    return {(v["device"], v["metric"]): v["text"] for v in page_values}


CELLS = """() => [...document.querySelectorAll("td.value")].map(e => (
  {device: e.dataset.device, metric: e.dataset.metric, text: e.textContent}))"""


def test_dashboard_fits_every_width_and_charts_lake_history(tmp_path: Path) -> None:
    program = require_program("chromium")
    from playwright.async_api import async_playwright

    config = site(tmp_path)
    clock = Clock()
    simulate_history(config, 2, end=clock(), devices=[config.devices[0]], progress=None)
    state = StandaloneState(
        started_at=clock() - timedelta(hours=1),
        devices={"meter1": StandaloneDevice("up"), "ups1": StandaloneDevice("up")},
    )
    live = build_outputs(config, state, clock)
    ARTIFACTS.mkdir(exist_ok=True)
    shots: list[Path] = []

    async def main() -> dict[str, Any]:
        for sink in live.sinks:
            await sink.start()
        found: dict[str, Any] = {}
        try:
            clock.advance(1)
            first = [outcome(live, "meter1", clock, METER), outcome(live, "ups1", clock, UPS)]
            for sink in live.sinks:
                sink.offer(first)
            assert live.http is not None
            base = f"http://127.0.0.1:{live.http.port}"
            async with async_playwright() as pw:
                browser = await pw.chromium.launch(
                    executable_path=program, args=["--no-sandbox", "--disable-gpu"]
                )
                page = await browser.new_page()
                await page.goto(f"{base}/?token={TOKEN}")
                for width in WIDTHS:
                    await page.set_viewport_size({"width": width, "height": 1000})
                    await page.wait_for_selector("#ups-ups1 .banner")
                    await page.wait_for_timeout(200)
                    found[f"overflow{width}"] = await page.evaluate(OVERFLOW)
                    shot = ARTIFACTS / f"overview-{width}.png"
                    await page.screenshot(path=str(shot), full_page=True)
                    shots.append(shot)
                found["cells"] = cells(await page.evaluate(CELLS))
                found["banner"] = await page.text_content("#ups-ups1 .banner")
                found["battery"] = await page.get_attribute("#ups-ups1 .bar", "data-percent")
                found["alarms"] = await page.text_content("#alerts")
                found["glance"] = await page.text_content("#glance")

                clock.advance(120)  # 4 % in 2 minutes on battery: 60 % lasts about 30 minutes
                for sink in live.sinks:
                    sink.offer([outcome(live, "ups1", clock, {**UPS, "battery_level": 60.0})])
                await page.wait_for_function(
                    "() => document.querySelector('#ups-ups1 .runtime').textContent === '≈ 30 min'",
                    timeout=15000,
                )
                for sink in live.sinks:  # back on line power: the banner follows the next refresh
                    sink.offer([outcome(live, "ups1", clock, {**UPS, "status": 4.0})])
                await page.wait_for_function(
                    "() => document.querySelector('#ups-ups1 .banner').textContent === 'ONLINE'",
                    timeout=15000,
                )

                await page.goto(f"{base}/#device=meter1")
                await page.wait_for_selector("#device-charts[data-ready='1']", timeout=30000)
                found["charts"] = await page.evaluate(
                    """() => [...document.querySelectorAll('.chart')].map(c => ({
                      metric: c.dataset.metric, points: Number(c.dataset.points),
                      canvas: !!c.querySelector('canvas'),
                      note: c.querySelector('.note').textContent}))"""
                )
                for width in WIDTHS:
                    await page.set_viewport_size({"width": width, "height": 1000})
                    await page.wait_for_timeout(200)
                    found[f"device_overflow{width}"] = await page.evaluate(OVERFLOW)
                    shot = ARTIFACTS / f"device-{width}.png"
                    await page.screenshot(path=str(shot), full_page=True)
                    shots.append(shot)
                await browser.close()
        finally:
            for sink in reversed(live.sinks):
                await sink.stop()
        return found

    found = asyncio.run(main())
    print("screenshots:", *map(str, shots), sep="\n  ")
    for width in WIDTHS:
        for key in ("overflow", "device_overflow"):
            o = found[f"{key}{width}"]
            assert o["scroll"] <= o["inner"], (key, width, o)
            assert not o["wide"] and not o["cut"], (key, width, o)
    shown = found["cells"]
    assert shown[("meter1", "energy_active_import_total")] == "1.818GWh"
    assert shown[("meter1", "power_active_total")] == "12.35kW"
    assert shown[("meter1", "voltage_l1_n")] == "230.5V"
    assert shown[("meter1", "frequency")] == "49.98Hz"
    assert shown[("ups1", "load_power")] == "987.6W"
    assert shown[("ups1", "status")] == "battery"
    assert found["banner"] == "ON BATTERY" and found["battery"] == "64"
    assert "CRITICAL · ups1 · Running on battery" in found["alarms"]
    assert "Main distribution board" in found["glance"] and "Server room UPS" in found["glance"]
    charts = {c["metric"]: c for c in found["charts"]}
    power = charts["power_active_total"]
    assert power["canvas"] and power["points"] > 500, power  # a day of simulated minutes
    assert "day" in power["note"]
    for shot in shots:
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000
