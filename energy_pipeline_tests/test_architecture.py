"""Imports run one way: every import of every product module (also those inside functions and
`importlib.import_module("...")` calls), read with `ast`, checked against the floors in the
README's Layout section; and only `lake/` writes or renames Parquet and lake files."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent / "energy_pipeline"
PACKAGE = "energy_pipeline"

FORBIDDEN: dict[str, set[str]] = {
    "drivers": {"collector", "lake", "defs", "transforms", "live", "simulators", "dagster"},
    "lake": {"collector", "defs", "live", "simulators", "drivers", "dagster"},
    "transforms": {"collector", "defs", "live", "simulators", "drivers", "dagster"},
    "collector": {"defs", "simulators", "transforms", "dagster"},
    "live": {"collector", "defs", "simulators", "dagster"},
    "defs": {"collector", "simulators", "live", "drivers"},
}
"""floor -> floors (and outside packages) it must never import."""

WRITERS = {"write_table", "ParquetWriter", "write_dataset"}
"""Parquet writing calls, by the name called (`pq.write_table(...)`, `ParquetWriter(...)`)."""

RENAME_ALLOWED: dict[tuple[str, str], str] = {
    ("energy_pipeline.simulators.serial_pty", "os.replace"): "swaps the pty symlink a driver opens",
    ("energy_pipeline.simulators.echonet", "os.replace"): "swaps the fake dongle's pty symlink",
}
"""(module, call) -> why that module may rename files that are not the lake's."""


@dataclass(frozen=True)
class Import:
    module: str
    target: str
    line: int


def modules() -> dict[str, ast.Module]:
    out = {}
    for path in sorted(ROOT.rglob("*.py")):
        parts = path.relative_to(ROOT.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = ast.parse(path.read_text(), str(path))
    return out


MODULES = modules()


def is_package(name: str) -> bool:
    return (ROOT.parent / name.replace(".", "/") / "__init__.py").is_file()


def imports(name: str, tree: ast.Module) -> Iterator[Import]:
    """Every module `name` imports, anywhere in its body; `from pkg import sub` names the
    submodule when `sub` is one."""
    package = name if is_package(name) else name.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Import(name, alias.name, node.lineno)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                yield Import(name, sub if sub in MODULES else base, node.lineno)
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            yield Import(name, node.args[0].value, node.lineno)


ALL_IMPORTS = [imp for name, tree in MODULES.items() for imp in imports(name, tree)]


def floor(module: str) -> str:
    """`energy_pipeline.lake.files` -> `lake`; an outside package -> its top-level name."""
    parts = module.split(".")
    if parts[0] == PACKAGE:
        return parts[1] if len(parts) > 1 else PACKAGE
    return "dagster" if parts[0].startswith("dagster") else parts[0]


def test_the_scan_sees_function_level_imports() -> None:
    """The reader itself: an import inside a function body counts like one at the top."""
    tree = ast.parse("def f():\n    from energy_pipeline.lake import files\n")
    assert [i.target for i in imports("energy_pipeline.x", tree)] == ["energy_pipeline.lake.files"]


@pytest.mark.parametrize("source", sorted(FORBIDDEN))
def test_floor_imports_run_one_way(source: str) -> None:
    bad = [
        f"{i.module} imports {i.target} (line {i.line}): {source} never imports {floor(i.target)}"
        for i in ALL_IMPORTS
        if floor(i.module) == source and floor(i.target) in FORBIDDEN[source]
    ]
    assert not bad, "\n".join(bad)


def test_no_module_import_cycle() -> None:
    graph: dict[str, set[str]] = {name: set() for name in MODULES}
    lines: dict[tuple[str, str], int] = {}
    for i in ALL_IMPORTS:
        if i.target in MODULES and i.target != i.module:
            graph[i.module].add(i.target)
            lines.setdefault((i.module, i.target), i.line)
    cycles = [c for c in strongly_connected(graph) if len(c) > 1]
    described = []
    for cycle in cycles:
        members = set(cycle)
        edges = [
            f"{a} imports {b} (line {lines[a, b]})"
            for a in sorted(members)
            for b in sorted(graph[a] & members)
        ]
        described.append("cycle: " + "; ".join(edges))
    assert not described, "\n".join(described)


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's components, iteratively (no recursion limit on a deep import chain)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                out.append(component)
    return out


def file_calls(tree: ast.Module) -> Iterator[tuple[str, int]]:
    """Calls that write Parquet or move a file: `os.replace/rename`, any one-argument
    `.replace(target)`/`.rename(target)` (Path's; str.replace takes two, datetime's keywords)."""
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
        if called in WRITERS:
            yield called, node.lineno
        elif called in {"replace", "rename"} and isinstance(func, ast.Attribute):
            owner = func.value
            if isinstance(owner, ast.Name) and owner.id == "os":
                yield f"os.{called}", node.lineno
            elif len(node.args) == 1 and not node.keywords:
                yield f".{called}", node.lineno


def test_only_the_lake_writes_or_renames_lake_files() -> None:
    bad = [
        f"{name} calls {call} (line {line}): Parquet writes and renames belong in lake/"
        for name, tree in MODULES.items()
        if floor(name) != "lake"
        for call, line in file_calls(tree)
        if (name, call) not in RENAME_ALLOWED
    ]
    assert not bad, "\n".join(bad)
