"""OpenVPN's management protocol as pure data: bytes in, events out; commands as bytes.

The interface mixes two streams on one TCP connection: real-time notifications (lines that
start with `>`, e.g. `>STATE:`, `>BYTECOUNT:`, `>HOLD:`), which may arrive at any moment, and
the replies to commands in the order they were sent — one `SUCCESS: ...`/`ERROR: ...` line,
or, for commands like `state` and `status`, a block of lines closed by `END`. Which reply
shape is due is known only from the command, so the parser is told what was sent. A line that
fits neither stream is reported as garbage, never raised: a confused peer must not crash the
collector.
"""

from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass
from typing import Literal

MAX_LINE = 65536
PASSWORD_PROMPT = "ENTER PASSWORD:"
SIGNALS = ("SIGTERM", "SIGHUP", "SIGUSR1", "SIGUSR2")
CONNECTED = "CONNECTED"
_PROMPT = PASSWORD_PROMPT.encode()

ReplyShape = Literal["line", "block"]


@dataclass(frozen=True, slots=True)
class Notification:
    """`>KIND:text`: `kind` is e.g. STATE, BYTECOUNT, HOLD, INFO, LOG, FATAL, PASSWORD."""

    kind: str
    text: str


@dataclass(frozen=True, slots=True)
class Reply:
    """The one-line answer to a command: `SUCCESS: text` (ok) or `ERROR: text`."""

    ok: bool
    text: str


@dataclass(frozen=True, slots=True)
class Block:
    """A multi-line answer (`state`, `status`), without its closing END."""

    lines: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class PasswordPrompt:
    """The management password is asked for (`--management ... pw-file`), before anything else."""


@dataclass(frozen=True, slots=True)
class Garbage:
    line: str


Event = Notification | Reply | Block | PasswordPrompt | Garbage


def reply_shape(command: str) -> ReplyShape:
    """`state`, `state all`, `state 3` and `status` answer with a block; everything this product
    sends otherwise (`state on`, `hold release`, `bytecount 5`, `signal SIGTERM`) with a line."""
    words = command.split()
    if not words:
        return "line"
    if words[0] == "status":
        return "block"
    if words[0] == "state":
        return "block" if len(words) == 1 or words[1] == "all" or words[1].isdigit() else "line"
    return "line"


class ManagementParser:
    """Feed it what the socket gives (any chunking, any bytes); it returns complete events.

    Call `sent(command)` for every command written, so a block's unprefixed lines are told
    apart from garbage. A notification in the middle of a block stays a notification.
    """

    def __init__(self) -> None:
        self._buf = bytearray()
        self._due: deque[ReplyShape] = deque()
        self._block: list[str] | None = None

    def sent(self, command: str) -> None:
        """`command` as written (the management password counts as a one-line command)."""
        self._due.append(reply_shape(command))

    @property
    def awaiting(self) -> int:
        return len(self._due)

    def feed(self, data: bytes) -> list[Event]:
        self._buf += data
        events: list[Event] = []
        while True:
            if self._buf.startswith(_PROMPT):  # the prompt has no line end
                del self._buf[: len(_PROMPT)]
                events.append(PasswordPrompt())
                continue
            end = self._buf.find(b"\n")
            if end < 0:
                break
            raw = bytes(self._buf[:end])
            del self._buf[: end + 1]
            events.extend(self._line(raw.decode("utf-8", "replace").rstrip("\r")))
        if len(self._buf) > MAX_LINE:
            events.append(Garbage(f"<{len(self._buf)} bytes without a line end dropped>"))
            self._buf.clear()
        return events

    def _line(self, line: str) -> list[Event]:
        if line.startswith(">"):
            kind, sep, text = line[1:].partition(":")
            if sep and kind and kind.replace("-", "").replace("_", "").isalnum():
                return [Notification(kind, text)]
            return [Garbage(line)]
        if self._block is not None:
            if line == "END":
                block, self._block = Block(tuple(self._block)), None
                return [block]
            self._block.append(line)
            return []
        for prefix, ok in (("SUCCESS:", True), ("ERROR:", False)):
            if line.startswith(prefix):
                if self._due and self._due[0] == "block" and ok:
                    return [Garbage(line)]
                if self._due:
                    self._due.popleft()
                return [Reply(ok, line[len(prefix) :].strip())]
        if self._due and self._due[0] == "block":
            self._due.popleft()
            if line == "END":
                return [Block(())]
            self._block = [line]
            return []
        return [Garbage(line)]


@dataclass(frozen=True, slots=True)
class StateLine:
    """One `>STATE:` notification or one line of a `state` block."""

    time: int
    name: str
    description: str
    local_ip: str | None
    remote_ip: str | None
    remote_port: int | None


_STATE_NAME = re.compile(r"^[A-Z][A-Z_]*$")


def parse_state(text: str) -> StateLine | None:
    """`1700000000,CONNECTED,SUCCESS,10.8.0.2,203.0.113.5,1194,,` -> StateLine; None if it is
    not one (fields beyond the remote port — local address, IPv6 — are not used)."""
    fields = text.split(",")
    if len(fields) < 2 or not fields[0].isdigit() or not _STATE_NAME.match(fields[1]):
        return None

    def field(i: int) -> str | None:
        return fields[i] or None if i < len(fields) else None

    port = field(5)
    return StateLine(
        int(fields[0]),
        fields[1],
        field(2) or "",
        field(3),
        field(4),
        int(port) if port and port.isdigit() else None,
    )


def parse_bytecount(text: str) -> tuple[int, int] | None:
    """`>BYTECOUNT:in,out` (a client's form) -> (bytes in, bytes out)."""
    parts = text.split(",")
    if len(parts) != 2 or not all(p.isdigit() for p in parts):
        return None
    return int(parts[0]), int(parts[1])


def parse_status_bytes(lines: tuple[str, ...]) -> tuple[int, int] | None:
    """Bytes in and out of the link from a `status` block (`TCP/UDP read bytes,N` ...)."""
    found: dict[str, int] = {}
    for line in lines:
        key, _, value = line.partition(",")
        if key in ("TCP/UDP read bytes", "TCP/UDP write bytes") and value.isdigit():
            found[key] = int(value)
    if len(found) != 2:
        return None
    return found["TCP/UDP read bytes"], found["TCP/UDP write bytes"]


def command(*words: str) -> bytes:
    """One command line; a word with a line break or a space in it would smuggle in another."""
    for word in words:
        if not word or any(c in word for c in " \r\n\t\0"):
            raise ValueError(f"not a management command word: {word!r}")
    return (" ".join(words) + "\n").encode()


def bytecount(seconds: int) -> bytes:
    if seconds < 0:
        raise ValueError("bytecount interval must be >= 0")
    return command("bytecount", str(seconds))


def signal(name: str) -> bytes:
    if name not in SIGNALS:
        raise ValueError(f"unknown signal {name!r}; expected one of {', '.join(SIGNALS)}")
    return command("signal", name)


STATE = command("state")
STATE_ON = command("state", "on")
STATUS = command("status")
HOLD_OFF = command("hold", "off")
HOLD_RELEASE = command("hold", "release")
