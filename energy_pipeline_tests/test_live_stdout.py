"""`outputs.stdout` for piping: a real `collect` process beside `simulate` (an ECHONET meter's
dongle and a MUST EP20 on ptys) writes one JSON line per reading on stdout and nothing else;
its logs go to stderr."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest

from energy_pipeline.live.hems import HEMS_KEYS
from energy_pipeline_tests.live_support import collecting, meter_ups_site

pytestmark = pytest.mark.slow  # a collector and simulators as processes


@pytest.mark.parametrize("fmt", ["jsonl", "hems"])
def test_collect_streams_records_on_stdout(tmp_path: Path, fmt: str) -> None:
    config = tmp_path / "site.yaml"
    config.write_text(meter_ups_site(f"  stdout: {{format: {fmt}}}\n"))
    with collecting(config) as collector:
        assert collector.stdout is not None
        records = []
        while len(records) < 4:
            line = collector.stdout.readline()
            assert line, "collect ended its stdout early"
            records.append(json.loads(line))
        collector.send_signal(signal.SIGTERM)
        out, err = collector.communicate(timeout=20)
        assert collector.returncode == 0
    records += [json.loads(line) for line in out.splitlines()]
    assert "collector stopped" in err and "collector stopped" not in out
    if fmt == "hems":
        assert all(list(r) == list(HEMS_KEYS) for r in records), "only the meter, flat"
        assert all(isinstance(r["cumulative_power_kwh"], float) for r in records)
    else:
        devices = {r["device_id"] for r in records}
        assert devices == {"meter1", "ups1"}
        ups = next(r for r in records if r["device_id"] == "ups1")
        assert 0 <= ups["battery_level"] <= 100 and ups["timestamp"].endswith("Z")
