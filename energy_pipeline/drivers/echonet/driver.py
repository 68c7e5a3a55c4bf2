"""The `echonet_broute` driver: one smart meter behind one Wi-SUN dongle.

All serial I/O runs in a single worker thread owned by the driver, so a read never blocks the
collector's event loop, a cancelled poll never leaves two requests in flight, and a slow scan
on this dongle never occupies a thread another device needs.

Joining takes an active scan (seconds to minutes) plus PANA authentication; the scan result is
kept in `<data_dir>/state/echonet-<device>.json`, so after a restart the driver goes straight to
SKJOIN. A failed join forgets the result and rescans, with a backoff that grows across polls.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import os
import time
import zoneinfo
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from energy_pipeline.config import Config, EchonetDevice
from energy_pipeline.drivers.base import (
    DeviceConnectionError,
    DeviceExceptionReply,
    DeviceProtocolError,
    DeviceTimeout,
    Driver,
)
from energy_pipeline.drivers.echonet import frame as el
from energy_pipeline.drivers.echonet import meter as m
from energy_pipeline.drivers.echonet.skstack import (
    JoinFailed,
    PanDescriptor,
    SerialLike,
    Session,
    SessionExpired,
    SkCommandFailed,
    SkDisconnected,
    SkError,
    SkProtocolError,
    SkTimeout,
)
from energy_pipeline.drivers.serial_lock import hold_port
from energy_pipeline.lake.files import atomic_write_json
from energy_pipeline.lake.layout import state_dir
from energy_pipeline.readings import Sample

log = logging.getLogger(__name__)
T = TypeVar("T")

HISTORY_RETRY_S = 300.0
COUNTER_EPCS = (
    m.EPC_CUMULATIVE,
    m.EPC_CUMULATIVE_REVERSE,
    m.EPC_FIXED_TIME,
    m.EPC_FIXED_TIME_REVERSE,
)


@dataclass(frozen=True, slots=True)
class Timing:
    """How long each step may take. Tests shrink these; the defaults suit a real dongle."""

    request_timeout: float = 10.0
    command_timeout: float = 3.0
    join_timeout: float = 60.0
    scan_durations: tuple[int, ...] = (4, 5, 6, 7, 8, 9)
    backoff: float = 2.0
    backoff_cap: float = 120.0
    read_interval: float = 0.05


def state_path(data_dir: Path, device_id: str) -> Path:
    return state_dir(data_dir) / f"echonet-{device_id}.json"


class SavedState:
    """What survives a restart: the dongle's dialect, the scan result, counter wrap counts."""

    def __init__(self, path: Path):
        self.path = path
        self.version: str | None = None
        self.dual: bool | None = None
        self.pan: PanDescriptor | None = None
        self.counters: dict[int, m.RolloverCounter] = {}
        try:
            doc = json.loads(path.read_text())
            self.version = doc.get("version")
            self.dual = doc.get("dual")
            self.pan = PanDescriptor.from_json(doc["pan"]) if doc.get("pan") else None
            for key, value in doc.get("counters", {}).items():
                self.counters[int(key, 16)] = m.RolloverCounter(value["wraps"], value["last"])
        except FileNotFoundError:
            pass
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            log.warning("ignoring unreadable ECHONET state file %s", path)

    def save(self) -> None:
        atomic_write_json(
            self.path,
            {
                "version": self.version,
                "dual": self.dual,
                "pan": self.pan.to_json() if self.pan else None,
                "counters": {
                    f"{epc:02X}": {"wraps": c.wraps, "last": c.last}
                    for epc, c in self.counters.items()
                },
            },
        )


def serial_path(config: Config, port: str) -> Path:
    """The configured port relative to the config file, with symlinks kept, not followed.

    A /dev/serial/by-id link or a simulator's pty link must be re-read at every reconnect:
    the device behind it changes when the dongle is replugged.
    """
    path = Path(port).expanduser()
    return Path(os.path.normpath(path if path.is_absolute() else config.base_dir / path))


def _open_serial(path: str, baudrate: int, read_interval: float) -> SerialLike:
    import serial

    try:
        return serial.Serial(path, baudrate, timeout=read_interval, write_timeout=5.0)
    except (serial.SerialException, OSError, ValueError) as exc:
        raise SkDisconnected(f"cannot open serial port {path}: {exc}") from None


