"""The `echonet_broute` driver: one smart meter behind one Wi-SUN dongle.

All serial I/O runs in a single worker thread owned by the driver, so a read never blocks the
collector's event loop, a cancelled poll never leaves two requests in flight, and a slow scan
on this dongle never occupies a thread another device needs.

Joining takes an active scan (seconds to minutes) plus PANA authentication; the scan result is
kept in the `StateStore` the driver is given (the collector's is the file
`<data_dir>/state/echonet-<device>.json`), so after a restart the driver goes straight to
SKJOIN. A failed join forgets the result and rescans, with a backoff that grows across polls.

After an outage (of the meter, the dongle or the collector) the meter still holds the
half-hourly readings of the gap: history 1 keeps 48 slots a day for 100 days. The driver
remembers the instant up to which it has handed readings over (`covered`, kept in the same
state) and, on the first good poll after a gap longer than half an hour, reads the missed
days with E5/E2 and returns their slots as `Sample.backfill`, a few days per poll.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import time
import zoneinfo
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, TypeVar

import numpy as np

from energy_pipeline.config import Config, EchonetDevice
from energy_pipeline.drivers.base import (
    BusKey,
    DeviceConnectionError,
    DeviceExceptionReply,
    DeviceProtocolError,
    DeviceTimeout,
    Driver,
    StateStore,
)
from energy_pipeline.drivers.echonet import frame as el
from energy_pipeline.drivers.echonet import meter as m
from energy_pipeline.drivers.echonet.skstack import (
    JoinFailed,
    PanDescriptor,
    ScanFailed,
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
from energy_pipeline.profiles.echonet_names import METRICS
from energy_pipeline.readings import Backfill, Sample

log = logging.getLogger(__name__)
T = TypeVar("T")

HISTORY_RETRY_S = 300.0
HISTORY_DAYS = 100
"""History 1 goes back to day 99 (0 = today)."""
BACKFILL_DAYS_PER_POLL = 2
"""History days read per poll while catching up: at most four extra round trips, so a poll
stays within seconds and a long outage is caught up over the following polls."""


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


STATE_KEY = "echonet-{device_id}"
"""The key of a meter's `StateStore`."""


class SavedState:
    """What survives a restart: the dongle's dialect, the scan result, counter wrap counts,
    and the instant up to which readings were handed over (UTC epoch s)."""

    def __init__(self, store: StateStore):
        self.store = store
        self.version: str | None = None
        self.dual: bool | None = None
        self.pan: PanDescriptor | None = None
        self.counters: dict[int, m.RolloverCounter] = {}
        self.covered: float | None = None
        try:
            doc = store.load()
            if doc is None:
                return
            self.version = doc.get("version")
            self.dual = doc.get("dual")
            self.pan = PanDescriptor.from_json(doc["pan"]) if doc.get("pan") else None
            for key, value in doc.get("counters", {}).items():
                self.counters[int(key, 16)] = m.RolloverCounter(value["wraps"], value["last"])
            if doc.get("covered_until"):
                self.covered = datetime.fromisoformat(doc["covered_until"]).timestamp()
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            log.warning("ignoring unreadable ECHONET state %s", store)

    def save(self) -> None:
        self.store.save(
            {
                "version": self.version,
                "dual": self.dual,
                "pan": self.pan.to_json() if self.pan else None,
                "counters": {
                    f"{epc:02X}": {"wraps": c.wraps, "last": c.last}
                    for epc, c in self.counters.items()
                },
                "covered_until": (
                    datetime.fromtimestamp(self.covered, UTC).isoformat()
                    if self.covered is not None
                    else None
                ),
            },
        )


def _open_serial(path: str, baudrate: int, read_interval: float) -> SerialLike:
    import serial

    try:
        return serial.Serial(path, baudrate, timeout=read_interval, write_timeout=5.0)
    except (serial.SerialException, OSError, ValueError) as exc:
        code = exc.args[0] if exc.args and isinstance(exc.args[0], int) else None
        reason = os.strerror(code) if code is not None else str(exc)
        raise SkDisconnected(f"cannot open the serial port: {reason}") from None


