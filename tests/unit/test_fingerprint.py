"""Code fingerprints ignore comments, docstrings and layout, and follow imports transitively.

pytest tests/unit/test_fingerprint.py
"""

from __future__ import annotations

import importlib
import itertools
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ground.fingerprint import code_fingerprint, module_closure, module_digests

_counter = itertools.count()

A = '''
"""Module a."""
from . import b
from .sub.c import helper


def run(x):
    """Add b's constant."""
    return helper(x) + b.K
'''

B = """
K = 1
"""

C = """
from ..b import K  # relative import two levels up


def helper(x):
    return x * K
"""

UNRELATED = """
def other():
    return 42
"""


@pytest.fixture
def pkg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, Callable]]:
    """A throwaway package `ground_fp_test_N` on sys.path; yields (name, write(rel, text))."""
    name = f"ground_fp_test_{next(_counter)}"  # unique: find_spec caches per name
    root = tmp_path / name
    files = {
        "__init__.py": "",
        "a.py": A,
        "b.py": B,
        "sub/__init__.py": "",
        "sub/c.py": C,
        "unrelated.py": UNRELATED,
    }

    def write(rel: str, text: str) -> None:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
        importlib.invalidate_caches()

    for rel, text in files.items():
        write(rel, text)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield name, write
    assert not any(m.startswith(name) for m in sys.modules), "fingerprinting imported the code"


def fp(name: str, module: str = "a") -> str:
    return code_fingerprint(f"{name}.{module}", package=name)


def test_closure_follows_relative_and_nested_imports(pkg):
    name, _ = pkg
    assert module_closure(f"{name}.a", package=name) == [
        f"{name}.a",
        f"{name}.b",
        f"{name}.sub.c",
    ]
    assert len(fp(name)) == 16
    int(fp(name), 16)


@pytest.mark.parametrize(
    "edited",
    [
        A.replace("from . import b", "from . import b  # the constant lives in b"),
        A.replace('"""Add b\'s constant."""', '"""Add the constant from b, documented."""'),
        A.replace('"""Module a."""', '"""Module a: now with a longer docstring."""'),
        A.replace("return helper(x) + b.K", "return (\n        helper(x)\n        + b.K\n    )"),
        "\n\n# leading comment\n" + A + "\n\n",
    ],
    ids=["comment", "function-docstring", "module-docstring", "reformat", "blank-lines"],
)
def test_cosmetic_edits_keep_the_fingerprint(pkg, edited):
    name, write = pkg
    before = fp(name)
    write("a.py", edited)
    assert fp(name) == before


def test_docstring_only_body_equals_pass(pkg):
    name, write = pkg
    write("b.py", 'K = 1\n\n\ndef f():\n    """Only a docstring."""\n')
    before = fp(name)
    write("b.py", "K = 1\n\n\ndef f():\n    pass\n")
    assert fp(name) == before


def test_code_edit_in_imported_module_changes_fingerprint(pkg):
    name, write = pkg
    before, digests = fp(name), module_digests(f"{name}.a", package=name)
    write("b.py", "K = 2\n")
    assert fp(name) != before
    changed = module_digests(f"{name}.a", package=name)
    assert [m for m in digests if digests[m] != changed[m]] == [f"{name}.b"]


def test_code_edit_two_levels_down_changes_fingerprint(pkg):
    name, write = pkg
    before = fp(name)
    write("sub/c.py", C.replace("x * K", "x * K + 1"))
    assert fp(name) != before


def test_unrelated_module_edit_keeps_fingerprint(pkg):
    name, write = pkg
    before = fp(name)
    write("unrelated.py", "def other():\n    return 43\n")
    assert fp(name) == before
    assert fp(name, "unrelated") != before


def test_from_package_import_module_and_lazy_import(pkg):
    name, write = pkg
    write("d.py", f"def load():\n    from {name}.sub import c\n    return c\n")
    assert module_closure(f"{name}.d", package=name) == [f"{name}.b", f"{name}.d", f"{name}.sub.c"]


def test_from_package_import_name_includes_package_init(pkg):
    name, write = pkg
    write("sub/__init__.py", "DEFAULT = 3\n")
    write("e.py", "from .sub import DEFAULT\n")
    assert module_closure(f"{name}.e", package=name) == [f"{name}.e", f"{name}.sub"]


def test_missing_import_fails_loudly_naming_the_importer(pkg):
    name, write = pkg
    # `from . import nowhere` could name a variable in __init__; `.nowhere` must be a module.
    write("broken.py", "from .nowhere import thing\n")
    with pytest.raises(ModuleNotFoundError, match=r"broken\.py.*nowhere"):
        fp(name, "broken")


def test_modules_outside_the_package_are_rejected(pkg):
    name, _ = pkg
    with pytest.raises(ValueError, match="not a module"):
        code_fingerprint("json", package=name)
