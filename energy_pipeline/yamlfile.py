"""YAML loading that remembers where each key came from.

Config and profile errors must name the file, the key path and the line, so the loader keeps a
map from key path to line number beside the plain data that pydantic validates.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

KeyPath = tuple[str | int, ...]

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a file, phrased for the person who wrote it."""

    file: Path
    key: KeyPath
    message: str
    line: int | None = None

    def __str__(self) -> str:
        where = f"{self.file}"
        if self.line is not None:
            where += f":{self.line}"
        key = dotted(self.key)
        return f"{where}: {key}: {self.message}" if key else f"{where}: {self.message}"


class ConfigError(Exception):
    """A configuration or profile file that cannot be used; the CLI exits 2 on it."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


def dotted(key: KeyPath) -> str:
    out = ""
    for part in key:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


@dataclass
class LoadedYaml:
    """Parsed YAML data with the line of every key path and the paths filled from ${VAR}."""

    path: Path
    data: Any
    lines: dict[KeyPath, int] = field(default_factory=dict)
    substituted: set[KeyPath] = field(default_factory=set)
    secrets: set[str] = field(default_factory=set)

    def line_of(self, key: KeyPath) -> int | None:
        """The line of the deepest known key on the path (pydantic paths may go past YAML's)."""
        for end in range(len(key), -1, -1):
            if key[:end] in self.lines:
                return self.lines[key[:end]]
        return None

    def problem(self, key: KeyPath, message: str) -> Problem:
        return Problem(self.path, key, message, self.line_of(key))


def _walk(node: yaml.Node, key: KeyPath, lines: dict[KeyPath, int]) -> None:
    lines.setdefault(key, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            child = (*key, str(k.value))
            lines[child] = k.start_mark.line + 1
            _walk(v, child, lines)
    elif isinstance(node, yaml.SequenceNode):
        for i, v in enumerate(node.value):
            _walk(v, (*key, i), lines)


def load_yaml(path: Path, env: dict[str, str] | None = None) -> LoadedYaml:
    """Read `path`, substitute ${VAR} / ${VAR:-default} in string values, and map key lines.

    Substituted values are recorded as secrets-in-waiting: whatever came from the environment is
    never echoed back in an error message.
    """
    env = dict(os.environ) if env is None else env
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError([Problem(path, (), "file not found")]) from None
    except OSError as exc:
        raise ConfigError([Problem(path, (), f"cannot read file: {exc.strerror}")]) from None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        reason = getattr(exc, "problem", None) or str(exc)
        raise ConfigError([Problem(path, (), f"not valid YAML: {reason}", line)]) from None
    loaded = LoadedYaml(path=path, data=data)
    if node is not None:
        _walk(node, (), loaded.lines)
    problems: list[Problem] = []
    loaded.data = _substitute(data, (), env, loaded, problems)
    if problems:
        raise ConfigError(problems)
    return loaded


def _substitute(
    value: Any, key: KeyPath, env: dict[str, str], loaded: LoadedYaml, problems: list[Problem]
) -> Any:
    if isinstance(value, dict):
        return {k: _substitute(v, (*key, str(k)), env, loaded, problems) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute(v, (*key, i), env, loaded, problems) for i, v in enumerate(value)]
    if not isinstance(value, str) or "${" not in value:
        return value

    def replace(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        if name in env:
            return env[name]
        if default is not None:
            return default
        problems.append(
            loaded.problem(
                key, f"environment variable {name} is not set (referenced as ${{{name}}})"
            )
        )
        return ""

    result = _VAR.sub(replace, value)
    loaded.substituted.add(key)
    if result:
        loaded.secrets.add(result)
    return result
