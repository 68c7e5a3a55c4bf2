"""`health`: TCP connect latency and one protocol round trip per device, plus HTTP checks."""

from __future__ import annotations

import asyncio
import contextlib
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

from energy_pipeline.config import Config, Device
from energy_pipeline.console.devices import Unreachable, build_reachable, close_all, select
from energy_pipeline.console.output import emit_json, error_text
from energy_pipeline.drivers.base import Driver


async def _tcp_connect_ms(host: str, port: int, timeout: float) -> tuple[float | None, str | None]:
    started = time.perf_counter()
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    except (OSError, TimeoutError) as exc:
        return None, f"tcp connect to {host}:{port} failed: {exc or type(exc).__name__}"
    elapsed = (time.perf_counter() - started) * 1000
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return round(elapsed, 2), None


async def _device_health(dev: Device, driver: Driver | BaseException) -> dict[str, Any]:
    conn = dev.connection
    host, port = getattr(conn, "host", None), getattr(conn, "port", None)
    serial = getattr(conn, "serial_port", None)
    timeout = float(getattr(conn, "timeout", 5.0))
    out: dict[str, Any] = {
        "device_id": dev.id,
        "driver": dev.driver,
        "target": f"{host}:{port}" if host else serial,
        "tcp_connect_ms": None,
        "roundtrip_ms": None,
        "ok": False,
        "error": None,
    }
    if isinstance(driver, Unreachable):
        out["error"] = error_text(driver)
        return out
    if host and port:
        out["tcp_connect_ms"], error = await _tcp_connect_ms(host, port, timeout)
        if error:
            out["error"] = error
            return out
    if isinstance(driver, BaseException):
        out["error"] = error_text(driver)
        return out
    started = time.perf_counter()
    try:
        await driver.probe()
    except Exception as exc:
        out["error"] = error_text(exc)
        return out
    out["roundtrip_ms"] = round((time.perf_counter() - started) * 1000, 2)
    out["ok"] = True
    return out


def _http_check(url: str, timeout: float) -> dict[str, Any]:
    """The port answers HTTP at all: any status (even 404) counts as reachable."""
    parts = urlsplit(url)
    out: dict[str, Any] = {"url": url, "ok": False, "status": None, "ms": None, "error": None}
    if parts.scheme not in ("http", "https") or not parts.hostname:
        out["error"] = "expected an http:// or https:// URL"
        return out
    started = time.perf_counter()
    try:
        with urllib.request.urlopen(url, timeout=timeout) as reply:
            out["status"] = reply.status
    except urllib.error.HTTPError as exc:
        out["status"] = exc.code
    except (urllib.error.URLError, OSError) as exc:
        out["error"] = str(getattr(exc, "reason", exc))
        return out
    out["ms"] = round((time.perf_counter() - started) * 1000, 2)
    out["ok"] = True
    return out


def health(
    config: Config,
    device_id: str | None,
    http: Sequence[str],
    as_json: bool,
    unreachable: Mapping[str, str] | None = None,
) -> int:
    """TCP connect latency and one protocol round trip per device, plus optional HTTP checks;
    exit 1 when anything is unreachable."""
    devices = select(config, device_id)
    drivers = build_reachable(config, devices, unreachable)

    async def run() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        checks = asyncio.gather(*(_device_health(d, drivers[d.id]) for d in devices))
        webs = asyncio.gather(*(asyncio.to_thread(_http_check, url, 5.0) for url in http))
        try:
            return list(await checks), list(await webs)
        finally:
            await close_all(drivers)

    results, webs = asyncio.run(run())
    if as_json:
        emit_json({"devices": results, "http": webs})
    else:
        for r in results:
            state = "ok" if r["ok"] else "UNREACHABLE"
            tcp = (
                f"connect {r['tcp_connect_ms']:.1f} ms  " if r["tcp_connect_ms"] is not None else ""
            )
            rt = f"round trip {r['roundtrip_ms']:.1f} ms" if r["roundtrip_ms"] is not None else ""
            print(f"{r['device_id']}  {r['driver']}  {r['target']}  {state}  {tcp}{rt}".rstrip())
            if r["error"]:
                print(f"  {r['error']}")
        for w in webs:
            state = f"HTTP {w['status']}  {w['ms']:.1f} ms" if w["ok"] else f"FAILED  {w['error']}"
            print(f"{w['url']}  {state}")
    ok = all(r["ok"] for r in results) and all(w["ok"] for w in webs)
    return 0 if ok else 1
