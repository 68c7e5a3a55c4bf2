"""The SKSTACK IP dialogue with a Wi-SUN dongle (BP35A1, RL7023, BP35C0...), synchronous.

The driver runs this in its own single worker thread, so the blocking reads here never touch
the collector's event loop and there is never more than one command in flight. Everything the
dongle prints goes through `Wire`, which splits the stream into lines, EVENTs and ERXUDP
datagrams; ERXUDP comes in two dialects (single-stack, and dual-stack with a SIDE field) and two
data modes (hex text, raw binary), told apart per datagram so no flash-limited WOPT is needed.

Credentials cross this module only inside `set_credentials`; the command lines carrying them
are written to the port and never logged, echoed lines are dropped unread.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import NamedTuple, Protocol

log = logging.getLogger(__name__)

ECHONET_PORT = 0x0E1A
PANA_PORT = 0x02CC
SCAN_CHANNELS = 28
MAX_LINE = 4096
# "ERXUDP " + 2 addresses + 2 ports + MAC + 2 flags + LEN, with separators, and some slack.
ERXUDP_HEAD_MAX = 160
_HEX = frozenset(b"0123456789ABCDEFabcdef")
_ADDR = rb"[0-9A-Fa-f]{4}(?::[0-9A-Fa-f]{4}){7}"
# sender dest rport lport sender-MAC secured [side (dual-stack)] LEN, then the data.
_ERXUDP_HEAD = re.compile(
    rb"ERXUDP (%s) (%s) ([0-9A-Fa-f]{4}) ([0-9A-Fa-f]{4}) ([0-9A-Fa-f]{16}) "
    rb"([0-9A-Fa-f]{1,2}) (?:([0-9A-Fa-f]{1,2}) )?([0-9A-Fa-f]{4}) " % (_ADDR, _ADDR)
)
_IPV6 = re.compile(r"^[0-9A-Fa-f]{4}(:[0-9A-Fa-f]{4}){7}$")

EVENT_UDP_SENT = 0x21
EVENT_BEACON = 0x20
EVENT_SCAN_DONE = 0x22
EVENT_PANA_FAILED = 0x24
EVENT_PANA_OK = 0x25
EVENT_SESSION_ENDED = frozenset({0x26, 0x27, 0x28})
EVENT_SESSION_EXPIRED = 0x29


class SerialLike(Protocol):
    """The part of pyserial's `Serial` the session uses (tests may pass a pty-backed one)."""

    @property
    def in_waiting(self) -> int: ...

    def read(self, size: int = 1) -> bytes: ...

    def write(self, data: bytes) -> int | None: ...


class SkError(Exception):
    """The dongle dialogue failed; the driver maps these to DeviceError kinds."""


class SkTimeout(SkError):
    pass


class SkDisconnected(SkError):
    """The serial port went away (dongle unplugged, pty closed)."""


class SkCommandFailed(SkError):
    def __init__(self, command: str, code: str):
        self.code = code
        super().__init__(f"{command} answered FAIL {code}")


class SkProtocolError(SkError):
    pass


class ScanFailed(SkError):
    pass


class JoinFailed(SkError):
    pass


class SessionExpired(SkError):
    """EVENT 29 (lifetime expired) or 26/27/28 (terminated): the PANA session must be redone."""


class Event(NamedTuple):
    code: int
    args: tuple[str, ...]

    @property
    def param(self) -> str | None:
        """The trailing parameter of EVENT 21 (after the optional SIDE in dual-stack)."""
        return self.args[-1] if len(self.args) >= 2 else None


class Datagram(NamedTuple):
    """One received UDP datagram. NamedTuples here: built per line, cheap to construct."""

    sender: str
    dest: str
    rport: int
    lport: int
    sender_lla: str
    secured: int
    side: int | None
    data: bytes
    binary: bool


class Garbled(NamedTuple):
    reason: str


Message = str | Event | Datagram | Garbled


@dataclass(frozen=True, slots=True)
class PanDescriptor:
    channel: int
    channel_page: int
    pan_id: int
    addr: str
    lqi: int
    pair_id: str | None = None
    side: int | None = None

    @property
    def rssi_dbm(self) -> float:
        return 0.275 * self.lqi - 104.27

    def to_json(self) -> dict[str, object]:
        return asdict(self)

    @classmethod
    def from_json(cls, doc: dict[str, object]) -> PanDescriptor:
        return cls(
            channel=int(doc["channel"]),  # type: ignore[call-overload]
            channel_page=int(doc["channel_page"]),  # type: ignore[call-overload]
            pan_id=int(doc["pan_id"]),  # type: ignore[call-overload]
            addr=str(doc["addr"]),
            lqi=int(doc["lqi"]),  # type: ignore[call-overload]
            pair_id=None if doc.get("pair_id") is None else str(doc["pair_id"]),
            side=None if doc.get("side") is None else int(doc["side"]),  # type: ignore[call-overload]
        )


