"""The management-protocol parser: real transcripts (recorded from openvpn 2.6), every way a
socket may cut them, notifications inside replies, and garbage that must never raise."""

from __future__ import annotations

import random

import pytest

from energy_pipeline.ops.vpn import management as m

# What openvpn 2.6.14 sent to `state on`, `hold off`, `bytecount 5`, `state`, `hold release`,
# `status`, `bogus` and `signal SIGTERM` after the management password.
TRANSCRIPT = (
    b"ENTER PASSWORD:"
    b"SUCCESS: password is correct\r\n"
    b">INFO:OpenVPN Management Interface Version 5 -- type 'help' for more info\r\n"
    b">HOLD:Waiting for hold release:0\r\n"
    b"SUCCESS: real-time state notification set to ON\r\n"
    b"SUCCESS: hold flag set to OFF\r\n"
    b"SUCCESS: bytecount interval changed\r\n"
    b"END\r\n"
    b"SUCCESS: hold release succeeded\r\n"
    b">STATE:1796179137,WAIT,,,,,,\r\n"
    b">STATE:1796179137,AUTH,,,,,,\r\n"
    b">STATE:1796179137,ASSIGN_IP,,10.231.1.2,,,,\r\n"
    b">STATE:1796179137,CONNECTED,SUCCESS,10.231.1.2,10.231.0.2,1194,,\r\n"
    b"OpenVPN STATISTICS\r\n"
    b"Updated,2026-12-02 02:39:00\r\n"
    b">BYTECOUNT:372,540\r\n"
    b"TUN/TAP read bytes,0\r\n"
    b"TCP/UDP read bytes,4187\r\n"
    b"TCP/UDP write bytes,3912\r\n"
    b"END\r\n"
    b"ERROR: unknown command, enter 'help' for more options\r\n"
    b"SUCCESS: signal SIGTERM thrown\r\n"
    b">STATE:1796179140,EXITING,SIGTERM,,,,,\r\n"
)
SENT = ["password", "state on", "hold off", "bytecount 5", "state", "hold release", "status"]
SENT += ["bogus", "signal SIGTERM"]

EXPECTED: list[m.Event] = [
    m.PasswordPrompt(),
    m.Reply(True, "password is correct"),
    m.Notification("INFO", "OpenVPN Management Interface Version 5 -- type 'help' for more info"),
    m.Notification("HOLD", "Waiting for hold release:0"),
    m.Reply(True, "real-time state notification set to ON"),
    m.Reply(True, "hold flag set to OFF"),
    m.Reply(True, "bytecount interval changed"),
    m.Block(()),
    m.Reply(True, "hold release succeeded"),
    m.Notification("STATE", "1796179137,WAIT,,,,,,"),
    m.Notification("STATE", "1796179137,AUTH,,,,,,"),
    m.Notification("STATE", "1796179137,ASSIGN_IP,,10.231.1.2,,,,"),
    m.Notification("STATE", "1796179137,CONNECTED,SUCCESS,10.231.1.2,10.231.0.2,1194,,"),
    m.Notification("BYTECOUNT", "372,540"),
    m.Block(
        (
            "OpenVPN STATISTICS",
            "Updated,2026-12-02 02:39:00",
            "TUN/TAP read bytes,0",
            "TCP/UDP read bytes,4187",
            "TCP/UDP write bytes,3912",
        )
    ),
    m.Reply(False, "unknown command, enter 'help' for more options"),
    m.Reply(True, "signal SIGTERM thrown"),
    m.Notification("STATE", "1796179140,EXITING,SIGTERM,,,,,"),
]


def _parse(chunks: list[bytes], sent: list[str] = SENT) -> list[m.Event]:
    parser = m.ManagementParser()
    for command in sent:
        parser.sent(command)
    events: list[m.Event] = []
    for chunk in chunks:
        events += parser.feed(chunk)
    assert parser.awaiting == 0
    return events


def test_a_whole_transcript_in_one_read() -> None:
    assert _parse([TRANSCRIPT]) == EXPECTED


def test_every_single_cut_gives_the_same_events() -> None:
    for cut in range(1, len(TRANSCRIPT)):
        assert _parse([TRANSCRIPT[:cut], TRANSCRIPT[cut:]]) == EXPECTED, cut


def test_byte_by_byte_and_random_chunks() -> None:
    assert _parse([TRANSCRIPT[i : i + 1] for i in range(len(TRANSCRIPT))]) == EXPECTED
    rng = random.Random(7)
    for _ in range(200):
        cuts = sorted(rng.sample(range(1, len(TRANSCRIPT)), rng.randint(1, 30)))
        pieces = [
            TRANSCRIPT[a:b] for a, b in zip([0, *cuts], [*cuts, len(TRANSCRIPT)], strict=True)
        ]
        assert _parse(pieces) == EXPECTED


def test_plain_newlines_work_like_crlf() -> None:
    assert _parse([TRANSCRIPT.replace(b"\r\n", b"\n")]) == EXPECTED


