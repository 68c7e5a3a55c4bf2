"""Register-map profiles: what a Modbus device's values mean, as data (YAML), never code.

A profile is named either by a built-in name (a YAML file shipped in this folder) or by a path
to a YAML file, relative to the config file's folder.
"""

from __future__ import annotations

from pathlib import Path

BUILTIN_DIR = Path(__file__).parent


class ProfileNotFound(LookupError):
    pass


def builtin_profiles() -> list[str]:
    return sorted(p.stem for p in BUILTIN_DIR.glob("*.yaml"))


def resolve_profile(name: str, base_dir: Path) -> Path:
    """A built-in name, else a path relative to `base_dir`; a clear error otherwise."""
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