def link_local(mac: str) -> str:
    """What SKLL64 prints: FE80::/64 + the MAC with the universal/local bit flipped."""
    raw = bytearray(bytes.fromhex(mac))
    raw[0] ^= 0x02
    groups = [raw[i : i + 2].hex().upper() for i in range(0, 8, 2)]
    return "FE80:0000:0000:0000:" + ":".join(groups)


def scan_seconds(duration: int) -> float:
    """How long an active scan of all channels takes: 9.6 ms x (2^n + 1) per channel."""
    return SCAN_CHANNELS * 0.0096 * (2**duration + 1)


class Wire:
    """Splits the dongle's byte stream into messages. Never raises on content, only on I/O."""

    def __init__(self, port: SerialLike, clock: Callable[[], float] = time.monotonic):
        self.port = port
        self.clock = clock
        self.buf = bytearray()
        self.garbled = 0

    def write(self, data: bytes) -> None:
        try:
            self.port.write(data)
        except (OSError, ValueError) as exc:
            raise SkDisconnected(f"serial write failed: {exc.__class__.__name__}") from None
        except Exception as exc:  # pyserial's SerialException/SerialTimeoutException
            raise SkDisconnected(f"serial write failed: {exc}") from None

    def _fill(self, deadline: float) -> None:
        if self.clock() >= deadline:
            raise SkTimeout("no answer from the dongle in time")
        try:
            chunk = self.port.read(self.port.in_waiting or 1)
        except (OSError, ValueError) as exc:
            raise SkDisconnected(f"serial read failed: {exc.__class__.__name__}") from None
        except Exception as exc:  # pyserial's SerialException
            raise SkDisconnected(f"serial read failed: {exc}") from None
        self.buf += chunk

    def next(self, deadline: float) -> Message:
        while True:
            msg = self._parse()
            if msg is not None:
                if isinstance(msg, Garbled):
                    self.garbled += 1
                return msg
            self._fill(deadline)

    def _parse(self) -> Message | None:
        while self.buf:
            if self.buf.startswith(b"ERXUDP "):
                return self._parse_erxudp()
            if len(self.buf) < 7 and b"ERXUDP ".startswith(bytes(self.buf)):
                return None
            idx = self.buf.find(b"\r\n")
            if idx < 0 and len(self.buf) <= MAX_LINE:
                return None
            if idx < 0 or idx > MAX_LINE:
                return self._drop_line(f"line longer than {MAX_LINE} bytes")
            line = bytes(self.buf[:idx])
            del self.buf[: idx + 2]
            text = line.rstrip().decode("ascii", errors="replace")
            if not text.strip():
                continue
            if "\ufffd" in text or "\x00" in text:
                return Garbled("non-ASCII line")
            if text.startswith("EVENT "):
                return _event(text)
            return text
        return None

    def _drop_line(self, reason: str) -> Garbled:
        idx = self.buf.find(b"\r\n")
        del self.buf[: (idx + 2) if idx >= 0 else len(self.buf)]
        return Garbled(reason)

    def _parse_erxudp(self) -> Message | None:
        """`ERXUDP sender dest rport lport lla secured [side] LEN DATA`; DATA hex or raw.

        One regex match reads the header in place; binary DATA may hold spaces and CRLF, so
        it is cut by LEN, never by separators.
        """
        buf = self.buf
        head = _ERXUDP_HEAD.match(buf)
        if head is None:
            if buf.find(b"\r\n", 0, ERXUDP_HEAD_MAX) >= 0 or len(buf) >= ERXUDP_HEAD_MAX:
                return self._drop_line("ERXUDP header malformed or cut short")
            return None
        sender, dest, rport, lport, lla, secured, side, length = head.groups()
        pos = head.end()
        size = int(length, 16)
        if len(buf) <= pos:
            return None
        if buf[pos] in _HEX:
            end = pos + 2 * size
            crlf = buf.find(b"\r\n", pos, end + 2)
            if 0 <= crlf < end:
                return self._drop_line(f"ERXUDP hex data truncated ({(crlf - pos) // 2} of {size})")
            if len(buf) < end + 2:
                return None
            text = bytes(buf[pos:end])
            if crlf != end or b" " in text:
                return self._drop_line("ERXUDP hex data malformed")
            try:
                data = bytes.fromhex(text.decode("ascii"))
            except (ValueError, UnicodeDecodeError):
                return self._drop_line("ERXUDP hex data malformed")
            del buf[: end + 2]
            binary = False
        else:
            end = pos + size
            if len(buf) < end:
                return None
            data = bytes(buf[pos:end])
            del buf[:end]
            if buf.startswith(b"\r\n"):
                del buf[:2]
            binary = True
        return Datagram(
            sender.decode("ascii").upper(),
            dest.decode("ascii").upper(),
            int(rport, 16),
            int(lport, 16),
            lla.decode("ascii").upper(),
            int(secured, 16),
            None if side is None else int(side, 16),
            data,
            binary,
        )


