"""`record: hems` and stdout `format: hems`: the HEMS seed's flat record — its keys in its
order, ISO timestamps, null for a single-phase meter's T phase, no float noise — on the
webhook (one record per POST, to a real local receiver), the file output (JSON lines and CSV)
and stdout; devices that are not smart meters send no HEMS records."""

from __future__ import annotations

import asyncio
import csv
import io
import json
from datetime import timedelta
from pathlib import Path

from energy_pipeline.live import LiveOutputs
from energy_pipeline.live.hems import HEMS_KEYS
from energy_pipeline.live.webhook import DEVICE_HEADER
from energy_pipeline_tests.live_support import T0, meter_ok, ok, outputs_for, write_meter_site
from energy_pipeline_tests.test_live_webhook_file import Receiver, started, until

EXPECTED = {
    "timestamp": "2026-03-01T12:00:00.000Z",
    "cumulative_power_kwh": 3235.7,
    "instant_power_w": 1688,
    "current_a": 16.0,
    "current_r_a": 16.0,
    "current_t_a": None,
    "historical_timestamp": "2026-03-01T12:00:00.000Z",
    "historical_cumulative_power_kwh": 3235.5,
    "recent_30min_timestamp": "2026-03-01T12:00:00.000Z",
    "recent_30min_consumption_kwh": 0.3,
}


def test_webhook_posts_one_flat_hems_record_per_meter_reading(tmp_path: Path) -> None:
    receiver = Receiver(failures=1)
    try:
        outputs = (
            "outputs:\n  webhook:\n"
            f"    {{url: 'http://127.0.0.1:{receiver.port}/hems', record: hems,"
            " backoff_initial: 0.05}\n"
        )
        config = write_meter_site(tmp_path, outputs)
        live, _ = outputs_for(config)

        async def main() -> None:
            async with started(live):
                hook = live.webhook
                assert hook is not None
                for sink in live.sinks:
                    sink.offer([meter_ok(T0), ok("ups1", T0, battery_level=5)])
                    sink.offer([meter_ok(T0 + timedelta(seconds=60), instant_power_w=900.0)])
                await until(lambda: hook.delivered == 2)

        asyncio.run(main())
    finally:
        receiver.close()
    codes = [code for _, _, code in receiver.requests]
    assert codes == [503, 200, 200], "retried, then one POST per reading; no UPS, no alert"
    first = json.loads(receiver.requests[1][1])
    assert first == EXPECTED and list(first) == list(HEMS_KEYS)
    assert json.loads(receiver.requests[2][1])["instant_power_w"] == 900
    assert receiver.requests[1][0][DEVICE_HEADER] == "meter1"


def test_file_output_writes_hems_records_as_jsonl_and_csv(tmp_path: Path) -> None:
    for fmt in ("jsonl", "csv"):
        folder = tmp_path / fmt
        folder.mkdir()
        config = write_meter_site(
            folder, f"outputs:\n  file: {{path: out, format: {fmt}, record: hems}}\n"
        )
        live, _ = outputs_for(config)

        async def main(live: LiveOutputs) -> None:
            async with started(live):
                for sink in live.sinks:
                    sink.offer([meter_ok(T0), ok("ups1", T0)])

        asyncio.run(main(live))
        out = folder / "out"
        assert [p.name for p in out.iterdir()] == [f"meter1-2026-03-01.{fmt}"]
        text = (out / f"meter1-2026-03-01.{fmt}").read_text()
        if fmt == "jsonl":
            assert json.loads(text) == EXPECTED
        else:
            rows = list(csv.reader(io.StringIO(text)))
            assert rows[0] == list(HEMS_KEYS), "the seed's keys as the header"
            assert rows[1][HEMS_KEYS.index("current_t_a")] == "", "null: an empty cell"
            assert rows[1][HEMS_KEYS.index("cumulative_power_kwh")] == "3235.7"


def test_stdout_hems_and_jsonl_lines(tmp_path: Path) -> None:
    for fmt in ("hems", "jsonl"):
        folder = tmp_path / fmt
        folder.mkdir()
        config = write_meter_site(folder, f"outputs:\n  stdout: {{format: {fmt}}}\n")
        live, _ = outputs_for(config)
        assert live.stdout is not None
        stream = io.BytesIO()
        live.stdout.stream = stream

        async def main(live: LiveOutputs) -> None:
            async with started(live):
                for sink in live.sinks:
                    sink.offer([meter_ok(T0), ok("ups1", T0, load_power=7.0)])

        asyncio.run(main(live))
        lines = [json.loads(line) for line in stream.getvalue().splitlines()]
        if fmt == "hems":
            assert lines == [EXPECTED]
        else:
            assert [(r["device_id"], r["timestamp"]) for r in lines] == [
                ("meter1", EXPECTED["timestamp"]),
                ("ups1", EXPECTED["timestamp"]),
            ]
            assert lines[1]["load_power"] == 7.0 and "current_t_a" not in lines[0]
