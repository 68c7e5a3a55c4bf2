"""Simulated Modbus devices: a model per profile, served by pymodbus over TCP or a pty (RTU).

`device_model` binds a profile's points to a device model (three-phase analyser, heat pump,
MUST UPS or inverter) by point name; points no model knows get a plausible generic value. The
values a model reports are quantised exactly as the registers hold them, so `values_at(ts)` is
what a driver polling at `ts` decodes — `simulate-history` and a live poll agree. Models compute
arrays of instants (`values_between`, a day in one numpy pass); `values_at` is its one-instant case.

`start` serves the devices: one pymodbus server per TCP host:port and one per serial port
(a pty symlinked at the configured `serial_port`), each answering every unit id configured on
it. Registers are refreshed from the model when read, at most once per second. Reads outside the
profile's served ranges (its `allowed` blocks, else the span of its points, never a `forbidden`
range) get exception 2 — the PV1800 really does shut down there. Writes get exception 1: the
simulated devices are as read-only as the drivers are.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

import numpy as np
from pymodbus.constants import ExcCodes
from pymodbus.server import ModbusSerialServer, ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from energy_pipeline.config import Config, ModbusDevice, ModbusRtu, ModbusTcp
from energy_pipeline.drivers.modbus.codec import encode_point
from energy_pipeline.profiles import load_profile
from energy_pipeline.profiles.model import BIT_TYPES, Point, Profile, RegisterType
from energy_pipeline.simulators import SimulatorError, heatpump
from energy_pipeline.simulators.heatpump import HeatPump
from energy_pipeline.simulators.meter3p import ThreePhaseMeter
from energy_pipeline.simulators.must import Ep20Ups, Pv1800
from energy_pipeline.simulators.points import GenericPoint, Quantities, resolve
from energy_pipeline.simulators.quantize import Quantizer
from energy_pipeline.simulators.serial_pty import Pty, PtyBridge, link, unlink
from energy_pipeline.simulators.site import (
    EPOCH,
    SiteWeather,
    load_curve,
    seconds_since_epoch,
    stable_seed,
)

Clock = Callable[[], float]
_READ_TYPE: dict[int, RegisterType] = {1: "coil", 2: "discrete", 3: "holding", 4: "input"}
_TYPE_ORDER: tuple[RegisterType, ...] = ("coil", "discrete", "holding", "input")
_DEFAULT_TEXT = "SIM-1.0"
_TEXTS = {"machine_type_prefix": "PV", "firmware": "V3.91.0"}
_EPOCH_S = EPOCH.timestamp()


class Source(Protocol):
    def quantities(self, t: np.ndarray) -> dict[str, Quantities]: ...


def _source(profile: Profile, weather: SiteWeather, seed: int) -> tuple[Source | None, bool]:
    """The device model for a profile, and whether points bind by heat-pump name rules."""
    names = {p.name for p in profile.points}
    model = profile.model.upper()
    if profile.manufacturer.upper() == "MUST":
        if "EP20" in model or "EP2000" in model:
            return Ep20Ups(weather, seed), False
        return Pv1800(weather, seed), False
    if any(n.startswith(("power_active", "energy_active")) for n in names):
        return ThreePhaseMeter(weather, seed), False
    if heatpump.looks_like_heat_pump(profile.points):
        return HeatPump(weather, seed), True
    return None, False


class ProfileModel:
    """A Modbus device simulated from its profile. Implements simulators.DeviceModel."""

    def __init__(self, device_id: str, profile: Profile, weather: SiteWeather, unit_id: int):
        self.device_id = device_id
        self.profile = profile
        self.unit_id = unit_id
        seed = stable_seed(weather.tz, str(weather.seed), device_id)
        self._source, by_keyword = _source(profile, weather, seed)
        load = load_curve(weather.seed, weather.tz)
        numeric = [p for p in profile.points if p.data_type != "string"]
        self.points = numeric
        self.names = tuple(p.name for p in numeric)
        self._keys = [heatpump.quantity_key(p) if by_keyword else p.name for p in numeric]
        self._generic = [GenericPoint(p, seed, load) for p in numeric]
        self._quantize = Quantizer(numeric)
        self._texts = {
            p.name: encode_point(_TEXTS.get(p.name, _DEFAULT_TEXT)[: 2 * p.width], p)
            for p in profile.points
            if p.data_type == "string"
        }
        self._memo: tuple[float, np.ndarray] | None = None
        self._words_memo: tuple[float, dict[str, list[int]]] | None = None

    def _raw(self, t: np.ndarray) -> np.ndarray:
        """Unrounded values, instants x points: the one definition of the device's physics."""
        quantities = self._source.quantities(t) if self._source is not None else {}
        raw = np.empty((t.size, len(self.names)))
        for i, (point, key) in enumerate(zip(self.points, self._keys, strict=True)):
            quantity = quantities.get(key) if key is not None else None
            raw[:, i] = (
                resolve(quantity, point) if quantity is not None else self._generic[i].value(t)
            )
        return raw

    def _values(self, t: float) -> np.ndarray:
        if self._memo is not None and self._memo[0] == t:
            return self._memo[1]
        values = self._quantize(self._raw(np.array([t])))[0]
        self._memo = (t, values)
        return values

    def unrounded_at(self, ts: datetime) -> np.ndarray:
        """The model's values in `names` order before register rounding (for benchmarks)."""
        return self._raw(np.array([seconds_since_epoch(ts)]))[0]

    def values_at(self, ts: datetime) -> dict[str, float]:
        """Engineering values at `ts` exactly as a driver decodes them (strings excluded)."""
        return dict(zip(self.names, self._values(seconds_since_epoch(ts)).tolist(), strict=True))

    def values_between(self, epoch_s: np.ndarray) -> tuple[tuple[str, ...], np.ndarray]:
        """(names, values of shape instants x names) at Unix instants `epoch_s`, in one go.

        Row i equals `values_at` at `epoch_s[i]`: both run the same array code, `values_at`
        with a single instant.
        """
        t = np.asarray(epoch_s, dtype=np.float64) - _EPOCH_S
        return self.names, self._quantize(self._raw(t))

    def words_at(self, ts: datetime) -> dict[str, list[int]]:
        """Register words (bits for coils/discrete) of every point at `ts`."""
        t = seconds_since_epoch(ts)
        if self._words_memo is not None and self._words_memo[0] == t:
            return self._words_memo[1]
        words = {
            p.name: encode_point(bool(v) if p.data_type == "bool" else float(v), p)
            for p, v in zip(self.points, self._values(t).tolist(), strict=True)
        } | self._texts
        self._words_memo = (t, words)
        return words


