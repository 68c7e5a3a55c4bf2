"""The dashboard in headless Chromium: the page's own script fetches the API and draws cards,
alarms and charts; the DOM and a screenshot show the device values."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest

from energy_pipeline.live import build_outputs
from energy_pipeline.live.state import StandaloneDevice, StandaloneState
from energy_pipeline_tests.conftest import require_program
from energy_pipeline_tests.live_support import Clock, failed, ok, ups_site

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--virtual-time-budget=4000",
)


async def chromium(program: str, profile: Path, *args: str) -> bytes:
    proc = await asyncio.create_subprocess_exec(
        program,
        *CHROMIUM_FLAGS,
        f"--user-data-dir={profile}",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    return out


@pytest.mark.slow
def test_dashboard_renders_values_alarms_and_chart(tmp_path: Path) -> None:
    program = require_program("chromium")
    config = ups_site(tmp_path, "outputs:\n  http: {port: 0, token: dash-token-1}\n")
    clock = Clock()
    state = StandaloneState(
        started_at=clock(),
        devices={"ups1": StandaloneDevice("up"), "ups2": StandaloneDevice("down")},
    )
    live = build_outputs(config, state, clock)
    shot = tmp_path / "dashboard.png"

    async def main() -> str:
        for sink in live.sinks:
            await sink.start()
        try:
            for i in range(30):
                outcome = ok("ups1", clock.advance(60), input_voltage=229.0 + (i % 5))
                for sink in live.sinks:
                    sink.offer([outcome, failed("ups2", clock())])
            last = ok("ups1", clock.advance(60), battery_level=12.0, load_power=987.6)
            for sink in live.sinks:
                sink.offer([last])
            assert live.http is not None
            url = f"http://127.0.0.1:{live.http.port}/?token=dash-token-1"
            dom = await chromium(program, tmp_path / "profile", "--dump-dom", url)
            await chromium(
                program,
                tmp_path / "profile2",
                f"--screenshot={shot}",
                "--window-size=1280,900",
                url,
            )
            return dom.decode()
        finally:
            for sink in reversed(live.sinks):
                await sink.stop()

    dom = asyncio.run(main())

    def cell(device: str, metric: str) -> str:
        match = re.search(
            rf'data-device="{device}" data-metric="{metric}">([^<]*)<span class="unit">', dom
        )
        assert match, f"no card value for {device}.{metric}"
        return match.group(1)

    assert cell("ups1", "load_power") == "987.6"
    assert cell("ups1", "battery_level") == "12.00"
    assert cell("ups1", "input_voltage") == "230.5"
    assert cell("ups1", "energy_total") == "1234.5"
    assert re.search(r'data-metric="status">online<', dom), "state codes show their label"
    assert "degraded · up 1860 s" in dom, "health: one device down"
    assert 'id="card-ups2"' in dom and "ups2: no answer" in dom
    assert "CRITICAL · ups1" in dom, "the battery alarm is listed"
    assert "<polyline" in dom and "ups1 · input_voltage [V]" in dom
    assert shot.stat().st_size > 10_000 and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
