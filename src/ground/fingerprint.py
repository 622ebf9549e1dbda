"""Code fingerprints: a short hash of the `ground` code a step runs, blind to comments and docs.

    >>> from ground.fingerprint import code_fingerprint, module_closure, module_digests
    >>> code_fingerprint("ground.data.convert")   # 16 hex chars, e.g. '3f9c0a1b2d4e5f60'
    >>> module_closure("ground.data.convert")     # ['ground.data.convert', 'ground.media', ...]
    >>> module_digests("ground.data.convert")     # {module: digest}: which module changed

A rule puts the fingerprint in its params (`code=code_fingerprint("ground.data.convert")`):
Snakemake's CODE trigger only sees the rule's own adapter script, so without it an edit to the
library would never rerun a step, while its comment-sensitive hash would rerun on a typo fix.

What counts as code: the AST of the named modules and, transitively, of every module under the
same top-level package that they import (statically, anywhere in the file, including imports
inside functions), with docstrings removed. Parent packages' `__init__.py` files are not added
implicitly (only when imported by name, e.g. `from ground import x` where x is not a module):
they would tie every step to `__version__`. Imports built at run time (`importlib`) are not seen.
The digest depends on the Python version's AST layout: a new interpreter may change it.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import importlib.util
from dataclasses import dataclass
from importlib.machinery import ModuleSpec, PathFinder
from pathlib import Path

# (level, module, names): `import a.b` -> (0, "a.b", ()); `from ..x import y` -> (2, "x", ("y",))
_Import = tuple[int, str | None, tuple[str, ...]]


@dataclass(frozen=True)
class _Parsed:
    digest: str
    imports: tuple[_Import, ...]


def code_fingerprint(*modules: str, package: str = "ground") -> str:
    """16 hex chars hashing the code of `modules` and every `package.*` module they import."""
    digests = module_digests(*modules, package=package)
    h = hashlib.sha256()
    for name in sorted(digests):
        h.update(f"{name}\0{digests[name]}\n".encode())
    return h.hexdigest()[:16]


def module_closure(*modules: str, package: str = "ground") -> list[str]:
    """The sorted names of `modules` and, transitively, the `package.*` modules they import."""
    return sorted(module_digests(*modules, package=package))


def module_digests(*modules: str, package: str = "ground") -> dict[str, str]:
    """Per-module code digest (sha256 hex) over the import closure of `modules`.

    Raises ModuleNotFoundError naming the importing file when a `package.*` import cannot be
    found: a typo there would fail at run time anyway, better at DAG build time.
    """
    if not modules:
        raise ValueError("code_fingerprint needs at least one module name")
    todo: list[tuple[str, str]] = []
    for name in modules:
        if not _within(name, package):
            raise ValueError(f"{name!r} is not a module of package {package!r}")
        todo.append((name, "<requested>"))
    digests: dict[str, str] = {}
    while todo:
        name, importer = todo.pop()
        if name in digests:
            continue
        spec = _locate(name)
        if spec is None:
            raise ModuleNotFoundError(f"{importer}: imports {name}, which cannot be found")
        parsed = _read(spec)
        digests[name] = parsed.digest
        is_package = spec.submodule_search_locations is not None
        for dep in _resolve_imports(name, is_package, parsed.imports, package):
            todo.append((dep, spec.origin or name))
    return digests


def _within(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def _locate(name: str) -> ModuleSpec | None:
    """Find a module's spec without executing it or its parent packages.

    `importlib.util.find_spec("a.b")` imports package `a` first; walking the search locations
    with PathFinder does not, so torch-heavy `__init__` files stay unloaded at DAG build time.
    """
    head, *rest = name.split(".")
    spec = importlib.util.find_spec(head)  # a top-level name is found without importing it
    fullname = head
    for part in rest:
        if spec is None or spec.submodule_search_locations is None:
            return None
        fullname = f"{fullname}.{part}"
        spec = PathFinder.find_spec(fullname, list(spec.submodule_search_locations))
    return spec


def _read(spec: ModuleSpec) -> _Parsed:
    origin = spec.origin
    if origin is None or not spec.has_location:
        return _Parsed(digest=hashlib.sha256(b"namespace").hexdigest(), imports=())
    source = Path(origin).read_bytes()
    if not origin.endswith(".py"):
        # Compiled extension: no AST to normalise, the bytes are the code.
        return _Parsed(digest=hashlib.sha256(source).hexdigest(), imports=())
    return _parse(source, origin)


@functools.cache
def _parse(source: bytes, filename: str) -> _Parsed:
    """Digest of the docstring-free AST and the imports found in it.

    Keyed by the source bytes, so an edited file is re-parsed even within one process.
    """
    tree = ast.parse(source, filename=filename)
    _strip_docstrings(tree)
    dumped = ast.dump(tree, annotate_fields=True, include_attributes=False)
    return _Parsed(
        digest=hashlib.sha256(dumped.encode()).hexdigest(),
        imports=tuple(_collect_imports(tree)),
    )


def _strip_docstrings(tree: ast.Module) -> None:
    for node in ast.walk(tree):
        if not isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        body = node.body
        if (
            body
            and isinstance(body[0], ast.Expr)
            and isinstance(body[0].value, ast.Constant)
            and isinstance(body[0].value.value, str)
        ):
            # Keep the body non-empty so `def f(): "doc"` and `def f(): pass` hash alike.
            node.body = body[1:] or [ast.Pass()]


def _collect_imports(tree: ast.Module) -> list[_Import]:
    found: list[_Import] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((0, alias.name, ()) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            found.append((node.level, node.module, tuple(a.name for a in node.names)))
    return found


def _resolve_imports(
    name: str, is_package: bool, imports: tuple[_Import, ...], package: str
) -> set[str]:
    """Absolute names of the `package.*` modules that `name`'s imports load."""
    deps: set[str] = set()
    for level, module, names in imports:
        base = module if level == 0 else _relative_base(name, is_package, level, module)
        if base is None or not _within(base, package):
            continue
        if not names:  # `import ground.x.y`
            deps.add(base)
            continue
        # `from base import y`: y is either a submodule or a name defined in base itself.
        for item in names:
            candidate = f"{base}.{item}"
            if item != "*" and _locate(candidate) is not None:
                deps.add(candidate)
            else:
                deps.add(base)
    return deps


def _relative_base(name: str, is_package: bool, level: int, module: str | None) -> str | None:
    parts = name.split(".")
    anchor = parts if is_package else parts[:-1]  # a package's `.` is itself
    if level - 1 > len(anchor) - 1:
        return None  # beyond the top-level package: Python raises ImportError here too
    anchor = anchor[: len(anchor) - (level - 1)]
    return ".".join(anchor + ([module] if module else []))