def device_model(device: ModbusDevice, config: Config) -> ProfileModel:
    profile = load_profile(device.profile, config.base_dir)
    unit_id = device.connection.unit_id or profile.unit_id
    return ProfileModel(device.id, profile, SiteWeather.of(config), unit_id)


def served_ranges(profile: Profile) -> dict[RegisterType, list[tuple[int, int]]]:
    """Readable (start, end) ranges per register type: `allowed`, else the points' span,
    never a `forbidden` range."""
    ranges: dict[RegisterType, list[tuple[int, int]]] = {t: [] for t in _TYPE_ORDER}
    if profile.allowed:
        for r in profile.allowed:
            ranges[r.register_type].append((r.start, r.end))
    else:
        for rtype in _TYPE_ORDER:
            points = [p for p in profile.points if p.register_type == rtype]
            if points:
                start = min(p.address for p in points)
                ranges[rtype].append((start, max(p.address + p.width - 1 for p in points)))
    for f in profile.forbidden:
        kept: list[tuple[int, int]] = []
        for start, end in ranges[f.register_type]:
            if end < f.start or start > f.end:
                kept.append((start, end))
                continue
            if start < f.start:
                kept.append((start, f.start - 1))
            if end > f.end:
                kept.append((f.end + 1, end))
        ranges[f.register_type] = kept
    return {t: sorted(r) for t, r in ranges.items()}


def _sim_block(rtype: RegisterType, start: int, end: int) -> SimData:
    size = end - start + 1
    if rtype in BIT_TYPES:
        # For bits pymodbus repeats `values` `count` times: give the bits as one list.
        return SimData(address=start, values=[False] * size, datatype=DataType.BITS)
    return SimData(address=start, count=size, values=0, datatype=DataType.REGISTERS)


class _Served:
    """The pymodbus side of one simulated unit: register blocks plus the refresh action."""

    def __init__(self, model: ProfileModel, clock: Clock):
        self.model = model
        self._clock = clock
        self.ranges = served_ranges(model.profile)
        self._points: dict[RegisterType, list[Point]] = {t: [] for t in _TYPE_ORDER}
        for p in model.profile.points:
            self._points[p.register_type].append(p)

    def sim_device(self) -> SimDevice:
        blocks = [
            [_sim_block(rtype, start, end) for start, end in self.ranges[rtype]]
            # pymodbus wants every block non-empty; the action refuses this placeholder.
            or [_sim_block(rtype, 0, 0)]
            for rtype in _TYPE_ORDER
        ]
        coils, discrete, holding, inputs = blocks
        return SimDevice(
            id=self.model.unit_id, simdata=(coils, discrete, holding, inputs), action=self.action
        )

    def _is_served(self, rtype: RegisterType, address: int, count: int) -> bool:
        last = address + count - 1
        return any(start <= address and last <= end for start, end in self.ranges[rtype])

    async def action(
        self,
        function_code: int,
        start_address: int,
        address: int,
        count: int,
        registers: list[int],
        set_values: list[int] | list[bool] | None,
    ) -> ExcCodes | None:
        rtype = _READ_TYPE.get(function_code)
        if set_values is not None or rtype is None:
            return ExcCodes.ILLEGAL_FUNCTION
        # For bit reads pymodbus passes the count in registers, so check the first bit only.
        if not self._is_served(rtype, address, 1 if rtype in BIT_TYPES else count):
            return ExcCodes.ILLEGAL_ADDRESS
        ts = datetime.fromtimestamp(math.floor(self._clock()), UTC)
        words = self.model.words_at(ts)
        for p in self._points[rtype]:
            w = words[p.name]
            if rtype in BIT_TYPES:
                index, bit = divmod(p.address, 16)
                index -= start_address
                registers[index] = (registers[index] & ~(1 << bit)) | (int(bool(w[0])) << bit)
            else:
                offset = p.address - start_address
                registers[offset : offset + len(w)] = w
        return None


