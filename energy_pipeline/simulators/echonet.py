"""A fake Wi-SUN dongle on a pty, with a low-voltage smart meter behind it.

The dongle walks the whole SKSTACK dialogue (SKVER, SKSETPWD/SKSETRBID, SKSCAN with EPANDESC,
SKSREG, SKLL64, SKJOIN with PANA chatter and EVENT 25/24, SKSENDTO with LEN-framed raw bytes)
and answers ECHONET Lite Get/SetC(E5) from `MeterModel`, whose power is a share of the demo
site's load curve and whose counters are its exact integral. `DongleOptions` switches on the
awkward behaviours of real dongles and radios, so the driver's tests can run against them: the
two dialects and data modes, echo, failing scans and joins, session expiry (EVENT 29), garbage
and truncated frames, and a dongle that vanishes and comes back.

The pty slave is linked at the device's configured `serial_port`; an existing non-symlink
there is never replaced.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import math
import os
import signal
import sys
import tty
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

from energy_pipeline.config import Config, EchonetDevice, load_config
from energy_pipeline.drivers.echonet import frame as el
from energy_pipeline.drivers.echonet import meter as m
from energy_pipeline.drivers.echonet.driver import serial_path
from energy_pipeline.drivers.echonet.skstack import link_local
from energy_pipeline.simulators.site import SiteWeather, stable_seed

log = logging.getLogger(__name__)

HOUSEHOLD_SHARE = 0.05
"""The meter sees this share of the site's load (1.5 kW on average: a household)."""

NODE_PROFILE_INF = bytes.fromhex("108100000EF0010EF0017301D50401028801")


@dataclass(frozen=True, slots=True)
class DongleOptions:
    dialect: Literal["single", "dual"] = "single"
    data_mode: Literal["hex", "binary"] = "hex"
    echo: bool = True
    fail_scans: int = 0
    fail_joins: int = 0
    expire_after: int | None = None
    """EVENT 29 instead of the reply to every Nth request after a join."""
    garble_every: int | None = None
    """Garbage, a bogus datagram and a truncated ERXUDP before every Nth reply."""
    vanish_after: int | None = None
    """Close the pty after this many requests, and come back after `vanish_for` seconds."""
    vanish_for: float = 1.0
    single_phase: bool = False
    coefficient: int | None = None
    """D3; None leaves it out of the property map (the driver must then use 1)."""
    unit_code: int = 0x01
    digits: int = 7
    offset_kwh: float = 0.0
    """Added to the counter, to put it near its 10^digits wrap."""
    frozen_at: datetime | None = None
    """Serve the meter as of this instant instead of the wall clock (for exact tests)."""


