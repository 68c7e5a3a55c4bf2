"""A simulated Luxtronik 2.x heat pump: a deterministic model and a TCP server on port 8889's
protocol.

The model is an air-to-water heat pump heating a house and its hot-water tank. Per hour of the
site's outdoor-temperature curve it decides a compressor duty (colder → longer runs) and runs
three 20-minute on/off cycles; two local hours a day (05:00 and 17:00) heat hot water instead.
Because the duty is constant within an hour, every counter is an exact integer prefix sum over
whole hours plus the part of the current hour, so compressor hours, starts and heat-meter
energy only grow and are the same for an instant whatever process asks. Temperatures relax
towards their running or idle values within each cycle, so flow and return move, cross and
follow the weather.

The server speaks the real protocol (each reply in one write, several commands per
connection) and refuses the write command 3002 by closing the connection: a simulator must
not look like a write target any more than the driver may be one. `LuxtronikServer.fault`
makes it misbehave for tests (truncated or garbage replies, a wrong echo, a huge count,
byte-by-byte replies, or no reply at all).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

import numpy as np

from energy_pipeline.config import Config, Device, LuxtronikDevice
from energy_pipeline.drivers.luxtronik import protocol
from energy_pipeline.drivers.luxtronik.decode import decode, decode_values, layout
from energy_pipeline.profiles.luxtronik_names import Vector, defined_count
from energy_pipeline.simulators import SimulatorError
from energy_pipeline.simulators.site import (
    EPOCH,
    SiteWeather,
    stable_seed,
    standard_offset_s,
    temperature_curve,
)

log = logging.getLogger(__name__)

EXTRA_ITEMS = 10
"""Like python-luxtronik's fake controller, answer 10 items beyond what the library defines,
so the driver's names for unknown indexes are exercised."""

CYCLE_S = 1200
CYCLES_PER_HOUR = 3600 // CYCLE_S
MAX_DUTY = 0.9
DHW_LOCAL_HOURS = (5, 17)
DHW_TARGET_C = 50.0
_CHUNK_HOURS = 24 * 90
_EPOCH_S = EPOCH.timestamp()
_WRITE_PARAMETER = 3002

# Calculation indexes (python-luxtronik 0.3.14), the ones the model moves.
C_TVL, C_TRL, C_TRL_SOLL, C_TRL_EXT, C_THG, C_TA, C_TA_MEAN = 10, 11, 12, 13, 14, 15, 16
C_TBW, C_TBW_SOLL, C_TWE, C_TWA, C_TFB1, C_RFV = 17, 18, 19, 20, 21, 23
C_ASD, C_EVU, C_BUP, C_HUP, C_VD1 = 29, 31, 38, 39, 44
C_VD1_S, C_VD1_IMP, C_WP_S, C_HZ_S, C_BW_S, C_RUN_S = 56, 57, 63, 64, 65, 67
C_CODE, C_BIV, C_MODE, C_VERSION, C_IP = 78, 79, 80, 81, 91
C_ERR_TIME, C_ERR_CODE, C_ERR_COUNT, C_NOW = 95, 100, 105, 134
C_WMZ_HZ, C_WMZ_BW, C_WMZ_SW, C_WMZ_ALL, C_WMZ_FLOW = 151, 152, 153, 154, 155
C_HD, C_ND, C_FREQ, C_HEAT_W = 180, 181, 231, 257
P_WK, P_BWS, P_BA_HZ, P_BA_BW, P_SOLL_BWS, P_BA_KUEHL = 1, 2, 3, 4, 105, 108

FIRMWARE = "V3.88.0"
MODE_HEATING, MODE_HOT_WATER, MODE_NO_REQUEST = 0, 1, 5


@dataclass(frozen=True, slots=True)
class HourPlan:
    """Per hour since EPOCH: compressor on-time per cycle, whether it heats hot water, and the
    thermal output while running (W)."""

    on_per_cycle: np.ndarray
    hot_water: np.ndarray
    heat_w: np.ndarray


