"""`poll-once`: read every chosen device once, concurrently, and show the values."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from energy_pipeline.catalog import Catalog, build_catalog
from energy_pipeline.config import Config
from energy_pipeline.console.devices import build_reachable, close_all, select
from energy_pipeline.console.output import emit_json, error_text, value_text
from energy_pipeline.drivers.base import Driver


async def _poll(device_id: str, driver: Driver | BaseException) -> dict[str, Any]:
    ts = datetime.now(UTC).isoformat(timespec="milliseconds")
    started = time.perf_counter()
    if isinstance(driver, BaseException):
        return {"device_id": device_id, "ts": ts, "ok": False, "error": error_text(driver)}
    try:
        sample = await driver.read()
    except Exception as exc:
        return {
            "device_id": device_id,
            "ts": ts,
            "ok": False,
            "error": error_text(exc),
            "error_kind": getattr(exc, "kind", "error"),
            "latency_ms": round((time.perf_counter() - started) * 1000, 2),
        }
    return {
        "device_id": device_id,
        "ts": ts,
        "ok": True,
        "values": sample.valid_values(),
        "attributes": dict(sample.attributes),
        "latency_ms": round((time.perf_counter() - started) * 1000, 2),
        "invalid": [n for n, v in zip(sample.names, sample.values, strict=True) if v != v],
    }


def _print_table(results: list[dict[str, Any]], catalog: Catalog) -> None:
    for res in results:
        head = f"{res['device_id']}  {res['ts']}"
        if not res["ok"]:
            print(f"{head}  FAILED  {res['error']}")
            continue
        print(f"{head}  ok  {res['latency_ms']:.1f} ms")
        width = max((len(k) for k in [*res["values"], *res["attributes"]]), default=0)
        for name, value in res["values"].items():
            print(f"  {name:<{width}}  {value_text(value, catalog.metric(res['device_id'], name))}")
        for name, text in res["attributes"].items():
            print(f"  {name:<{width}}  {text!r}")
        for name in res["invalid"]:
            print(f"  {name:<{width}}  (invalid reading)")


def poll_once(
    config: Config,
    device_id: str | None,
    as_json: bool,
    unreachable: Mapping[str, str] | None = None,
) -> int:
    """Read every chosen device once, concurrently; exit 1 if any failed. Devices whose
    tunnel is down (`unreachable`: id -> why) are reported failed without being asked."""
    devices = select(config, device_id)
    drivers = build_reachable(config, devices, unreachable)

    async def run() -> list[dict[str, Any]]:
        try:
            return list(await asyncio.gather(*(_poll(d.id, drivers[d.id]) for d in devices)))
        finally:
            await close_all(drivers)

    results = asyncio.run(run())
    if as_json:
        emit_json([{k: v for k, v in r.items() if k != "invalid"} for r in results])
    else:
        _print_table(results, build_catalog(config))
    return 0 if all(r["ok"] for r in results) else 1
