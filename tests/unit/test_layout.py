"""The library's rooms: one package per step, no import cycle, no import from a higher floor.

pytest tests/unit/test_layout.py

Imports are read from the source (every `import`, also inside functions), never executed.
"""

from __future__ import annotations

import ast
from pathlib import Path

from ground.common.catalog import AUTHORS_CONVERTER, DATASETS
from ground.workflow.steps import STEPS, step

SRC = Path(__file__).resolve().parents[2] / "src"
# Lowest first: a room may import its own modules and those of the rooms below it. The steps'
# rooms are in the order of the pipeline; `workflow` (what the Snakefile and the CLI share) is on top.
FLOORS = ("common", "tracking", "model", "demo", "download", "release", "convert", "generate",
          "mixture", "features", "train", "eval", "workflow")  # fmt: skip
MAX_LINES = 400


def modules() -> dict[str, Path]:
    found = {}
    for path in sorted((SRC / "ground").rglob("*.py")):
        parts = path.relative_to(SRC).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def imports(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The `ground` modules that `name` imports (a `from x import y` counts y when y is a module)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(anchor + ([node.module] if node.module else []))
            subs = {f"{base}.{a.name}" for a in node.names} & known.keys()
            found |= subs or {base}
    return {m for m in found if m in known and m != name}


def graph() -> dict[str, set[str]]:
    known = modules()
    return {name: imports(name, path, known) for name, path in known.items()}


def room(module: str) -> str:
    return module.split(".")[1] if module.count(".") else ""


def test_top_level_is_one_room_per_step_plus_the_shared_ones():
    rooms = {p.name for p in (SRC / "ground").iterdir() if p.is_dir() and p.name != "__pycache__"}
    assert rooms == set(FLOORS)
    step_rooms = {s.modules[0].split(".")[1] for s in STEPS}
    assert step_rooms == {"download", "release", "convert", "generate", "mixture", "features", "train",
                          "eval"}  # fmt: skip
    assert sorted(p.name for p in (SRC / "ground").glob("*.py")) == ["__init__.py"]


def test_every_step_module_lives_in_the_room_named_as_the_step():
    for s in STEPS:
        for module in s.modules:
            assert room(module) == s.section, (s.name, module)


def test_every_converter_the_catalog_names_is_in_the_convert_fingerprint():
    named = {d.converter.partition(":")[0] for d in DATASETS.values()}
    named.add(AUTHORS_CONVERTER.partition(":")[0])
    assert named <= set(step("convert").modules)
    assert all(m.startswith("ground.convert.sources.") for m in named)


def test_no_room_imports_a_higher_one():
    upward = [
        f"{a} imports {b}"
        for a, deps in graph().items()
        for b in deps
        if room(a) and room(b) and FLOORS.index(room(b)) > FLOORS.index(room(a))
    ]
    assert upward == []


def test_no_import_cycle():
    edges = graph()
    cycles, state = [], {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = "open"
        for dep in sorted(edges[node]):
            if state.get(dep) == "open":
                cycles.append(" -> ".join(path[path.index(dep):] + [node, dep]))
            elif dep not in state:
                visit(dep, path + [node])
        state[node] = "done"

    for node in sorted(edges):
        if node not in state:
            visit(node, [])
    assert cycles == []


def test_modules_stay_small():
    long = {n: len(p.read_text().splitlines()) for n, p in modules().items()}
    assert {n: k for n, k in long.items() if k > MAX_LINES} == {}
