"""One-shot device commands for people at a terminal: `poll-once`, `health`, `profiles`.

They work for every driver family through `drivers.build_drivers`; a device that fails is
reported with its error while the others are still polled. Data goes to stdout (a table, or
JSON with --json), logs to stderr.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from energy_pipeline.config import Config, Device
from energy_pipeline.drivers import build_drivers
from energy_pipeline.drivers.base import DeviceError, Driver
from energy_pipeline.logs import redact
from energy_pipeline.profiles import builtin_summaries
from energy_pipeline.profiles.model import Profile


def _emit_json(obj: Any) -> None:
    json.dump(obj, sys.stdout, indent=2)
    sys.stdout.write("\n")


def _utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def _error_text(exc: BaseException) -> str:
    if isinstance(exc, DeviceError):
        return redact(str(exc))
    return redact(f"{type(exc).__name__}: {exc}")


def _build(config: Config, devices: Sequence[Device]) -> dict[str, Driver | BaseException]:
    """Drivers by id; if a family cannot be built, the other devices still get theirs."""
    try:
        return dict(build_drivers(config, devices))
    except Exception:  # one family failing must not hide the others: build them one by one
        out: dict[str, Driver | BaseException] = {}
        for dev in devices:
            try:
                out[dev.id] = build_drivers(config, [dev])[dev.id]
            except Exception as exc:
                out[dev.id] = exc
        return out


async def _close_all(drivers: dict[str, Driver | BaseException]) -> None:
    """After every device is done: devices on one bus share its connection."""
    for driver in drivers.values():
        if isinstance(driver, Driver):
            await driver.close()


def _select(config: Config, device_id: str | None) -> list[Device]:
    return [config.device(device_id)] if device_id else list(config.devices)


async def _poll(device_id: str, driver: Driver | BaseException) -> dict[str, Any]:
    ts = _utc_now()
    started = time.perf_counter()
    if isinstance(driver, BaseException):
        return {"device_id": device_id, "ts": ts, "ok": False, "error": _error_text(driver)}
    try:
        sample = await driver.read()
    except Exception as exc:
        return {
            "device_id": device_id,
            "ts": ts,
            "ok": False,
            "error": _error_text(exc),
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


def _profile_of(driver: Driver | BaseException) -> Profile | None:
    profile = getattr(driver, "profile", None)
    return profile if isinstance(profile, Profile) else None


def _format_value(value: float, unit: str | None, label: str | None) -> str:
    text = f"{value:.6g}" if math.isfinite(value) else str(value)
    if label:
        return f"{text} ({label})"
    return f"{text} {unit}" if unit else text


def _print_poll_table(results: list[dict[str, Any]], drivers: dict[str, Any]) -> None:
    for res in results:
        head = f"{res['device_id']}  {res['ts']}"
        if not res["ok"]:
            print(f"{head}  FAILED  {res['error']}")
            continue
        print(f"{head}  ok  {res['latency_ms']:.1f} ms")
        profile = _profile_of(drivers.get(res["device_id"]))
        points = {p.name: p for p in profile.points} if profile else {}
        width = max((len(k) for k in [*res["values"], *res["attributes"]]), default=0)
        for name, value in res["values"].items():
            p = points.get(name)
            label = p.labels.get(int(value)) if p and p.labels and value.is_integer() else None
            print(f"  {name:<{width}}  {_format_value(value, p.unit if p else None, label)}")
        for name, text in res["attributes"].items():
            print(f"  {name:<{width}}  {text!r}")
        for name in res["invalid"]:
            print(f"  {name:<{width}}  (invalid reading)")


def poll_once(config: Config, device_id: str | None, as_json: bool) -> int:
    """Read every chosen device once, concurrently; exit 1 if any failed."""
    devices = _select(config, device_id)
    drivers = _build(config, devices)

    async def run() -> list[dict[str, Any]]:
        try:
            return list(await asyncio.gather(*(_poll(d.id, drivers[d.id]) for d in devices)))
        finally:
            await _close_all(drivers)

    results = asyncio.run(run())
    if as_json:
        _emit_json([{k: v for k, v in r.items() if k != "invalid"} for r in results])
    else:
        _print_poll_table(results, drivers)
    return 0 if all(r["ok"] for r in results) else 1


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
    if host and port:
        out["tcp_connect_ms"], error = await _tcp_connect_ms(host, port, timeout)
        if error:
            out["error"] = error
            return out
    if isinstance(driver, BaseException):
        out["error"] = _error_text(driver)
        return out
    started = time.perf_counter()
    try:
        await driver.probe()
    except Exception as exc:
        out["error"] = _error_text(exc)
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


def health(config: Config, device_id: str | None, http: Sequence[str], as_json: bool) -> int:
    """TCP connect latency and one protocol round trip per device, plus optional HTTP checks;
    exit 1 when anything is unreachable."""
    devices = _select(config, device_id)
    drivers = _build(config, devices)

    async def run() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        checks = asyncio.gather(*(_device_health(d, drivers[d.id]) for d in devices))
        webs = asyncio.gather(*(asyncio.to_thread(_http_check, url, 5.0) for url in http))
        try:
            return list(await checks), list(await webs)
        finally:
            await _close_all(drivers)

    results, webs = asyncio.run(run())
    if as_json:
        _emit_json({"devices": results, "http": webs})
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


def list_profiles(as_json: bool) -> int:
    rows = builtin_summaries()
    if as_json:
        _emit_json(rows)
        return 0
    widths = [max(len(str(r[k])) for r in rows) for k in ("name", "manufacturer", "model")]
    for r in rows:
        print(
            f"{r['name']:<{widths[0]}}  {r['manufacturer']:<{widths[1]}}  "
            f"{r['model']:<{widths[2]}}  {r['points']:>3} points"
        )
    return 0
