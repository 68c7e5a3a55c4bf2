"""Register-map profiles: what a Modbus device's values mean, as data (YAML), never code.

A profile is named either by a built-in name (a YAML file shipped in this folder) or by a path
to a YAML file, relative to the config file's folder. HPManager `registers.yml` files work
unchanged; `path/registers.yml#<model>` picks one model when the file holds several.

`load_profile` is the one way in, for config validation, drivers, simulators and the metric
catalog alike, so a `#model` accepted by one is honoured by all. This floor holds device facts
(profiles, the Luxtronik and ECHONET name tables) and imports only `yamlfile` below it.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from energy_pipeline.profiles.hpmanager import is_hpmanager, profile_from_hpmanager
from energy_pipeline.profiles.model import Profile, error_message
from energy_pipeline.yamlfile import ConfigError, load_yaml

BUILTIN_DIR = Path(__file__).parent


class ProfileNotFound(LookupError):
    pass


def builtin_profiles() -> list[str]:
    return sorted(p.stem for p in BUILTIN_DIR.glob("*.yaml"))


def _split(name: str) -> tuple[str, str | None]:
    path, sep, model = name.partition("#")
    return path, (model or None) if sep else None


def resolve_profile(name: str, base_dir: Path) -> Path:
    """A built-in name, else a path relative to `base_dir`; a clear error otherwise."""
    name, _ = _split(name)
    if "/" not in name and not name.endswith((".yaml", ".yml")):
        path = BUILTIN_DIR / f"{name}.yaml"
        if path.is_file():
            return path
        raise ProfileNotFound(
            f"unknown profile {name!r}; expected a built-in profile "
            f"({', '.join(builtin_profiles()) or 'none shipped'}) or a path to a YAML file"
        )
    path = Path(name).expanduser()
    path = path if path.is_absolute() else (base_dir / path)
    if not path.is_file():
        raise ProfileNotFound(f"profile file {str(path)!r} not found")
    return path.resolve()


def load_profile(name: str, base_dir: Path) -> Profile:
    """Resolve and validate a profile (`name`, `path` or `path#model`); ProfileNotFound or
    ConfigError (file, key, line). Cached while the file is unchanged."""
    path = resolve_profile(name, base_dir)
    stat = path.stat()
    return _load(path, _split(name)[1], stat.st_mtime_ns, stat.st_size)


@cache
def _load(path: Path, model: str | None, _mtime_ns: int, _size: int) -> Profile:
    return _load_file(path, model)


def _load_file(path: Path, model: str | None) -> Profile:
    """HPManager `registers.yml` files are converted; `model` picks one of their models."""
    loaded = load_yaml(path)
    if is_hpmanager(loaded.data):
        return profile_from_hpmanager(loaded, model)
    if not isinstance(loaded.data, dict):
        raise ConfigError([loaded.problem((), "expected a profile mapping with points")])
    try:
        return Profile.model_validate(loaded.data)
    except ValidationError as exc:
        problems = [
            loaded.problem(tuple(err["loc"]), error_message(err))
            for err in exc.errors(include_url=False)
        ]
        raise ConfigError(problems) from None


def builtin_summaries() -> list[dict[str, Any]]:
    """What `energy-pipeline profiles` lists."""
    out = []
    for name in builtin_profiles():
        profile = load_profile(name, BUILTIN_DIR)
        out.append(
            {
                "name": name,
                "manufacturer": profile.manufacturer,
                "model": profile.model,
                "points": len(profile.points),
                "unit_id": profile.unit_id,
                "description": profile.description,
            }
        )
    return out
