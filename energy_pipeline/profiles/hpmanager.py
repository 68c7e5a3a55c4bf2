"""HPManager-style `registers.yml` maps, read unchanged.

HPManager users describe heat pumps as `models: <model>: {description, registers: [...]}`,
each register with name, address (sent as-is), register_type (holding | input), data_type,
unit, scale, description and `enum_values` for enums. This converts one model to a Profile and
maps validation errors back to the key paths and lines of the original file.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from energy_pipeline.profiles.model import Profile, error_message
from energy_pipeline.yamlfile import ConfigError, KeyPath, LoadedYaml

# HPManager spells units as words; these become the symbols our profiles use.
_UNITS = {
    "celsius": "°C",
    "kelvin": "K",
    "kwh": "kWh",
    "wh": "Wh",
    "kw": "kW",
    "w": "W",
    "hours": "h",
    "percent": "%",
    "dimensionless": None,
}
_STATE_UNITS = ("enum", "bitmap")
# Our field name -> HPManager's key, for error messages that point into the user's file.
_SOURCE_KEY = {"labels": "enum_values"}


def is_hpmanager(data: Any) -> bool:
    return isinstance(data, dict) and isinstance(data.get("models"), dict) and "points" not in data


def _point(register: Any) -> Any:
    if not isinstance(register, dict):
        return register
    point = {k: v for k, v in register.items() if k not in ("unit", "enum_values")}
    unit = register.get("unit")
    if isinstance(unit, str) and unit.lower() in _STATE_UNITS:
        point["kind"] = "state"
    elif unit is not None:
        point["unit"] = _UNITS.get(str(unit).lower(), unit) if isinstance(unit, str) else unit
        if point["unit"] is None:
            del point["unit"]
    if "enum_values" in register:
        point["labels"] = register["enum_values"]
        point["kind"] = "state"
    point.setdefault("data_type", "int16")
    return point


def profile_from_hpmanager(loaded: LoadedYaml, model: str | None) -> Profile:
    """The Profile of `model` (or of the only model in the file)."""
    models: dict[str, Any] = loaded.data["models"]
    if model is None:
        if len(models) != 1:
            raise ConfigError(
                [
                    loaded.problem(
                        ("models",),
                        "the file holds several models; name one as "
                        f"'{loaded.path.name}#<model>' (one of: {', '.join(map(str, models))})",
                    )
                ]
            )
        model = str(next(iter(models)))
    if model not in models or not isinstance(models[model], dict):
        raise ConfigError(
            [
                loaded.problem(
                    ("models",),
                    f"no model {model!r}; expected one of: {', '.join(map(str, models))}",
                )
            ]
        )
    entry = models[model]
    registers = entry.get("registers")
    base: KeyPath = ("models", model)
    if not isinstance(registers, list):
        raise ConfigError([loaded.problem(base, "expected a `registers:` list")])
    data = {
        "manufacturer": str(entry.get("manufacturer", "unknown")),
        "model": model,
        "description": entry.get("description"),
        "points": [_point(r) for r in registers],
    }
    if "unit_id" in entry:
        data["unit_id"] = entry["unit_id"]
    try:
        return Profile.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors(include_url=False):
            loc = tuple(err["loc"])
            if loc[:1] == ("points",):
                key: KeyPath = (
                    *base,
                    "registers",
                    *(_SOURCE_KEY.get(str(p), p) for p in loc[1:]),
                )
            else:
                key = (*base, *loc)
            problems.append(loaded.problem(key, error_message(err)))
        raise ConfigError(problems) from None