async def _refuse_unknown_unit(*_args: object) -> ExcCodes:
    return ExcCodes.GATEWAY_NO_RESPONSE


def _catch_all() -> SimDevice:
    """Unit id 0 stands for any unit not configured: answer 'no response' rather than crash."""
    blocks = [[_sim_block(rtype, 0, 65535)] for rtype in _TYPE_ORDER]
    coils, discrete, holding, inputs = blocks
    return SimDevice(id=0, simdata=(coils, discrete, holding, inputs), action=_refuse_unknown_unit)


def _sim_devices(models: Sequence[ProfileModel], clock: Clock) -> list[SimDevice]:
    seen: dict[int, str] = {}
    for m in models:
        if m.unit_id in seen:
            raise SimulatorError(
                f"{m.device_id}: unit id {m.unit_id} is already used by {seen[m.unit_id]} on "
                "the same port; expected unique unit ids per port"
            )
        seen[m.unit_id] = m.device_id
    return [_Served(m, clock).sim_device() for m in models] + [_catch_all()]


async def start(
    devices: Sequence[ModbusDevice],
    config: Config,
    stack: contextlib.AsyncExitStack,
    *,
    clock: Clock = time.time,
) -> list[str]:
    """Serve the devices; shutdown is registered on `stack`. One line per device."""
    tcp: dict[tuple[str, int], list[ModbusDevice]] = {}
    rtu: dict[Path, list[ModbusDevice]] = {}
    for dev in devices:
        conn = dev.connection
        if isinstance(conn, ModbusTcp):
            tcp.setdefault((conn.host, conn.port), []).append(dev)
        else:
            rtu.setdefault(config.resolve(conn.serial_port), []).append(dev)
    lines: list[str] = []
    for (host, port), devs in tcp.items():
        models = _models(devs, config, clock)
        server = ModbusTcpServer(_sim_devices(models, clock), address=(host, port))
        try:
            await server.serve_forever(background=True)
        except RuntimeError:
            raise SimulatorError(
                f"{', '.join(d.id for d in devs)}: cannot listen on {host}:{port} "
                "(address in use or not local)"
            ) from None
        stack.push_async_callback(server.shutdown)
        lines += [
            _describe(m, d, f"modbus tcp {host}:{port}") for m, d in zip(models, devs, strict=True)
        ]
    for path, devs in rtu.items():
        models = _models(devs, config, clock)
        lines += await _start_rtu(path, devs, models, stack, clock)
    return lines


def _models(devs: Sequence[ModbusDevice], config: Config, clock: Clock) -> list[ProfileModel]:
    """Models evaluated once up front: planning a heat pump's cycles since EPOCH takes a few
    hundred milliseconds that must not stall the first poll."""
    models = [device_model(d, config) for d in devs]
    now = datetime.fromtimestamp(math.floor(clock()), UTC)
    for m in models:
        m.words_at(now)
    return models


async def _start_rtu(
    path: Path,
    devs: Sequence[ModbusDevice],
    models: Sequence[ProfileModel],
    stack: contextlib.AsyncExitStack,
    clock: Clock,
) -> list[str]:
    sim_devices = _sim_devices(models, clock)
    server_side, client_side = Pty(), Pty()
    stack.callback(client_side.close)
    stack.callback(server_side.close)
    link(path, client_side.slave_path)
    stack.callback(unlink, path, client_side.slave_path)
    bridge = PtyBridge(server_side, client_side)
    bridge.start()
    stack.callback(bridge.stop)
    conn = devs[0].connection
    assert isinstance(conn, ModbusRtu)
    server = ModbusSerialServer(
        sim_devices,
        port=server_side.slave_path,
        baudrate=conn.baudrate or models[0].profile.serial.baudrate,
        reconnect_delay=0.1,
    )
    await server.serve_forever(background=True)
    stack.push_async_callback(server.shutdown)
    where = f"modbus rtu {_shown_path(path)} -> {client_side.slave_path}"
    return [_describe(m, d, where) for m, d in zip(models, devs, strict=True)]


def _shown_path(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _describe(model: ProfileModel, device: ModbusDevice, where: str) -> str:
    return f"{device.id}: {where} (unit {model.unit_id}, profile {device.profile})"