def _event(text: str) -> Message:
    parts = text.split()
    try:
        return Event(int(parts[1], 16), tuple(parts[2:]))
    except (IndexError, ValueError):
        return Garbled("EVENT without a hex code")


def _is_echo(text: str) -> bool:
    return text.startswith(("SK", "WOPT", "ROPT"))


class Session:
    """One dongle on one open serial port. Methods block up to their deadline."""

    def __init__(
        self,
        port: SerialLike,
        *,
        command_timeout: float = 3.0,
        join_timeout: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.wire = Wire(port, clock)
        self.clock = clock
        self.command_timeout = command_timeout
        self.join_timeout = join_timeout
        self.dual: bool | None = None
        self.version: str | None = None
        self.joined = False
        self.meter_ip: str | None = None
        self.stale_replies = 0

    # -- plumbing ---------------------------------------------------------------------------

    def _deadline(self, seconds: float | None = None) -> float:
        return self.clock() + (self.command_timeout if seconds is None else seconds)

    def _next(self, deadline: float) -> Message:
        """The next message that is not an echo of our own command."""
        while True:
            msg = self.wire.next(deadline)
            if isinstance(msg, str) and _is_echo(msg):
                continue
            if isinstance(msg, Garbled):
                log.debug("dongle sent garbled output: %s", msg.reason)
                continue
            ended = isinstance(msg, Event) and (
                msg.code == EVENT_SESSION_EXPIRED or msg.code in EVENT_SESSION_ENDED
            )
            if ended and self.joined:
                self.joined = False
                raise SessionExpired(f"PANA session ended (EVENT {msg.code:02X})")
            return msg

    def _send(self, line: str, *, shown: str | None = None) -> None:
        """Write a command line; `shown` replaces it in the debug log when it carries a secret."""
        log.debug("dongle <- %s", shown if shown is not None else line)
        self.wire.write(line.encode("ascii") + b"\r\n")

    def _expect_ok(self, command: str, deadline: float) -> list[str]:
        """Lines up to OK; FAIL raises. Unrelated events and datagrams are skipped."""
        lines: list[str] = []
        while True:
            msg = self._next(deadline)
            if isinstance(msg, str):
                if msg == "OK" or msg.startswith("OK "):
                    return lines
                if msg.startswith("FAIL"):
                    raise SkCommandFailed(command, msg[5:].strip() or "?")
                lines.append(msg)

    def command(self, line: str, *, name: str | None = None, shown: str | None = None) -> list[str]:
        self._send(line, shown=shown)
        return self._expect_ok(name or line.split(" ", 1)[0], self._deadline())

    # -- steps ------------------------------------------------------------------------------

    def hello(self) -> str:
        """SKVER: proves the dongle answers and names its firmware (EVER x.y.z)."""
        for line in self.command("SKVER"):
            if line.startswith("EVER "):
                self.version = line[5:].strip()
                return self.version
        raise SkProtocolError("SKVER answered OK without an EVER line")

    def set_credentials(self, rbid: str, password: str) -> None:
        self.command(
            f"SKSETPWD {len(password):X} {password}",
            name="SKSETPWD",
            shown="SKSETPWD <password withheld>",
        )
        self.command(f"SKSETRBID {rbid}", name="SKSETRBID", shown="SKSETRBID <id withheld>")

    def scan(self, duration: int) -> PanDescriptor | None:
        """One active scan (mode 2, all channels); the first PAN that answered, or None."""
        if self.dual is None:
            try:
                self.command(f"SKSCAN 2 FFFFFFFF {duration}")
                self.dual = False
            except SkCommandFailed as exc:
                if exc.code not in ("ER04", "ER05", "ER06"):
                    raise
                self.command(f"SKSCAN 2 FFFFFFFF {duration} 0")
                self.dual = True
                log.debug("dongle speaks the dual-stack dialect")
        else:
            self.command(f"SKSCAN 2 FFFFFFFF {duration}{' 0' if self.dual else ''}")
        deadline = self._deadline(scan_seconds(duration) + self.command_timeout)
        found: list[PanDescriptor] = []
        fields: dict[str, str] | None = None
        while True:
            msg = self._next(deadline)
            if fields is not None and isinstance(msg, str) and msg.startswith(" "):
                key, _, value = msg.strip().partition(":")
                fields[key.strip()] = value.strip()
                continue
            if fields:
                pan = _pan_from(fields)
                if pan is not None:
                    found.append(pan)
            fields = {} if isinstance(msg, str) and msg.strip() == "EPANDESC" else None
            if isinstance(msg, Event) and msg.code == EVENT_SCAN_DONE:
                break
        return max(found, key=lambda p: p.lqi) if found else None

    def join(self, pan: PanDescriptor) -> str:
        """Channel, PAN id, link-local address, then PANA authentication."""
        self.joined = False
        self.command(f"SKSREG S2 {pan.channel:02X}")
        self.command(f"SKSREG S3 {pan.pan_id:04X}")
        self.meter_ip = self.link_local(pan.addr)
        self.authenticate()
        return self.meter_ip

    def authenticate(self) -> None:
        """SKJOIN: EVENT 25 is success, 24 failure. Also the re-auth after EVENT 29."""
        if self.meter_ip is None:
            raise JoinFailed("no meter address to authenticate with")
        self.joined = False
        self.command(f"SKJOIN {self.meter_ip}")
        deadline = self._deadline(self.join_timeout)
        while True:
            msg = self._next(deadline)
            if isinstance(msg, Event) and msg.code == EVENT_PANA_OK:
                self.joined = True
                return
            if isinstance(msg, Event) and msg.code == EVENT_PANA_FAILED:
                raise JoinFailed("PANA authentication failed (EVENT 24)")

    def link_local(self, mac: str) -> str:
        self._send(f"SKLL64 {mac}")
        deadline = self._deadline()
        while True:
            msg = self._next(deadline)
            if isinstance(msg, str) and _IPV6.match(msg.strip()):
                return msg.strip().upper()
            if isinstance(msg, str) and msg.startswith("FAIL"):
                raise SkCommandFailed("SKLL64", msg[5:].strip() or "?")

    def send(self, payload: bytes) -> None:
        """SKSENDTO the payload to the meter as raw bytes, LEN-framed, no trailing CRLF."""
        if self.meter_ip is None or not self.joined:
            raise SessionExpired("not joined")
        side = " 0" if self.dual else ""
        head = f"SKSENDTO 1 {self.meter_ip} {ECHONET_PORT:04X} 1{side} {len(payload):04X} "
        log.debug("dongle <- %s<%d bytes>", head, len(payload))
        self.wire.write(head.encode("ascii") + payload)
        deadline = self._deadline()
        sent = False
        ok = False
        while not (sent and ok):
            msg = self._next(deadline)
            if isinstance(msg, str):
                if msg.startswith("FAIL"):
                    raise SkCommandFailed("SKSENDTO", msg[5:].strip() or "?")
                if msg == "OK":
                    ok = True
            elif isinstance(msg, Event) and msg.code == EVENT_UDP_SENT:
                if msg.param == "01":
                    raise SkCommandFailed("SKSENDTO", "EVENT 21 01 (transmission failed)")
                if msg.param != "02":
                    sent = True

    def receive(self, accept: Callable[[bytes], object | None], timeout: float) -> object:
        """Datagrams from the meter on port 3610 until `accept` returns non-None."""
        deadline = self._deadline(timeout)
        while True:
            msg = self._next(deadline)
            if not isinstance(msg, Datagram) or msg.rport != ECHONET_PORT:
                continue
            if self.meter_ip is not None and msg.sender != self.meter_ip:
                continue
            result = accept(msg.data)
            if result is not None:
                return result
            self.stale_replies += 1


def _pan_from(fields: dict[str, str]) -> PanDescriptor | None:
    try:
        return PanDescriptor(
            channel=int(fields["Channel"], 16),
            channel_page=int(fields.get("Channel Page", "09"), 16),
            pan_id=int(fields["Pan ID"], 16),
            addr=fields["Addr"].upper(),
            lqi=int(fields.get("LQI", "0"), 16),
            pair_id=fields.get("PairID"),
            side=int(fields["Side"], 16) if "Side" in fields else None,
        )
    except (KeyError, ValueError):
        return None