class BRouteMeter(Driver):
    def __init__(
        self,
        device: EchonetDevice,
        config: Config,
        *,
        timing: Timing | None = None,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        sleep: Callable[[float], None] = time.sleep,
    ):
        super().__init__(device.id)
        conn = device.connection
        self.port_path = str(serial_path(config, conn.serial_port))
        self.baudrate = conn.baudrate
        self.retries = conn.retries
        self.data_dir = config.data_dir
        self.tz = zoneinfo.ZoneInfo(config.site.timezone)
        self.timing = timing or Timing(request_timeout=conn.timeout)
        self._rbid = device.credentials.rbid
        self._password = device.credentials.password
        self._now = now
        self._sleep = sleep
        self._executor = ThreadPoolExecutor(1, thread_name_prefix=f"echonet-{device.id}")
        self._hold: contextlib.ExitStack | None = None
        self._port: Any = None
        self._session: Session | None = None
        self._state = SavedState(state_path(self.data_dir, device.id))
        self._tid = 0
        self._scan_step = 0
        self._join_failures = 0
        self._scale: m.Scale | None = None
        self._supported: frozenset[int] | None = None
        self._poll_epcs: tuple[int, ...] = m.POLL_EPCS
        self._recent: tuple[float, float] | None = None
        self._history_due = 0.0
        self._history_ok = True
        self.names = m.METRICS

    # -- Driver interface -------------------------------------------------------------------

    async def read(self) -> Sample:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._read_sync)

    async def close(self) -> None:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._executor, self._close_port)

    async def history_day(self, day: int) -> list[tuple[float, float]]:
        """History 1 for day `day` (0 = today): (UTC epoch s, cumulative kWh) per recorded slot.

        The 48 half-hour readings the meter keeps for 100 days, to fill a gap in the lake
        after an outage.
        """
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._history_day_sync, day)

    # -- the worker thread ------------------------------------------------------------------

    def _read_sync(self) -> Sample:
        return self._guard(self._poll)

    def _history_day_sync(self, day: int) -> list[tuple[float, float]]:
        def run() -> list[tuple[float, float]]:
            slots = self._fetch_history(day)
            assert self._scale is not None
            date = (self._now().astimezone(self.tz) - timedelta(days=day)).date()
            return [
                (m.slot_epoch(date, i, self.tz), self._scale.kwh(v))
                for i, v in enumerate(slots)
                if v is not None
            ]

        return self._guard(run)

    def _guard(self, step: Callable[[], T]) -> T:
        """Connect if needed, run `step`, map session failures to typed device errors."""
        try:
            self._connect()
            return step()
        except SkDisconnected as exc:
            self._close_port()
            raise DeviceConnectionError(self.device_id, str(exc), where=self.port_path) from None
        except SkTimeout as exc:
            if self._session is not None and not self._session.joined:
                self._close_port()
            raise DeviceTimeout(self.device_id, str(exc), where=self.port_path) from None
        except JoinFailed as exc:
            raise DeviceConnectionError(
                self.device_id, f"{exc}; check the route-B ID and password"
            ) from None
        except SessionExpired as exc:
            raise DeviceConnectionError(self.device_id, str(exc)) from None
        except SkCommandFailed as exc:
            self._close_port()
            raise DeviceProtocolError(self.device_id, str(exc), where=self.port_path) from None
        except (SkProtocolError, m.PropertyError, el.FrameError) as exc:
            raise DeviceProtocolError(self.device_id, str(exc)) from None
        except SkError as exc:
            raise DeviceConnectionError(self.device_id, str(exc)) from None

    def _close_port(self) -> None:
        self._session = None
        self._scale = None
        if self._port is not None:
            with contextlib.suppress(Exception):
                self._port.close()
            self._port = None
        if self._hold is not None:
            self._hold.close()
            self._hold = None

    def _connect(self) -> None:
        if self._session is None:
            self._open_session()
        session = self._session
        assert session is not None
        if not session.joined:
            self._join(session)
        if self._scale is None:
            self._read_scale()

    def _open_session(self) -> None:
        hold = contextlib.ExitStack()
        hold.enter_context(hold_port(self.port_path, self.data_dir, owner=self.device_id))
        try:
            self._port = _open_serial(self.port_path, self.baudrate, self.timing.read_interval)
        except BaseException:
            hold.close()
            raise
        self._hold = hold
        session = Session(
            self._port,
            command_timeout=self.timing.command_timeout,
            join_timeout=self.timing.join_timeout,
        )
        version = session.hello()
        session.set_credentials(self._rbid.get_secret_value(), self._password.get_secret_value())
        if self._state.version == version:
            session.dual = self._state.dual
        elif self._state.version is not None:
            log.info("%s: dongle firmware changed to %s; rescanning", self.device_id, version)
            self._state.pan = None
        self._state.version = version
        self._session = session
        log.info("%s: dongle ready on %s (firmware %s)", self.device_id, self.port_path, version)

    def _join(self, session: Session) -> None:
        """Scan (unless a saved result exists) and authenticate, `retries + 1` tries a poll."""
        failure: SkError | None = None
        for attempt in range(self.retries + 1):
            pan = self._state.pan
            if pan is None:
                steps = self.timing.scan_durations
                duration = steps[min(self._scan_step, len(steps) - 1)]
                pan = session.scan(duration)
                self._state.dual = session.dual
                if pan is None:
                    self._scan_step += 1
                    failure = JoinFailed(
                        f"no smart meter answered an active scan (duration {duration})"
                    )
                    log.info("%s: %s", self.device_id, failure)
                    continue
                self._scan_step = 0
                self._state.pan = pan
                self._state.save()
                log.info(
                    "%s: found PAN %04X on channel %d (LQI %d)",
                    self.device_id,
                    pan.pan_id,
                    pan.channel,
                    pan.lqi,
                )
            try:
                session.join(pan)
            except JoinFailed as exc:
                failure = exc
                self._join_failures += 1
                self._state.pan = None
                self._state.save()
                delay = min(
                    self.timing.backoff_cap, self.timing.backoff * 2 ** (self._join_failures - 1)
                )
                log.info("%s: %s; rescanning in %.1f s", self.device_id, exc, delay)
                if attempt < self.retries:
                    self._sleep(delay)
                continue
            self._join_failures = 0
            self._state.save()
            log.info("%s: joined the meter at %s", self.device_id, session.meter_ip)
            return
        assert failure is not None
        raise failure

    # -- ECHONET requests -------------------------------------------------------------------

    def _next_tid(self) -> int:
        self._tid = (self._tid % 0xFFFF) + 1
        return self._tid

    def _request(self, build: Callable[[int], bytes], esvs: frozenset[int]) -> el.Frame:
        """One request, retried on timeouts and re-authenticated once on session expiry."""
        session = self._session
        assert session is not None
        failure: SkError | None = None
        for _ in range(self.retries + 1):
            tid = self._next_tid()

            def accept(data: bytes, tid: int = tid) -> el.Frame | None:
                try:
                    reply = el.decode(data)
                except el.FrameError as exc:
                    log.debug("%s: undecodable ECHONET frame: %s", self.device_id, exc)
                    return None
                return reply if el.is_reply_to(reply, tid) and reply.esv in esvs else None

            try:
                if not session.joined:
                    session.authenticate()
                session.send(build(tid))
                reply = session.receive(accept, self.timing.request_timeout)
            except SessionExpired as exc:
                log.info("%s: %s; re-authenticating", self.device_id, exc)
                failure = exc
                continue
            except SkTimeout as exc:
                failure = exc
                continue
            assert isinstance(reply, el.Frame)
            return reply
        assert failure is not None
        raise failure

    def _get(self, epcs: tuple[int, ...]) -> dict[int, bytes]:
        reply = self._request(
            lambda tid: el.get_request(tid, epcs), frozenset({el.ESV.GET_RES, el.ESV.GET_SNA})
        )
        props = {epc: edt for epc, edt in reply.props if edt}
        if not props:
            raise DeviceExceptionReply(
                self.device_id, "the meter refused every requested property", code=reply.esv
            )
        return props

    def _read_scale(self) -> None:
        props = self._get((m.EPC_GET_MAP, m.EPC_COEFFICIENT, m.EPC_UNIT, m.EPC_DIGITS))
        if m.EPC_UNIT not in props:
            raise m.PropertyError("the meter did not report its energy unit (E1)")
        if m.EPC_GET_MAP in props:
            self._supported = el.property_map(props[m.EPC_GET_MAP])
            self._poll_epcs = tuple(e for e in m.POLL_EPCS if e in self._supported)
            self._history_ok = m.EPC_HISTORY in self._supported
        self._scale = m.Scale(
            coefficient=m.coefficient(props.get(m.EPC_COEFFICIENT)),
            unit_kwh=m.unit_kwh(props[m.EPC_UNIT]),
            digits=m.digits(props.get(m.EPC_DIGITS)),
        )

    def _fetch_history(self, day: int) -> list[int | None]:
        reply = self._request(
            lambda tid: el.set_history_day(tid, day), frozenset({el.ESV.SET_RES, el.ESV.SETC_SNA})
        )
        if reply.esv == el.ESV.SETC_SNA:
            raise DeviceExceptionReply(
                self.device_id, "the meter refused to select a history day (E5)", code=reply.esv
            )
        props = self._get((m.EPC_HISTORY,))
        if m.EPC_HISTORY not in props:
            raise m.PropertyError("the meter returned no E2 history")
        got_day, slots = m.history(props[m.EPC_HISTORY])
        if got_day != day:
            raise m.PropertyError(f"asked for history day {day}, the meter sent day {got_day}")
        return slots

    # -- one poll ---------------------------------------------------------------------------

    def _counter(self, epc: int, raw: int) -> float:
        scale = self._scale
        assert scale is not None
        counter = self._state.counters.setdefault(epc, m.RolloverCounter())
        wraps = counter.wraps
        value = scale.kwh(counter.update(raw, scale.modulus))
        if counter.wraps != wraps:
            log.info("%s: counter %02X wrapped past %d digits", self.device_id, epc, scale.digits)
            self._state.save()
        return value

    def _poll(self) -> Sample:
        props = self._get(self._poll_epcs)
        nan = math.nan
        values = dict.fromkeys(self.names, nan)
        if m.EPC_INSTANT_POWER in props:
            values["instant_power_w"] = _num(m.instant_power_w(props[m.EPC_INSTANT_POWER]))
        if m.EPC_INSTANT_CURRENT in props:
            r, t = m.instant_currents_a(props[m.EPC_INSTANT_CURRENT])
            values["current_r_a"] = _num(r)
            values["current_t_a"] = _num(t)
            values["current_a"] = _num(m.total_current_a(r, t))
        for epc, name in (
            (m.EPC_CUMULATIVE, "cumulative_power_kwh"),
            (m.EPC_CUMULATIVE_REVERSE, "cumulative_power_export_kwh"),
        ):
            if epc in props and (raw := m.counter_raw(props[epc])) is not None:
                values[name] = self._counter(epc, raw)
        for epc, ts_name, name in (
            (m.EPC_FIXED_TIME, "historical_timestamp", "historical_cumulative_power_kwh"),
            (m.EPC_FIXED_TIME_REVERSE, None, "historical_cumulative_power_export_kwh"),
        ):
            if epc in props and (fixed := m.fixed_time(props[epc], self.tz)) is not None:
                if ts_name is not None:
                    values[ts_name] = fixed[0]
                values[name] = self._counter(epc, fixed[1])
        self._maybe_refresh_history()
        if self._recent is not None:
            values["recent_30min_timestamp"], values["recent_30min_consumption_kwh"] = self._recent
        session = self._session
        assert session is not None
        return Sample(
            names=self.names,
            values=np.fromiter((values[n] for n in self.names), dtype=np.float64),
            attributes={
                "dongle_firmware": session.version or "",
                "dongle_dialect": "dual-stack" if session.dual else "single-stack",
            },
        )

    def _maybe_refresh_history(self) -> None:
        """Fetch E2 once per half hour (two extra round trips), when a new slot should exist."""
        if not self._history_ok:
            return
        now = self._now()
        epoch = now.timestamp()
        if epoch < self._history_due:
            return
        scale = self._scale
        assert scale is not None
        try:
            today = self._fetch_history(0)
            newest = m.newest_slot(today)
            yesterday = self._fetch_history(1) if newest == 0 else None
        except DeviceExceptionReply as exc:
            log.info("%s: %s; no 30-minute history from this meter", self.device_id, exc)
            self._history_ok = False
            return
        except (SkTimeout, m.PropertyError) as exc:
            log.info("%s: history 1 unavailable (%s); retrying later", self.device_id, exc)
            self._history_due = epoch + HISTORY_RETRY_S
            return
        local = now.astimezone(self.tz)
        result = m.half_hour_consumption(today, yesterday, scale.modulus)
        if result is not None:
            slot, counts = result
            self._recent = (m.slot_epoch(local.date(), slot, self.tz), scale.kwh(counts))
        boundary = local.replace(minute=30 * (local.minute // 30), second=0, microsecond=0)
        have = (
            newest is not None
            and m.slot_epoch(local.date(), newest, self.tz) >= boundary.timestamp()
        )
        self._history_due = (
            boundary.timestamp() + m.SLOT_SECONDS + 60 if have else epoch + HISTORY_RETRY_S
        )


def _num(value: float | None) -> float:
    return math.nan if value is None else value