class HeatPumpModel:
    """Raw controller vectors (and their decoded values) at any instant."""

    def __init__(self, weather: SiteWeather, device_seed: int, host: str) -> None:
        self._curve = temperature_curve(weather.seed, weather.tz)
        self._offset_s = int(standard_offset_s(weather.tz))
        rng = np.random.default_rng([device_seed, 3])
        lengths = {v: defined_count(v) + EXTRA_ITEMS for v in Vector}
        self._parameters = rng.integers(0, 100, lengths[Vector.PARAMETERS]).astype(np.int32)
        self._parameters[[P_WK, P_BA_HZ, P_BA_BW, P_BA_KUEHL]] = 0
        self._parameters[[P_BWS, P_SOLL_BWS]] = int(DHW_TARGET_C * 10)
        self._visibilities = rng.integers(0, 2, lengths[Vector.VISIBILITIES]).astype(np.int8)
        calcs = np.zeros(lengths[Vector.CALCULATIONS], dtype=np.int32)
        calcs[C_VERSION : C_VERSION + len(FIRMWARE)] = [ord(ch) for ch in FIRMWARE]
        calcs[C_IP : C_IP + 4] = [_ip(a) for a in _addresses(host)]
        error_days = np.sort(rng.integers(30, 700, 2))[::-1]
        calcs[C_ERR_TIME : C_ERR_TIME + 2] = int(_EPOCH_S) + 2 * 365 * 86400 - error_days * 86400
        calcs[C_ERR_CODE : C_ERR_CODE + 2] = (715, 716)
        calcs[C_ERR_COUNT] = 2
        calcs[C_CODE], calcs[C_BIV], calcs[C_EVU] = 7, 1, 1
        calcs[C_TRL_EXT], calcs[C_TFB1] = 50, 50
        self._calculations = calcs
        self._sums = np.zeros((0, 6), dtype=np.int64)
        self._total = np.zeros(6, dtype=np.int64)
        self._plan = HourPlan(np.zeros(0, np.int64), np.zeros(0, bool), np.zeros(0, np.int64))

    def _hour_plan(self, hours: np.ndarray) -> HourPlan:
        outdoor = np.asarray(self._curve.value(hours * 3600.0 + 1800.0))
        local_hour = ((hours * 3600 + self._offset_s) // 3600) % 24
        hot_water = np.isin(local_hour, DHW_LOCAL_HOURS)
        heating_duty = np.clip((16.0 - outdoor) / 24.0, 0.0, MAX_DUTY)
        heating_duty[heating_duty < 0.08] = 0.0
        duty = np.where(hot_water, 0.75, heating_duty)
        heat_w = np.where(hot_water, 7000.0, 3500.0 + 6000.0 * heating_duty)
        return HourPlan(
            np.rint(duty * CYCLE_S).astype(np.int64),
            hot_water,
            (np.rint(heat_w / 10.0) * 10).astype(np.int64),
        )

    def _extend(self, hour: int) -> None:
        """Per-hour plans and integer prefix sums from EPOCH up to `hour`, grown in fixed
        chunks so every process computes identical integers for an hour, whatever it asks
        first."""
        while len(self._sums) <= hour:
            self._extend_chunk()

    def _extend_chunk(self) -> None:
        have = len(self._sums)
        new = np.arange(have, have + _CHUNK_HOURS, dtype=np.int64)
        plan = self._hour_plan(new)
        on_s = plan.on_per_cycle * CYCLES_PER_HOUR
        per_hour = np.stack(
            [
                on_s,
                np.where(plan.on_per_cycle > 0, CYCLES_PER_HOUR, 0),
                np.where(plan.hot_water, 0, on_s),
                np.where(plan.hot_water, on_s, 0),
                np.where(plan.hot_water, 0, on_s * plan.heat_w),
                np.where(plan.hot_water, on_s * plan.heat_w, 0),
            ],
            axis=1,
        )
        inclusive = self._total + np.cumsum(per_hour, axis=0)
        self._total = inclusive[-1]
        self._sums = np.concatenate((self._sums, inclusive - per_hour))
        self._plan = HourPlan(
            np.concatenate((self._plan.on_per_cycle, plan.on_per_cycle)),
            np.concatenate((self._plan.hot_water, plan.hot_water)),
            np.concatenate((self._plan.heat_w, plan.heat_w)),
        )

    def calculations(self, t: np.ndarray) -> np.ndarray:
        """The calculations vector at instants t (s since EPOCH, clamped at 0): instants x items."""
        t = np.maximum(t, 0.0)
        hour = (t // 3600).astype(np.int64)
        self._extend(int(hour.max(initial=0)))
        into_hour = (t - hour * 3600).astype(np.int64)
        cycles_done, in_cycle = np.divmod(into_hour, CYCLE_S)
        on_dur = self._plan.on_per_cycle[hour]
        hot_water = self._plan.hot_water[hour]
        heat_w = self._plan.heat_w[hour]
        running = in_cycle < on_dur
        on_so_far = cycles_done * on_dur + np.minimum(in_cycle, on_dur)
        starts_so_far = np.where(on_dur > 0, cycles_done + 1, 0)
        on_s, starts, hz_s, bw_s, hz_ws, bw_ws = self._sums[hour].T
        hz_s_now = hz_s + np.where(hot_water, 0, on_so_far)
        bw_s_now = bw_s + np.where(hot_water, on_so_far, 0)
        hz_ws_now = hz_ws + np.where(hot_water, 0, on_so_far * heat_w)
        bw_ws_now = bw_ws + np.where(hot_water, on_so_far * heat_w, 0)

        outdoor = np.asarray(self._curve.value(t))
        mean = (
            np.asarray(self._curve.integral(t)) - np.asarray(self._curve.integral(t - 86400.0))
        ) / 86400.0
        return_target = np.minimum(45.0, np.maximum(20.0, 24.0 + 0.56 * (15.0 - mean)))
        base = np.where(hot_water, DHW_TARGET_C - 8.0, return_target - 1.0)
        ramp = 1.0 - np.exp(-in_cycle / 300.0)
        idle = np.where(on_dur > 0, in_cycle - on_dur, CYCLE_S)
        cool = 1.0 - np.exp(-np.maximum(idle, 0) / 900.0)
        ret = np.where(running, base + 2.0 * ramp, base + 2.0 - 4.0 * cool)
        flow = np.where(running, ret + 5.0 * (1.0 - np.exp(-in_cycle / 120.0)), ret + 0.5)
        hot_gas = np.where(
            running,
            55.0 + 25.0 * ramp + np.where(hot_water, 10.0, 0.0),
            outdoor + 15.0 + 60.0 * np.exp(-np.maximum(idle, 0) / 600.0),
        )
        source_out = outdoor - np.where(running, 3.5, 0.2)
        local_hour = ((t.astype(np.int64) + self._offset_s) // 3600) % 24
        since_dhw = np.min([(local_hour - h) % 12 for h in DHW_LOCAL_HOURS], axis=0)
        tank = np.where(
            hot_water,
            44.0 + (DHW_TARGET_C - 44.0) * into_hour / 3600.0,
            np.maximum(43.0, DHW_TARGET_C - 0.5 * (since_dhw - 1 + into_hour / 3600.0)),
        )
        mode = np.where(hot_water, MODE_HOT_WATER, MODE_HEATING)

        c = np.repeat(self._calculations[None, :], t.size, axis=0)
        tenths = {
            C_TVL: flow,
            C_TRL: ret,
            C_TRL_SOLL: return_target,
            C_THG: hot_gas,
            C_TA: outdoor,
            C_TA_MEAN: mean,
            C_TBW: tank,
            C_TBW_SOLL: np.full(t.shape, DHW_TARGET_C),
            C_TWE: outdoor,
            C_TWA: source_out,
            C_RFV: 21.0 + 0.5 * np.sin(t / 7200.0),
        }
        for index, value in tenths.items():
            c[:, index] = np.rint(value * 10.0)
        c[:, C_ASD] = 1
        c[:, C_VD1] = running
        c[:, C_HUP] = (on_dur > 0) & ~hot_water
        c[:, C_BUP] = hot_water
        c[:, C_VD1_S] = c[:, C_WP_S] = on_s + on_so_far
        c[:, C_VD1_IMP] = starts + starts_so_far
        c[:, C_HZ_S] = hz_s_now
        c[:, C_BW_S] = bw_s_now
        c[:, C_RUN_S] = np.where(running, in_cycle, 0)
        c[:, C_MODE] = np.where(on_dur > 0, mode, MODE_NO_REQUEST)
        c[:, C_NOW] = (_EPOCH_S + t).astype(np.int64) + self._offset_s
        c[:, C_WMZ_HZ] = hz_ws_now // 360_000
        c[:, C_WMZ_BW] = bw_ws_now // 360_000
        c[:, C_WMZ_SW] = 0
        c[:, C_WMZ_ALL] = (hz_ws_now + bw_ws_now) // 360_000
        c[:, C_WMZ_FLOW] = np.where(running, 1100, 0)
        c[:, C_HD] = np.where(running, np.rint((18.0 + 0.3 * (flow - 30.0)) * 100), 1100)
        c[:, C_ND] = np.where(running, np.rint((5.5 + 0.1 * outdoor) * 100), 1000)
        c[:, C_FREQ] = np.where(running, np.rint(30 + 60 * on_dur / CYCLE_S), 0)
        c[:, C_HEAT_W] = np.where(running, heat_w, 0)
        return c

    def raw_at(self, ts: datetime) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Parameters, calculations and visibilities as the controller would send them."""
        c = self.calculations(np.array([ts.timestamp() - _EPOCH_S]))[0]
        return self._parameters, c, self._visibilities

    def values_at(self, ts: datetime) -> dict[str, float]:
        """Engineering values as the driver decodes them (text attributes are not values; the
        model never produces invalid ones, so every name is present at every instant)."""
        sample = decode(*self.raw_at(ts))
        return dict(zip(sample.names, sample.values.tolist(), strict=True))

    def values_between(self, epoch_s: np.ndarray) -> tuple[tuple[str, ...], np.ndarray]:
        """(names, values instants x names) at Unix instants: `values_at` for a day at once."""
        c = self.calculations(np.asarray(epoch_s, dtype=np.float64) - _EPOCH_S)
        p, v = self._parameters, self._visibilities
        plan = layout(len(p), c.shape[1], len(v))
        raw = np.empty((c.shape[0], len(p) + c.shape[1] + len(v)), dtype=np.int64)
        raw[:, : len(p)] = p
        raw[:, len(p) : len(p) + c.shape[1]] = c
        raw[:, len(p) + c.shape[1] :] = v
        return plan.names, decode_values(raw, plan)


def _addresses(host: str) -> tuple[str, str, str, str]:
    try:
        address = ipaddress.IPv4Address(host)
    except ValueError:
        address = ipaddress.IPv4Address("192.168.20.180")
    if address.is_loopback:
        address = ipaddress.IPv4Address("192.168.20.180")
    net = ipaddress.IPv4Network(f"{address}/24", strict=False)
    return str(address), str(net.netmask), str(net.broadcast_address), str(net[1])


def _ip(text: str) -> int:
    value = int(ipaddress.IPv4Address(text))
    return value - 2**32 if value >= 2**31 else value


def device_model(device: Device, config: Config) -> HeatPumpModel:
    if not isinstance(device, LuxtronikDevice):
        raise TypeError(f"{device.id}: not a luxtronik device")
    weather = SiteWeather.of(config)
    return HeatPumpModel(weather, stable_seed(config.site.name, device.id), device.connection.host)


FaultKind = Literal[
    "none", "truncate", "garbage", "wrong_echo", "huge_count", "trickle", "hang", "close"
]


@dataclass(slots=True)
class Fault:
    """How the server misbehaves; `command` limits it to one command (None: every one)."""

    kind: FaultKind = "none"
    command: int | None = None


def _utc_now() -> datetime:
    return datetime.now(UTC)


class LuxtronikServer:
    """One simulated controller on a TCP port."""

    def __init__(
        self,
        model: HeatPumpModel,
        host: str,
        port: int,
        *,
        clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        self.model = model
        self.host = host
        self.port = port
        self.fault = Fault()
        self._clock = clock
        self._server: asyncio.Server | None = None
        self._connections: dict[asyncio.StreamWriter, asyncio.Task[None]] = {}

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is None:
            return
        self._server.close()
        handlers = list(self._connections.values())
        for writer in list(self._connections):
            writer.close()
        await asyncio.gather(*handlers, return_exceptions=True)
        await self._server.wait_closed()
        self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections[writer] = task
        snapshot: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        try:
            while True:
                command, _ = struct.unpack(">ii", await reader.readexactly(8))
                if command == _WRITE_PARAMETER:
                    log.warning("luxtronik simulator: refusing write command 3002")
                    return
                if command not in protocol.READ_COMMANDS:
                    log.warning("luxtronik simulator: unknown command %d", command)
                    return
                if snapshot is None:
                    snapshot = self.model.raw_at(self._clock())
                reply = protocol.encode_response(
                    command, snapshot[protocol.READ_COMMANDS.index(command)]
                )
                fault = self.fault
                if fault.kind != "none" and fault.command in (None, command):
                    if not await self._misbehave(fault.kind, command, reply, reader, writer):
                        return
                    continue
                writer.write(reply)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            return
        finally:
            self._connections.pop(writer, None)
            writer.close()

    async def _misbehave(
        self,
        kind: FaultKind,
        command: int,
        reply: bytes,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> bool:
        """Send a faulty reply; False ends the connection."""
        if kind == "hang":
            await reader.read()
            return False
        if kind == "close":
            return False
        if kind == "truncate":
            writer.write(reply[: len(reply) // 2])
            await writer.drain()
            return False
        if kind == "garbage":
            writer.write(bytes((i * 37 + 11) % 256 for i in range(len(reply))))
        elif kind == "wrong_echo":
            writer.write(struct.pack(">i", command + 1) + reply[4:])
        elif kind == "huge_count":
            writer.write(reply[: protocol.header_size(command) - 4] + struct.pack(">i", 2**31 - 1))
        elif kind == "trickle":
            for i in range(len(reply)):
                writer.write(reply[i : i + 1])
                await writer.drain()
                if i % 512 == 0:
                    await asyncio.sleep(0.001)
        await writer.drain()
        return True


async def start(
    devices: Sequence[Device], config: Config, stack: contextlib.AsyncExitStack
) -> list[str]:
    lines: list[str] = []
    for dev in devices:
        if not isinstance(dev, LuxtronikDevice):
            raise TypeError(f"{dev.id}: not a luxtronik device")
        conn = dev.connection
        server = LuxtronikServer(device_model(dev, config), conn.host, conn.port)
        try:
            await server.start()
        except OSError as exc:
            raise SimulatorError(
                f"{dev.id}: cannot listen on {conn.host}:{conn.port} ({exc.strerror or exc}); "
                "expected a free local port"
            ) from None
        stack.push_async_callback(server.stop)
        lines.append(f"{dev.id}: luxtronik tcp {server.host}:{server.port}")
    return lines