class BRouteMeter(Driver):
    def __init__(
        self,
        device: EchonetDevice,
        config: Config,
        *,
        state: StateStore,
        timing: Timing | None = None,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        sleep: Callable[[float], None] = time.sleep,
    ):
        conn = device.connection
        super().__init__(device.id, timeout=conn.timeout, retries=conn.retries)
        self.port_path = str(config.resolve(conn.serial_port))
        self.baudrate = conn.baudrate
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
        self._state = SavedState(state)
        self._tid = 0
        self._scan_step = 0
        self._join_failures = 0
        self._scale: m.Scale | None = None
        self._supported: frozenset[int] | None = None
        self._poll_epcs: tuple[int, ...] = m.POLL_EPCS
        self._recent: tuple[float, float] | None = None
        self._history_due = 0.0
        self._history_ok = True
        self._covered = self._state.covered
        self._read_through: m.SlotReading | None = None
        self._backfill_due = 0.0
        self.names = METRICS

    # -- Driver interface -------------------------------------------------------------------

    @property
    def bus_key(self) -> BusKey:
        return ("serial", os.path.realpath(self.port_path))

    async def read(self) -> Sample:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._read_sync)

    async def close(self) -> None:
        """Release the port and record `covered` exactly.

        The collector closes its drivers after it committed every outcome they returned.
        """
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._executor, self._shut)

    async def history_day(self, day: int) -> list[tuple[float, float]]:
        """History 1 for day `day` (0 = today): (UTC epoch s, cumulative kWh) per recorded slot.

        The 48 half-hour readings the meter keeps for 100 days, to fill a gap in the lake
        after an outage.
        """
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._history_day_sync, day)

    # -- the worker thread ------------------------------------------------------------------

    def _read_sync(self) -> Sample:
        self.last_attempts = 1
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
            if self._session is None or not self._session.joined:
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

    def _shut(self) -> None:
        if self._covered is not None and self._covered != self._state.covered:
            self._state.covered = self._covered
            with contextlib.suppress(OSError):
                self._state.save()
        self._close_port()

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
        """Lock and open the port, then version and credentials; all or nothing."""
        self._hold = contextlib.ExitStack()
        try:
            self._hold.enter_context(hold_port(self.port_path, self.data_dir, owner=self.device_id))
            self._port = _open_serial(self.port_path, self.baudrate, self.timing.read_interval)
            self._start_session()
        except BaseException:
            self._close_port()
            raise

    def _start_session(self) -> None:
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
                    failure = ScanFailed(
                        f"no smart meter answered an active scan (duration {duration})"
                    )
                    log.info("%s: %s", self.device_id, failure)
                    continue
                self._scan_step = 0
                self._state.pan = pan
                self._state.save()
                log.info(
                    "%s: found PAN %04X on channel %d (about %.0f dBm)",
                    self.device_id,
                    pan.pan_id,
                    pan.channel,
                    pan.rssi_dbm,
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
        for attempt in range(1, self.retries + 2):
            self.last_attempts = max(self.last_attempts, attempt)
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

    def _history(self, day: int, fetched: dict[int, list[int | None]]) -> list[int | None]:
        """`_fetch_history` at most once per day and poll (backfill and the recent slot share)."""
        if day not in fetched:
            fetched[day] = self._fetch_history(day)
        return fetched[day]

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
        self._record_covered()
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
        now = self._now()
        fetched: dict[int, list[int | None]] = {}
        backfill = self._backfill(now, m.EPC_CUMULATIVE in props, fetched)
        self._maybe_refresh_history(now, fetched)
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
            backfill=backfill,
        )

    def _record_covered(self) -> None:
        """Save `covered` as the previous poll left it, when it entered another half hour.

        One poll late on purpose: by the next poll the collector has normally committed the
        previous sample, so after a crash the next start re-reads slots rather than skipping
        them (the lake keeps each reading once). Saving once per half hour spares the disk.
        """
        covered, saved = self._covered, self._state.covered
        if covered is None or (
            saved is not None and covered // m.SLOT_SECONDS == saved // m.SLOT_SECONDS
        ):
            return
        self._state.covered = covered
        self._state.save()

    def _backfill(
        self, now: datetime, have_counter: bool, fetched: dict[int, list[int | None]]
    ) -> Backfill | None:
        """The slots missed since `covered`, up to BACKFILL_DAYS_PER_POLL days, oldest first.

        Each slot gets the metrics a live poll gives for its latest slot (timestamp, cumulative
        kWh, and the half hour's consumption when the slot before is known), so a slot reads
        alike whether it was polled or recovered.
        """
        epoch = now.timestamp()
        covered = self._covered
        if covered is None or epoch - covered <= m.SLOT_SECONDS or not self._history_ok:
            self._covered = epoch
            return None
        counter = self._state.counters.get(m.EPC_CUMULATIVE)
        if not have_counter or counter is None or counter.last is None:
            return None  # the past is unwrapped against this poll's E0: wait for one
        if epoch < self._backfill_due:
            return None
        scale = self._scale
        assert scale is not None
        today = now.astimezone(self.tz).date()
        local = datetime.fromtimestamp(covered, self.tz)
        after = m.slot_ordinal(local.date(), local.hour * 2 + local.minute // 30) + 1
        before = self._read_through
        start = local.date()
        if before is not None and before.ordinal + 1 == after:
            start = date.fromordinal(after // m.SLOTS_PER_DAY)
        else:
            before = None
        oldest = today - timedelta(days=HISTORY_DAYS - 1)
        if start < oldest:
            log.info("%s: readings before %s are gone from the meter", self.device_id, oldest)
            start, before = oldest, None
        days = [start + timedelta(days=k) for k in range((today - start).days + 1)]
        days = days[:BACKFILL_DAYS_PER_POLL]
        try:
            history = [(d, self._history((today - d).days, fetched)) for d in days]
        except DeviceExceptionReply as exc:
            log.info("%s: %s; no backfill from this meter", self.device_id, exc)
            self._history_ok = False
            self._covered = epoch
            return None
        except (SkTimeout, m.PropertyError) as exc:
            log.info("%s: history 1 unavailable (%s); backfill later", self.device_id, exc)
            self._backfill_due = epoch + HISTORY_RETRY_S
            return None
        now_total = counter.last + counter.wraps * scale.modulus
        readings = m.history_readings(history, counter.last, now_total, scale.modulus, before)
        done = days[-1] == today
        rows: list[tuple[float, str, float]] = []
        for r in readings:
            at = m.slot_epoch(r.day, r.slot, self.tz)
            if not covered < at < epoch:
                continue
            rows.append((at, "historical_timestamp", at))
            rows.append((at, "historical_cumulative_power_kwh", scale.kwh(r.total)))
            if r.consumed is not None:
                rows.append((at, "recent_30min_timestamp", at))
                rows.append((at, "recent_30min_consumption_kwh", scale.kwh(r.consumed)))
        end = m.slot_ordinal(days[-1], m.SLOTS_PER_DAY - 1)
        self._read_through = next((r for r in readings if r.ordinal == end), None)
        self._covered = epoch if done else m.slot_epoch(days[-1], m.SLOTS_PER_DAY - 1, self.tz)
        log.info(
            "%s: backfilled %d half-hour slots of %s to %s",
            self.device_id,
            len({at for at, _, _ in rows}),
            days[0],
            days[-1],
        )
        return Backfill(
            np.array([round(at * 1_000_000) for at, _, _ in rows], np.int64),
            tuple(name for _, name, _ in rows),
            np.array([value for _, _, value in rows], np.float64),
        )

    def _maybe_refresh_history(self, now: datetime, fetched: dict[int, list[int | None]]) -> None:
        """Fetch E2 once per half hour (two extra round trips), when a new slot should exist."""
        if not self._history_ok:
            return
        epoch = now.timestamp()
        if epoch < self._history_due:
            return
        scale = self._scale
        assert scale is not None
        try:
            today = self._history(0, fetched)
            newest = m.newest_slot(today)
            yesterday = self._history(1, fetched) if newest == 0 else None
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