@dataclass(frozen=True, slots=True)
class MeterModel:
    """The meter's readings at any instant: deterministic, counters only grow."""

    site: SiteWeather
    tz: ZoneInfo
    share: float = HOUSEHOLD_SHARE
    single_phase: bool = False
    coefficient: int = 1
    unit_code: int = 0x01
    digits: int = 7
    offset_kwh: float = 0.0

    @property
    def scale(self) -> m.Scale:
        return m.Scale(self.coefficient, m.UNIT_KWH[self.unit_code], self.digits)

    def power_w(self, ts: datetime) -> int:
        return round(self.share * self.site.load_w(ts))

    def currents_a(self, ts: datetime) -> tuple[float, float | None]:
        """Single-phase three-wire 100/200 V: R and T carry 55/45 % of the power at 100 V."""
        power = self.power_w(ts)
        if self.single_phase:
            return round(power / 100.0, 1), None
        return round(0.55 * power / 100.0, 1), round(0.45 * power / 100.0, 1)

    def energy_kwh(self, ts: datetime) -> float:
        return self.offset_kwh + self.share * self.site.energy_wh(ts) / 1000.0

    def counts(self, ts: datetime) -> int:
        """The unwrapped register count (the meter shows it modulo 10^digits)."""
        return math.floor(self.energy_kwh(ts) / self.scale.kwh_per_count + 1e-9)

    def last_boundary(self, ts: datetime) -> datetime:
        local = ts.astimezone(self.tz)
        return local.replace(minute=30 * (local.minute // 30), second=0, microsecond=0)

    def slot_instant(self, day: date, slot: int) -> datetime:
        return datetime.fromtimestamp(m.slot_epoch(day, slot, self.tz), UTC)

    def history(self, ts: datetime, day: int) -> list[int | None]:
        """E2 for `day` days ago: the count at each half hour that has passed, else no data."""
        today = ts.astimezone(self.tz).date()
        target = today - timedelta(days=day)
        out: list[int | None] = []
        for slot in range(m.SLOTS_PER_DAY):
            at = self.slot_instant(target, slot)
            out.append(self.counts(at) % self.scale.modulus if at <= ts else None)
        return out

    def values_at(self, ts: datetime) -> dict[str, float]:
        """What the driver reports at `ts` (counters unwrapped, as the driver unwraps them)."""
        scale = self.scale
        r, t = self.currents_a(ts)
        boundary = self.last_boundary(ts)
        previous = boundary - timedelta(minutes=30)
        values = {
            "instant_power_w": float(self.power_w(ts)),
            "current_r_a": r,
            "current_a": r if t is None else round(r + t, 1),
            "cumulative_power_kwh": scale.kwh(self.counts(ts)),
            "cumulative_power_export_kwh": 0.0,
            "historical_timestamp": boundary.timestamp(),
            "historical_cumulative_power_kwh": scale.kwh(self.counts(boundary)),
            "historical_cumulative_power_export_kwh": 0.0,
            "recent_30min_timestamp": boundary.timestamp(),
            "recent_30min_consumption_kwh": scale.kwh(
                self.counts(boundary) - self.counts(previous)
            ),
        }
        if t is not None:
            values["current_t_a"] = t
        return values

    def supported(self) -> frozenset[int]:
        epcs = {
            m.EPC_OPERATION_STATUS,
            m.EPC_FAULT_STATUS,
            m.EPC_GET_MAP,
            m.EPC_UNIT,
            m.EPC_DIGITS,
            *m.POLL_EPCS,
            m.EPC_HISTORY_DAY,
            m.EPC_HISTORY,
        }
        if self.coefficient != 1:
            epcs.add(m.EPC_COEFFICIENT)
        return frozenset(epcs)

    def property(self, epc: int, ts: datetime, history_day: int) -> bytes | None:
        """One property as the meter encodes it, None when it has no such property."""
        if epc not in self.supported():
            return None
        scale = self.scale
        if epc == m.EPC_INSTANT_POWER:
            return self.power_w(ts).to_bytes(4, "big", signed=True)
        if epc == m.EPC_INSTANT_CURRENT:
            r, t = self.currents_a(ts)
            raw_t = 0x7FFE if t is None else round(t * 10)
            return round(r * 10).to_bytes(2, "big", signed=True) + raw_t.to_bytes(
                2, "big", signed=True
            )
        if epc == m.EPC_CUMULATIVE:
            return (self.counts(ts) % scale.modulus).to_bytes(4, "big")
        if epc in (m.EPC_FIXED_TIME, m.EPC_FIXED_TIME_REVERSE):
            boundary = self.last_boundary(ts)
            count = self.counts(boundary) % scale.modulus if epc == m.EPC_FIXED_TIME else 0
            return _fixed_time(boundary, count)
        if epc == m.EPC_HISTORY:
            slots = self.history(ts, history_day)
            return history_day.to_bytes(2, "big") + b"".join(
                (m.NO_DATA_U32 if v is None else v).to_bytes(4, "big") for v in slots
            )
        return {
            m.EPC_OPERATION_STATUS: b"\x30",
            m.EPC_FAULT_STATUS: b"\x42",
            m.EPC_GET_MAP: el.encode_property_map(self.supported()),
            m.EPC_COEFFICIENT: self.coefficient.to_bytes(4, "big"),
            m.EPC_UNIT: bytes((self.unit_code,)),
            m.EPC_DIGITS: bytes((self.digits,)),
            m.EPC_CUMULATIVE_REVERSE: bytes(4),
            m.EPC_HISTORY_DAY: bytes((history_day,)),
        }[epc]


def _fixed_time(local: datetime, count: int) -> bytes:
    return (
        local.year.to_bytes(2, "big")
        + bytes((local.month, local.day, local.hour, local.minute, local.second))
        + count.to_bytes(4, "big")
    )


def meter_model(device: EchonetDevice, config: Config, options: DongleOptions) -> MeterModel:
    return MeterModel(
        site=SiteWeather.of(config),
        tz=ZoneInfo(config.site.timezone),
        single_phase=options.single_phase,
        coefficient=options.coefficient or 1,
        unit_code=options.unit_code,
        digits=options.digits,
        offset_kwh=options.offset_kwh,
    )


def device_model(device: EchonetDevice, config: Config) -> MeterModel:
    return meter_model(device, config, DongleOptions())


class Dongle:
    """One fake dongle: a pty whose slave is linked at the configured serial port."""

    def __init__(
        self,
        device: EchonetDevice,
        config: Config,
        options: DongleOptions,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ):
        self.device = device
        self.options = options
        self.link = serial_path(config, device.connection.serial_port)
        self.model = meter_model(device, config, options)
        self.clock = clock if options.frozen_at is None else (lambda: options.frozen_at)
        seed = stable_seed(config.site.name, device.id)
        self.meter_mac = f"001C6400{seed:08X}"
        self.dongle_mac = f"001D1290{seed ^ 0x5A5A5A5A:08X}"
        self.meter_ip = link_local(self.meter_mac)
        self.dongle_ip = link_local(self.dongle_mac)
        self.channel = 0x21 + seed % 28
        self.pan_id = seed >> 16
        self.pair_id = f"{seed & 0xFFFFFFFF:08X}"
        creds = device.credentials
        self._rbid = creds.rbid.get_secret_value()
        self._password = creds.password.get_secret_value()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.master: int | None = None
        self.pty_name = ""
        self.slave: int | None = None
        self.buf = bytearray()
        self._reset_session()
        self.scans = 0
        self.joins = 0
        self.requests = 0
        self.vanished = 0

    def _reset_session(self) -> None:
        self.echo = self.options.echo
        self.got_password: str | None = None
        self.got_rbid: str | None = None
        self.channel_set: int | None = None
        self.pan_set: int | None = None
        self.joined = False
        self.since_join = 0
        self.history_day = 0

    # -- pty plumbing -----------------------------------------------------------------------

    def open(self) -> None:
        if self.link.exists() and not self.link.is_symlink():
            raise FileExistsError(f"{self.link} exists and is not a symlink; refusing to replace")
        master, slave = os.openpty()
        tty.setraw(slave)
        self.master, self.slave = master, slave
        self.link.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.link.with_name(self.link.name + ".new")
        tmp.unlink(missing_ok=True)
        self.pty_name = os.ttyname(slave)
        tmp.symlink_to(self.pty_name)
        os.replace(tmp, self.link)
        self.loop = asyncio.get_running_loop()
        self.loop.add_reader(master, self._on_readable)

    def close(self) -> None:
        if self.master is not None and self.loop is not None:
            self.loop.remove_reader(self.master)
        for fd in (self.master, self.slave):
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self.master = self.slave = None
        self.buf.clear()
        # Only our own link: a newer simulator may have taken the path over.
        if self.link.is_symlink() and str(self.link.readlink()) == self.pty_name:
            self.link.unlink()

    def vanish(self, seconds: float) -> None:
        """Unplug: the port disappears, then a fresh dongle (session lost) reappears."""
        log.info("%s: dongle vanishes for %.1f s", self.device.id, seconds)
        self.vanished += 1
        self.close()
        self._reset_session()
        assert self.loop is not None
        self.loop.call_later(seconds, self.open)

    def _write(self, data: bytes) -> None:
        if self.master is None:
            return
        view = memoryview(data)
        while view:
            try:
                n = os.write(self.master, view)
            except BlockingIOError:
                continue
            except OSError:
                return
            view = view[n:]

    def _line(self, text: str) -> None:
        self._write(text.encode("ascii") + b"\r\n")

    def _on_readable(self) -> None:
        try:
            chunk = os.read(self.master, 4096) if self.master is not None else b""
        except OSError:
            return
        self.buf += chunk
        while self._process_one():
            pass

    # -- command parsing --------------------------------------------------------------------

    def _process_one(self) -> bool:
        buf = self.buf
        while buf[:2] == b"\r\n":
            del buf[:2]
        if buf.startswith(b"SKSENDTO "):
            return self._process_sendto()
        idx = buf.find(b"\r\n")
        if idx < 0:
            if len(buf) > 4096:
                buf.clear()
            return False
        line = buf[:idx].decode("ascii", errors="replace")
        del buf[: idx + 2]
        if self.echo:
            self._line(line)
        self._command(line.split())
        return True

    def _process_sendto(self) -> bool:
        buf = self.buf
        fields = 6 if self.options.dialect == "single" else 7
        tokens: list[bytes] = []
        pos = 0
        for _ in range(fields):
            space = buf.find(b" ", pos)
            if space < 0:
                if len(buf) > 200:
                    buf.clear()
                    self._line("FAIL ER06")
                return False
            tokens.append(bytes(buf[pos:space]))
            pos = space + 1
        try:
            size = int(tokens[-1], 16)
            dest = tokens[2].decode().upper()
        except ValueError:
            buf.clear()
            self._line("FAIL ER05")
            return False
        if len(buf) < pos + size:
            return False
        payload = bytes(buf[pos : pos + size])
        del buf[: pos + size]
        if self.echo:
            self._write(b" ".join(tokens) + b" \r\n")
        self._sendto(dest, payload)
        return True

    def _command(self, args: list[str]) -> None:
        if not args:
            return
        name, rest = args[0], args[1:]
        handler = {
            "SKVER": self._skver,
            "SKSETPWD": self._sksetpwd,
            "SKSETRBID": self._sksetrbid,
            "SKSREG": self._sksreg,
            "SKSCAN": self._skscan,
            "SKLL64": self._skll64,
            "SKJOIN": self._skjoin,
            "SKTERM": self._skterm,
        }.get(name)
        if handler is None:
            self._line("FAIL ER04")
            return
        handler(rest)

    def _skver(self, args: list[str]) -> None:
        self._line("EVER 1.2.10" if self.options.dialect == "single" else "EVER 1.5.2")
        self._line("OK")

    def _sksetpwd(self, args: list[str]) -> None:
        if len(args) != 2 or int(args[0], 16) != len(args[1]):
            self._line("FAIL ER06")
            return
        self.got_password = args[1]
        self._line("OK")

    def _sksetrbid(self, args: list[str]) -> None:
        if len(args) != 1 or len(args[0]) != 32:
            self._line("FAIL ER06")
            return
        self.got_rbid = args[0]
        self._line("OK")

    def _sksreg(self, args: list[str]) -> None:
        if len(args) != 2:
            self._line("FAIL ER05")
            return
        reg, value = args[0].upper(), args[1]
        try:
            number = int(value, 16)
        except ValueError:
            self._line("FAIL ER06")
            return
        if reg == "S2":
            self.channel_set = number
        elif reg == "S3":
            self.pan_set = number
        elif reg == "SFE":
            self.echo = number == 1
        self._line("OK")

    def _skscan(self, args: list[str]) -> None:
        expected = 3 if self.options.dialect == "single" else 4
        if len(args) != expected or args[0] != "2":
            self._line("FAIL ER05")
            return
        self._line("OK")
        self.scans += 1
        if self.scans > self.options.fail_scans:
            self._line(
                f"EVENT 20 {self.meter_ip}" + (" 0" if self.options.dialect == "dual" else "")
            )
            self._line("EPANDESC")
            self._line(f"  Channel:{self.channel:02X}")
            self._line("  Channel Page:09")
            self._line(f"  Pan ID:{self.pan_id:04X}")
            self._line(f"  Addr:{self.meter_mac}")
            self._line("  LQI:E1")
            if self.options.dialect == "dual":
                self._line("  Side:0")
            self._line(f"  PairID:{self.pair_id}")
        self._line(f"EVENT 22 {self.dongle_ip}" + (" 0" if self.options.dialect == "dual" else ""))

    def _skll64(self, args: list[str]) -> None:
        if len(args) != 1 or len(args[0]) != 16:
            self._line("FAIL ER06")
            return
        self._line(link_local(args[0]))

    def _side(self) -> str:
        return " 0" if self.options.dialect == "dual" else ""

    def _skjoin(self, args: list[str]) -> None:
        if len(args) != 1:
            self._line("FAIL ER05")
            return
        self._line("OK")
        self.joins += 1
        self.joined = False
        self._line(f"EVENT 21 {args[0]}{self._side()} 00")
        self._line(f"EVENT 02 {args[0]}{self._side()}")
        self._datagram(bytes.fromhex("00010000001000000000000000000000"), port=0x02CC)
        ok = (
            self.joins > self.options.fail_joins
            and args[0].upper() == self.meter_ip
            and self.channel_set == self.channel
            and self.pan_set == self.pan_id
            and self.got_password == self._password
            and self.got_rbid == self._rbid
        )
        if not ok:
            self._line(f"EVENT 24 {args[0]}{self._side()}")
            return
        self.joined = True
        self.since_join = 0
        self._line(f"EVENT 25 {args[0]}{self._side()}")
        self._datagram(NODE_PROFILE_INF, dest="FF02:0000:0000:0000:0000:0000:0000:0001")

    def _skterm(self, args: list[str]) -> None:
        self.joined = False
        self._line("OK")
        self._line(f"EVENT 27 {self.meter_ip}{self._side()}")

    # -- ECHONET Lite -----------------------------------------------------------------------

    def _datagram(self, data: bytes, *, port: int = 0x0E1A, dest: str | None = None) -> None:
        head = (
            f"ERXUDP {self.meter_ip} {dest or self.dongle_ip} {port:04X} {port:04X} "
            f"{self.meter_mac} 1{self._side()} {len(data):04X} "
        ).encode("ascii")
        body = data.hex().upper().encode("ascii") if self.options.data_mode == "hex" else data
        self._write(head + body + b"\r\n")

    def _sendto(self, dest: str, payload: bytes) -> None:
        if not self.joined:
            self._line("FAIL ER10")
            return
        self._line(f"EVENT 21 {dest}{self._side()} 00")
        self._line("OK")
        self.requests += 1
        self.since_join += 1
        opts = self.options
        if opts.expire_after and self.since_join > opts.expire_after:
            self.joined = False
            self._line(f"EVENT 29 {self.meter_ip}{self._side()}")
            return
        reply = self._answer(payload)
        if opts.garble_every and self.requests % opts.garble_every == 0:
            self._garbage(reply)
        if reply is not None:
            self._datagram(reply)
        if opts.vanish_after and self.requests % opts.vanish_after == 0 and self.loop:
            self.loop.call_later(0.05, self.vanish, opts.vanish_for)

    def _garbage(self, reply: bytes | None) -> None:
        self._write(b"\x00\xff\xfe garbage \x81\x10\r\n")
        self._datagram(b"\x10\x81\x00")
        head = (
            f"ERXUDP {self.meter_ip} {self.dongle_ip} 0E1A 0E1A {self.meter_mac} 1{self._side()} "
            f"{len(reply or b'x'):04X} "
        ).encode("ascii")
        body = (reply or b"x")[:5]
        self._write(
            head + (body.hex().upper().encode() if self.options.data_mode == "hex" else body)
        )
        self._write(b"\r\n")

    def _answer(self, payload: bytes) -> bytes | None:
        try:
            request = el.decode(payload)
        except el.FrameError:
            return None
        if request.deoj != el.SMART_METER:
            return None
        now = self.clock()
        if request.esv == el.ESV.SETC:
            ok = all(
                epc == m.EPC_HISTORY_DAY and len(edt) == 1 and edt[0] <= 99
                for epc, edt in request.props
            )
            if ok:
                self.history_day = request.props[0][1][0]
            esv = el.ESV.SET_RES if ok else el.ESV.SETC_SNA
            props = tuple((epc, b"" if ok else edt) for epc, edt in request.props)
        elif request.esv == el.ESV.GET:
            props = tuple(
                (epc, self.model.property(epc, now, self.history_day) or b"")
                for epc, _ in request.props
            )
            esv = el.ESV.GET_RES if all(edt for _, edt in props) else el.ESV.GET_SNA
        else:
            return None
        return el.encode(el.Frame(request.tid, el.SMART_METER, request.seoj, esv, props))


async def start(
    devices: Sequence[EchonetDevice],
    config: Config,
    stack: contextlib.AsyncExitStack,
    options: DongleOptions | None = None,
) -> list[str]:
    lines = []
    for dev in devices:
        dongle = Dongle(dev, config, options or DongleOptions())
        dongle.open()
        stack.callback(dongle.close)
        lines.append(f"{dev.id}: echonet b-route dongle on {dongle.link}")
    return lines


def _options(argv: Sequence[str] | None) -> tuple[argparse.Namespace, DongleOptions]:
    p = argparse.ArgumentParser(prog="python -m energy_pipeline.simulators.echonet")
    p.add_argument("--config", required=True)
    p.add_argument("--device", required=True)
    p.add_argument("--dialect", choices=("single", "dual"), default="single")
    p.add_argument("--data-mode", choices=("hex", "binary"), default="hex")
    p.add_argument("--no-echo", action="store_true")
    p.add_argument("--fail-scans", type=int, default=0)
    p.add_argument("--fail-joins", type=int, default=0)
    p.add_argument("--expire-after", type=int)
    p.add_argument("--garble-every", type=int)
    p.add_argument("--vanish-after", type=int)
    p.add_argument("--vanish-for", type=float, default=1.0)
    p.add_argument("--single-phase", action="store_true")
    p.add_argument("--coefficient", type=int)
    p.add_argument("--unit-code", type=lambda s: int(s, 0), default=0x01)
    p.add_argument("--digits", type=int, default=7)
    p.add_argument("--offset-kwh", type=float, default=0.0)
    p.add_argument("--frozen-at", type=datetime.fromisoformat)
    a = p.parse_args(argv)
    opts = replace(
        DongleOptions(),
        dialect=a.dialect,
        data_mode=a.data_mode,
        echo=not a.no_echo,
        fail_scans=a.fail_scans,
        fail_joins=a.fail_joins,
        expire_after=a.expire_after,
        garble_every=a.garble_every,
        vanish_after=a.vanish_after,
        vanish_for=a.vanish_for,
        single_phase=a.single_phase,
        coefficient=a.coefficient,
        unit_code=a.unit_code,
        digits=a.digits,
        offset_kwh=a.offset_kwh,
        frozen_at=a.frozen_at,
    )
    return a, opts


async def _serve(argv: Sequence[str] | None) -> None:
    args, opts = _options(argv)
    config = load_config(args.config)
    device = config.device(args.device)
    if not isinstance(device, EchonetDevice):
        raise SystemExit(f"{args.device} is not an echonet_broute device")
    async with contextlib.AsyncExitStack() as stack:
        for line in await start([device], config, stack, opts):
            print(line, flush=True)
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        await stop.wait()


def main(argv: Sequence[str] | None = None) -> None:
    """One dongle with options, for tests and experiments; prints its line once it is ready."""
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(argv))


if __name__ == "__main__":
    main()
