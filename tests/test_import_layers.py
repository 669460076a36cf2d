"""The packages import in one direction only, read from the source (no import is executed):

    core  <-  converter  <-  runtimes  <-  pipeline (convert passes, parity, bench)  <-  cli

A module may import its own layer or any layer below it, never one above; and no two
subpackages import each other, directly or through others (a cycle). Function-local imports
count too: a lazy import upward is still a dependency upward.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FOLDERS = {"frlite": REPO / "frlite", "frlite.converter": REPO / "converter", "frlite.runtimes": REPO / "runtimes",
           "frlite.android_harness": REPO / "android_harness"}

# (module prefix, layer); the longest matching prefix wins
LAYERS: list[tuple[str, int]] = [
    ("frlite.converter.core", 0),
    ("frlite.converter", 1),
    ("frlite.runtimes", 2),
    ("frlite.runtimes.parity_run", 3), ("frlite.runtimes.report_", 3),
    ("frlite.converter.passes", 3),
    ("frlite.android_harness", 3),
    ("frlite", 4),
]
LAYER_NAMES = {0: "core", 1: "converter", 2: "runtimes", 3: "pipeline/parity/bench", 4: "cli/api"}


def layer_of(module: str) -> int:
    best = max((p for p, _ in LAYERS if module == p or module.startswith(p + ".") or
                (p.endswith("_") and module.startswith(p))), key=len)
    return dict(LAYERS)[best]


def group_of(module: str) -> str:
    """The subpackage a module belongs to, for the cycle check (frlite.converter.fr, frlite.runtimes, ...)."""
    parts = module.split(".")
    if parts[:2] == ["frlite", "converter"] and len(parts) > 3:
        return ".".join(parts[:3])
    return ".".join(parts[:2]) if len(parts) > 2 or parts[:2] != ["frlite", "cli"] else module


def modules() -> dict[str, Path]:
    found = {}
    for prefix, root in FOLDERS.items():
        for path in root.rglob("*.py"):
            rel = path.relative_to(root).with_suffix("").parts
            if rel[-1] == "__init__":
                rel = rel[:-1]
            name = ".".join((prefix, *rel)) if rel else prefix
            if prefix == "frlite" and rel and rel[0] in ("converter", "runtimes", "android_harness"):
                continue
            found[name] = path
    return found


def imports_of(path: Path) -> set[str]:
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path}: relative import; use the absolute frlite.* name"
            out.add(node.module or "")
    return {m for m in out if m == "frlite" or m.startswith("frlite.")}


ALL = modules()


def test_every_package_folder_is_installed() -> None:
    """pyproject's package list names every folder holding an __init__.py."""
    import tomllib

    listed = set(tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    packages = {name for name, path in ALL.items() if path.name == "__init__.py"}
    assert packages == listed


def test_no_old_top_level_names() -> None:
    for name, path in ALL.items():
        for node in ast.walk(ast.parse(path.read_text())):
            mods = ([a.name for a in node.names] if isinstance(node, ast.Import)
                    else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            for m in mods:
                assert m.split(".")[0] not in ("converter", "runtimes", "android_harness"), f"{name} imports {m}"


@pytest.mark.parametrize("module", sorted(ALL))
def test_imports_point_down(module: str) -> None:
    mine = layer_of(module)
    for target in sorted(imports_of(ALL[module])):
        if target == "frlite":
            continue
        theirs = layer_of(target)
        assert theirs <= mine, (f"{module} ({LAYER_NAMES[mine]}) imports {target} ({LAYER_NAMES[theirs]}), "
                                "a layer above it")


def test_no_cycle_between_subpackages() -> None:
    graph: dict[str, set[str]] = {}
    for module, path in ALL.items():
        g = group_of(module)
        for target in imports_of(path):
            if target != "frlite" and group_of(target) != g:
                graph.setdefault(g, set()).add(group_of(target))
    state: dict[str, int] = {}

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                raise AssertionError("import cycle: " + " -> ".join(trail[trail.index(nxt):] + [node, nxt])
                                     if nxt in trail else f"import cycle through {node} -> {nxt}")
            if nxt not in state:
                visit(nxt, trail + [node])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [])


def test_layers_catch_an_upward_import() -> None:
    """The check itself can fail: a converter module importing a runtime is upward."""
    assert layer_of("frlite.converter.fr.idct") < layer_of("frlite.runtimes.base")
    assert layer_of("frlite.runtimes.base") < layer_of("frlite.runtimes.parity_run")
    assert layer_of("frlite.converter.core.errors") < layer_of("frlite.converter.fr.idct")
