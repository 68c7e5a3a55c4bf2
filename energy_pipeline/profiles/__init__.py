"""Register-map profiles: what a Modbus device's values mean, as data (YAML), never code.

A profile is named either by a built-in name (a YAML file shipped in this folder) or by a path
to a YAML file, relative to the config file's folder. HPManager `registers.yml` files work
unchanged; `path/registers.yml#<model>` picks one model when the file holds several.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

from energy_pipeline.profiles.model import Profile, load_profile_file

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
    """Resolve and validate a profile; ProfileNotFound or ConfigError (file, key, line)."""
    path = resolve_profile(name, base_dir)
    stat = path.stat()
    return _load(path, _split(name)[1], stat.st_mtime_ns, stat.st_size)


@cache
def _load(path: Path, model: str | None, _mtime_ns: int, _size: int) -> Profile:
    return load_profile_file(path, model)


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