@pytest.mark.parametrize(
    "line",
    [
        b"hello there",
        b">",
        b">:no kind",
        b"> STATE:space before kind",
        b"\xff\xfe\x00binary",
        b"SUCCESS",
        b"",
    ],
)
def test_garbage_lines_are_reported_not_raised(line: bytes) -> None:
    parser = m.ManagementParser()
    events = parser.feed(line + b"\n" + b">STATE:1,CONNECTED,SUCCESS,10.0.0.2,10.0.0.1,1194,,\n")
    assert events[-1] == m.Notification("STATE", "1,CONNECTED,SUCCESS,10.0.0.2,10.0.0.1,1194,,")
    assert all(isinstance(e, m.Garbage) for e in events[:-1])
    assert len(events) == 2


def test_a_line_without_end_is_dropped_once_too_long() -> None:
    parser = m.ManagementParser()
    events = parser.feed(b"x" * (m.MAX_LINE + 1))
    assert len(events) == 1 and isinstance(events[0], m.Garbage)
    assert parser.feed(b"\n>HOLD:Waiting for hold release:0\n") == [
        m.Garbage(""),
        m.Notification("HOLD", "Waiting for hold release:0"),
    ]


def test_unsolicited_replies_and_blocks_do_not_derail_the_parser() -> None:
    parser = m.ManagementParser()
    assert parser.feed(b"SUCCESS: nobody asked\nEND\n") == [
        m.Reply(True, "nobody asked"),
        m.Garbage("END"),
    ]
    parser.sent("state")
    assert parser.feed(b"ERROR: state command failed\n") == [m.Reply(False, "state command failed")]
    assert parser.awaiting == 0


def test_a_success_line_where_a_block_is_due_is_garbage_and_the_block_still_comes() -> None:
    parser = m.ManagementParser()
    parser.sent("state")
    events = parser.feed(b"SUCCESS: stray\n1,CONNECTED,SUCCESS,10.0.0.2,,,,\nEND\n")
    assert events == [m.Garbage("SUCCESS: stray"), m.Block(("1,CONNECTED,SUCCESS,10.0.0.2,,,,",))]


def test_a_second_password_prompt_after_a_wrong_password() -> None:
    parser = m.ManagementParser()
    assert parser.feed(b"ENTER PASSWORD:") == [m.PasswordPrompt()]
    parser.sent("password")
    assert parser.feed(b"ERROR: bad password\r\nENTER PASSWORD:") == [
        m.Reply(False, "bad password"),
        m.PasswordPrompt(),
    ]


@pytest.mark.parametrize(
    ("command", "shape"),
    [
        ("state", "block"),
        ("state all", "block"),
        ("state 3", "block"),
        ("state on", "line"),
        ("state off", "line"),
        ("status", "block"),
        ("status 2", "block"),
        ("hold release", "line"),
        ("bytecount 5", "line"),
        ("signal SIGTERM", "line"),
        ("", "line"),
    ],
)
def test_reply_shapes(command: str, shape: str) -> None:
    assert m.reply_shape(command) == shape


def test_state_lines() -> None:
    assert m.parse_state("1796179137,CONNECTED,SUCCESS,10.231.1.2,10.231.0.2,1194,,") == (
        m.StateLine(1796179137, "CONNECTED", "SUCCESS", "10.231.1.2", "10.231.0.2", 1194)
    )
    assert m.parse_state("1796179140,EXITING,SIGTERM,,,,,") == m.StateLine(
        1796179140, "EXITING", "SIGTERM", None, None, None
    )
    assert m.parse_state("5,RECONNECTING") == m.StateLine(5, "RECONNECTING", "", None, None, None)
    assert m.parse_state("5,CONNECTED,SUCCESS,10.0.0.2,10.0.0.1,port?,,").remote_port is None
    for bad in ("", "CONNECTED", "x,CONNECTED", "5,connected", "5,", "5,1BAD", ",,,"):
        assert m.parse_state(bad) is None, bad


def test_bytecount_and_status_bytes() -> None:
    assert m.parse_bytecount("372,540") == (372, 540)
    for bad in ("", "1", "1,2,3", "a,b", "-1,2", "1, 2"):
        assert m.parse_bytecount(bad) is None, bad
    block = EXPECTED[14]
    assert isinstance(block, m.Block)
    assert m.parse_status_bytes(block.lines) == (4187, 3912)
    assert m.parse_status_bytes(("TCP/UDP read bytes,1",)) is None
    assert m.parse_status_bytes(("TCP/UDP read bytes,x", "TCP/UDP write bytes,2")) is None


def test_commands_cannot_smuggle_a_second_line() -> None:
    assert m.STATE_ON == b"state on\n"
    assert m.HOLD_RELEASE == b"hold release\n"
    assert m.bytecount(5) == b"bytecount 5\n"
    assert m.signal("SIGTERM") == b"signal SIGTERM\n"
    for words in (("state\nsignal",), ("hold", "release\r"), ("",), ("a b",)):
        with pytest.raises(ValueError):
            m.command(*words)
    with pytest.raises(ValueError):
        m.signal("SIGKILL")
    with pytest.raises(ValueError):
        m.bytecount(-1)
