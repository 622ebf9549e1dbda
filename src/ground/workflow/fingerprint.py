"""Code fingerprints: a short hash of the `ground` code a step runs, blind to comments and docs.

    >>> from ground.workflow.fingerprint import code_fingerprint, module_closure, module_digests
    >>> code_fingerprint("ground.convert.run")   # 16 hex chars, e.g. '3f9c0a1b2d4e5f60'
    >>> code_fingerprint("ground.eval.run", files=["rules/scripts/evaluate_benchmark.py"])
    >>> module_closure("ground.convert.run")     # ['ground.convert.run', 'ground.common.media', ...]
    >>> module_digests("ground.convert.run")     # {module: digest}: which module changed

A rule puts the fingerprint in its params (`code=code_fingerprint("ground.convert.run")`):
Snakemake's CODE trigger only sees the rule's own adapter script, so without it an edit to the
library would never rerun a step, while its comment-sensitive hash would rerun on a typo fix.

What counts: the top-level statements (docstrings removed) a step can reach. All of the named
modules and `files`; in a module reached by an import, a def/class/assignment/import when a
counted statement of that module names it (as a variable, in `global`, or as a word in a string:
string annotations, getattr by name), and its other statements (calls, `if`, `try`...) always.
In-package imports (`ground.*` or relative, also inside functions; strings spelling exactly
`"ground.x.y"` or `"ground.x.y:name"`, for importlib, and `"-m", "ground.x"` with its `__main__`)
lead to the statements binding the imported names. The hash is over the *set* of statement
digests, taken with in-package import paths erased: moving a function or renaming or splitting a
module changes nothing, nor does an edit to code no step reaches. External imports count as
written. Blind spots: other imports built at run time; names built at run time that no string
spells; registries filled by decorators or by assignments to names nothing mentions; statement
order and repeats. Parent packages' `__init__.py` files count only when imported by name (`from
ground import x`, x not a module): they would tie every step to `__version__`. The digests depend
on the Python version's AST layout. `module_closure`/`module_digests` see whole modules.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import importlib.util
import re
from collections.abc import Sequence
from dataclasses import dataclass
from importlib.machinery import ModuleSpec, PathFinder
from pathlib import Path

# (level, module, names): `import a.b` -> (0, "a.b", ()); `from ..x import y` -> (2, "x", ("y",))
_Import = tuple[int, str | None, tuple[str, ...]]
_WORD = re.compile(r"[A-Za-z_]\w*")


@dataclass(frozen=True)
class _Stmt:
    """A top-level statement; an import of several names is split into one per name."""

    digest: str  # of its AST with in-package import paths erased
    binds: frozenset[str]  # empty: a side effect, counted whenever its module is reached
    refs: frozenset[str]
    imports: tuple[_Import, ...]  # every import in it, as written
    literals: tuple[_Import, ...]  # "ground.x.y[:name]" strings: followed where they exist


@dataclass(frozen=True)
class _Module:
    digest: str  # of the whole docstring-free AST, for module_digests
    stmts: tuple[_Stmt, ...]
    binders: dict[str, tuple[int, ...]]  # name -> indices of the statements binding it


def code_fingerprint(
    *modules: str, package: str = "ground", files: Sequence[str | Path] = ()
) -> str:
    """16 hex chars hashing the `package` code reachable from `modules` and script `files`."""
    walk = _walk(modules, files, package, whole_modules=False)
    h = hashlib.sha256()
    for digest in sorted({walk.modules[name][0].stmts[i].digest for name, i in walk.included}):
        h.update(f"{digest}\n".encode())
    return h.hexdigest()[:16]


def module_closure(*modules: str, package: str = "ground") -> list[str]:
    """The sorted names of `modules` and, transitively, the `package.*` modules they import."""
    return sorted(module_digests(*modules, package=package))


def module_digests(*modules: str, package: str = "ground") -> dict[str, str]:
    """Per-module digest (sha256 hex) of the whole modules in the import closure of `modules`:
    those `code_fingerprint` may take statements from.

    Raises ModuleNotFoundError naming the importing file when a `package.*` import cannot be
    found: a typo there would fail at run time anyway, better at DAG build time.
    """
    walk = _walk(modules, (), package, whole_modules=True)
    return {name: parsed.digest for name, (parsed, _, _) in walk.modules.items()}


def _walk(
    modules: Sequence[str], files: Sequence[str | Path], package: str, whole_modules: bool
) -> _Walk:
    if not modules and not files:
        raise ValueError("code_fingerprint needs at least one module name or file")
    walk = _Walk(package, whole_modules)
    for name in modules:
        if not _within(name, package):
            raise ValueError(f"{name!r} is not a module of package {package!r}")
        walk.whole(name, "<requested>")
    for path in files:
        walk.add_file(Path(path).resolve())
    walk.run()
    return walk


class _Walk:
    """The statements reachable from the roots, as (module name or file path, index) pairs."""

    def __init__(self, package: str, whole_modules: bool) -> None:
        self.package = package
        self.whole_modules = whole_modules  # an import reaches whole modules, not names
        self.modules: dict[str, tuple[_Module, bool, str]] = {}  # (parsed, is_package, origin)
        self.specs: dict[str, ModuleSpec | None] = {}  # files do not move during one call
        self.included: set[tuple[str, int]] = set()
        self.todo: list[tuple[str, int]] = []

    def run(self) -> None:
        while self.todo:
            name, index = self.todo.pop()
            parsed = self.modules[name][0]
            stmt = parsed.stmts[index]
            for ref in stmt.refs:
                for other in parsed.binders.get(ref, ()):
                    self.include(name, other)
            for imp in stmt.imports:
                self.follow(name, imp, lenient=False)
            for imp in stmt.literals:
                self.follow(name, imp, lenient=True)

    def locate(self, name: str) -> ModuleSpec | None:
        if name not in self.specs:
            self.specs[name] = _locate(name)
        return self.specs[name]

    def include(self, name: str, index: int) -> None:
        if (name, index) not in self.included:
            self.included.add((name, index))
            self.todo.append((name, index))

    def whole(self, name: str, importer: str) -> None:
        for index in range(len(self.module(name, importer).stmts)):
            self.include(name, index)

    def module(self, name: str, importer: str) -> _Module:
        if name not in self.modules:
            spec = self.locate(name)
            if spec is None:
                raise ModuleNotFoundError(f"{importer}: imports {name}, which cannot be found")
            is_package = spec.submodule_search_locations is not None
            self.add(name, _read(spec, self.package), is_package, spec.origin or name)
        return self.modules[name][0]

    def add_file(self, path: Path) -> None:
        key = str(path)  # absolute, so never a module name
        parsed = _parse(path.read_bytes(), key, self.package)
        if any(level for stmt in parsed.stmts for level, _, _ in stmt.imports):
            raise ImportError(f"{path}: a script cannot use relative imports")
        self.add(key, parsed, False, key)
        self.whole(key, key)

    def add(self, name: str, parsed: _Module, is_package: bool, origin: str) -> None:
        self.modules[name] = (parsed, is_package, origin)
        # Every in-package import of a visited module must exist, reached or not, as before.
        for imp in (imp for stmt in parsed.stmts for imp in stmt.imports):
            for module, _ in self.targets(name, imp):
                if self.locate(module) is None:
                    raise ModuleNotFoundError(f"{origin}: imports {module}, which cannot be found")
        for index, stmt in enumerate(parsed.stmts):
            if not stmt.binds or self.whole_modules:
                self.include(name, index)

    def targets(self, importer: str, imp: _Import) -> list[tuple[str, str | None]]:
        """The in-package (module, name) pairs an import loads; name None: the whole module."""
        (level, module, names), is_package = imp, self.modules[importer][1]
        base = module if level == 0 else _relative_base(importer, is_package, level, module)
        if base is None or not _within(base, self.package):
            return []
        found: list[tuple[str, str | None]] = [] if names else [(base, None)]  # `import a.b`
        for item in names:  # `from base import item`: a submodule, or a name bound in base
            if item != "*" and self.locate(f"{base}.{item}") is not None:
                found.append((f"{base}.{item}", None))
            else:
                found.append((base, None if item == "*" else item))
        return found

    def follow(self, importer: str, imp: _Import, lenient: bool) -> None:
        origin = self.modules[importer][2]
        for module, name in self.targets(importer, imp):
            if lenient and self.locate(module) is None:
                continue  # a string that merely looks like a module path
            binders = self.module(module, origin).binders.get(name, ()) if name else ()
            if not binders or self.whole_modules:  # a module, `*`, or a name made at run time
                self.whole(module, origin)
            for index in binders:  # a binder that is an import (re-export) is followed on
                self.include(module, index)
            if lenient and name is None and self.locate(f"{module}.__main__") is not None:
                self.whole(f"{module}.__main__", origin)  # `[sys.executable, "-m", "ground.x"]`


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


def _read(spec: ModuleSpec, package: str) -> _Module:
    origin = spec.origin
    if origin is None or not spec.has_location:
        return _Module(hashlib.sha256(b"namespace").hexdigest(), stmts=(), binders={})
    source = Path(origin).read_bytes()
    if not origin.endswith(".py"):
        # Compiled extension: no AST to normalise, the bytes are the code, one side effect.
        digest = hashlib.sha256(source).hexdigest()
        stmt = _Stmt(digest, frozenset(), frozenset(), imports=(), literals=())
        return _Module(digest, stmts=(stmt,), binders={})
    return _parse(source, origin, package)


@functools.cache
def _parse(source: bytes, filename: str, package: str) -> _Module:
    """The docstring-free AST's digest and top-level statements.

    Keyed by the source bytes, so an edited file is re-parsed even within one process.
    """
    tree = ast.parse(source, filename=filename)
    _strip_docstrings(tree)
    digest = hashlib.sha256(ast.dump(tree, include_attributes=False).encode()).hexdigest()
    stmts = tuple(_statement(node, package) for top in tree.body for node in _split(top))
    binders: dict[str, list[int]] = {}
    for index, stmt in enumerate(stmts):
        for name in stmt.binds:
            binders.setdefault(name, []).append(index)
    return _Module(digest, stmts, binders={k: tuple(v) for k, v in binders.items()})


def _split(node: ast.stmt) -> list[ast.stmt]:
    """`from x import a, b` -> one statement per name, so that each is reached on its own."""
    if isinstance(node, ast.Import):
        return [ast.Import(names=[alias]) for alias in node.names]
    if isinstance(node, ast.ImportFrom):
        return [ast.ImportFrom(module=node.module, names=[a], level=node.level) for a in node.names]
    return [node]


def _statement(node: ast.stmt, package: str) -> _Stmt:
    imports = tuple(_collect_imports(node))  # before _erase_paths rewrites them
    refs: set[str] = set()
    literals: list[_Import] = []
    for sub in ast.walk(node):
        if isinstance(sub, ast.Name):
            refs.add(sub.id)
        elif isinstance(sub, (ast.Global, ast.Nonlocal)):
            refs.update(sub.names)
        elif isinstance(sub, ast.Constant) and isinstance(sub.value, str):
            # Over-approximate: string annotations, getattr(obj, "name"), "module:function".
            refs.update(_WORD.findall(sub.value))
            literals.extend(_literal_import(sub.value, package))
    binds = _binds(node)
    _erase_paths(node, package)
    digest = hashlib.sha256(ast.dump(node, include_attributes=False).encode()).hexdigest()
    return _Stmt(digest, frozenset(binds), frozenset(refs), imports, tuple(literals))


def _literal_import(text: str, package: str) -> list[_Import]:
    """`"pkg.x:f"` -> `from pkg.x import f`; `"pkg.x.y"` -> `import pkg.x.y`, `from pkg.x import y`
    (a module, or a function's dotted name)."""
    if not text.startswith(package + ".") or not re.fullmatch(r"\w+(\.\w+)+(:\w+)?", text):
        return []
    path, _, name = text.partition(":")
    if name:
        return [(0, path, (name,))]
    parent, _, last = path.rpartition(".")
    return [(0, path, ()), (0, parent, (last,))]


def _binds(node: ast.stmt) -> set[str]:
    """The top-level names `node` binds; empty for a side effect, which always counts."""
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return {node.name}
    if isinstance(node, ast.Import):
        return {node.names[0].asname or node.names[0].name.split(".")[0]}  # `import a.b`: a
    if isinstance(node, ast.ImportFrom):
        alias = node.names[0]
        # `__future__` changes how the module compiles; `*` binds names we cannot list.
        if node.module == "__future__" or alias.name == "*":
            return set()
        return {alias.asname or alias.name}
    if isinstance(node, ast.Assign):
        targets = list(node.targets)
    elif isinstance(node, (ast.AnnAssign, ast.AugAssign)):
        targets = [node.target]
    elif type(node).__name__ == "TypeAlias":  # Python 3.12 `type X = ...`
        targets = [node.name]  # type: ignore[attr-defined]
    else:
        return set()
    names: set[str] = set()
    if not all(_target_names(target, names) for target in targets):
        return set()  # `obj.attr = ...`, `table[k] = ...` change something else: a side effect
    names.update(n.target.id for n in ast.walk(node) if isinstance(n, ast.NamedExpr))
    return names  # `X = (Y := f())` binds Y too


def _target_names(target: ast.expr, out: set[str]) -> bool:
    """Add the names an assignment target binds; False when it assigns to anything else."""
    if isinstance(target, ast.Name):
        out.add(target.id)
        return True
    if isinstance(target, ast.Starred):
        return _target_names(target.value, out)
    if isinstance(target, (ast.Tuple, ast.List)):
        return all(_target_names(elt, out) for elt in target.elts)
    return False


def _erase_paths(node: ast.AST, package: str) -> None:
    """Drop where in-package imports come from, so that moving the imported code is invisible;
    also module paths spelled in strings ("pkg.x:f" for importlib, messages naming a module)."""
    for sub in ast.walk(node):
        if isinstance(sub, ast.Constant) and isinstance(sub.value, str) and package in sub.value:
            sub.value = re.sub(rf"\b{re.escape(package)}(\.\w+)+", _module_path, sub.value)
        elif isinstance(sub, ast.ImportFrom) and (sub.level or _within(sub.module or "", package)):
            # Nothing of an in-package import is kept, not even its names or their order: what it
            # imports counts through the statements it reaches (the names a statement uses).
            sub.module, sub.level, sub.names = None, 0, []
        elif isinstance(sub, ast.Import) and any(_within(a.name, package) for a in sub.names):
            sub.names = [a for a in sub.names if not _within(a.name, package)]


def _module_path(match: re.Match[str]) -> str:
    """A dotted name that is a module (or a name in a module below the package) -> the package's
    name; other text such as a file name `pkg.duckdb` stays as it is."""
    text = match.group(0)
    head, parent = text.partition(".")[0], text.rpartition(".")[0]
    if _locate(text) is not None or (parent != head and _locate(parent) is not None):
        return f"{head}.<module>"
    return text


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


def _collect_imports(tree: ast.AST) -> list[_Import]:
    found: list[_Import] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((0, alias.name, ()) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            found.append((node.level, node.module, tuple(a.name for a in node.names)))
    return found


def _relative_base(name: str, is_package: bool, level: int, module: str | None) -> str | None:
    parts = name.split(".")
    anchor = parts if is_package else parts[:-1]  # a package's `.` is itself
    if level - 1 > len(anchor) - 1:
        return None  # beyond the top-level package: Python raises ImportError here too
    anchor = anchor[: len(anchor) - (level - 1)]
    return ".".join(anchor + ([module] if module else []))
