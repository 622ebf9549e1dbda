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

from ground.workflow.fingerprint import code_fingerprint, module_closure, module_digests

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


# Statement-level reachability: moves are invisible, unreached edits too, reached ones are not.

MOVED_A = A.replace("from .sub.c import helper", "from .sub.d import helper")
C_WITHOUT_HELPER = "SCALE = 2\n"


@pytest.mark.parametrize(
    ("a_text", "c_text"),
    [
        (MOVED_A, C_WITHOUT_HELPER),
        (MOVED_A, C),  # the old copy left behind, unreached
        (A, "from .d import helper  # re-exported from its new home\n"),
    ],
    ids=["import-from-new-home", "stale-copy-left", "re-export"],
)
def test_moving_a_function_to_a_new_module_keeps_the_fingerprint(pkg, a_text, c_text):
    name, write = pkg
    before = fp(name)
    write("sub/d.py", C)
    write("sub/c.py", c_text)
    write("a.py", a_text)
    assert fp(name) == before
    assert f"{name}.sub.d" in module_closure(f"{name}.a", package=name)


WHOLE = """
from __future__ import annotations

import math


def area(r: float) -> float:
    return math.pi * r * r


def side(a: float) -> float:
    return math.sqrt(a)
"""

HALF = """
from __future__ import annotations

import math


def {fn}
"""


def test_splitting_a_module_in_two_keeps_the_fingerprint(pkg):
    name, write = pkg
    write("geometry.py", WHOLE)
    write("user.py", "from .geometry import area, side\n\nBOTH = (area, side)\n")
    before = fp(name, "user")
    area, side = WHOLE.split("def ")[1:]
    write("circles.py", HALF.format(fn=area))
    write("squares.py", HALF.format(fn=side))
    write(
        "user.py", "from .circles import area\nfrom .squares import side\n\nBOTH = (area, side)\n"
    )
    assert fp(name, "user") == before
    write("squares.py", HALF.format(fn=side.replace("sqrt(a)", "sqrt(a) + 1")))
    assert fp(name, "user") != before


def test_only_reached_functions_of_an_imported_module_count(pkg):
    name, write = pkg
    write("sub/c.py", C + "\n\ndef unused(x):\n    return x - K\n")
    before = fp(name)
    write("sub/c.py", C + "\n\ndef unused(x):\n    return x - 2 * K\n")
    assert fp(name) == before, "a.run never calls unused"
    write(
        "sub/c.py", C.replace("x * K", "x * K * 2") + "\n\ndef unused(x):\n    return x - 2 * K\n"
    )
    assert fp(name) != before


ANNOTATED = """
from __future__ import annotations


class Thing:
    size = {size}


def measure(x: "Thing") -> int:
    return 0
"""


def test_a_name_only_in_a_string_annotation_counts(pkg):
    name, write = pkg
    write("things.py", ANNOTATED.format(size=1))
    write("user.py", "from .things import measure\n\nCHECK = measure\n")
    before = fp(name, "user")
    write("things.py", ANNOTATED.format(size=2))
    assert fp(name, "user") != before


@pytest.mark.parametrize(
    ("before_text", "after_text"),
    [
        ("REGISTRY = []\nREGISTRY.append('x')\n", "REGISTRY = []\nREGISTRY.append('y')\n"),
        (
            "if __name__ == '__main__':\n    print(1)\n",
            "if __name__ == '__main__':\n    print(2)\n",
        ),
    ],
    ids=["registry-append", "main-guard"],
)
def test_module_level_side_effects_count_unreferenced(pkg, before_text, after_text):
    name, write = pkg
    write("sub/c.py", C + "\n" + before_text)
    before = fp(name)
    write("sub/c.py", C + "\n" + after_text)
    assert fp(name) != before


SCRIPT = """
from {module} import run

print(run({arg}))
"""


def test_files_count_the_script_and_what_it_reaches(pkg, tmp_path):
    name, write = pkg
    script = tmp_path / "scripts" / "adapter.py"
    script.parent.mkdir()

    def script_fp(module: str = f"{name}.a", arg: int = 2) -> str:
        script.write_text(SCRIPT.format(module=module, arg=arg))
        return code_fingerprint(files=[script], package=name)

    before = script_fp()
    assert before != fp(name), "the script's own statements count"
    assert script_fp(arg=3) != before
    write("sub/c.py", C.replace("x * K", "x * K + 1"))
    edited = script_fp()
    assert edited != before
    # The same code moved to `steps/a.py`: only the import paths differ.
    write("steps/__init__.py", "")
    write("steps/a.py", A.replace("from . import b", "from .. import b").replace(".sub", "..sub"))
    assert script_fp(module=f"{name}.steps.a") == edited
    assert code_fingerprint(f"{name}.a", files=[str(script)], package=name) == edited


def test_external_import_change_changes_the_fingerprint(pkg):
    name, write = pkg
    write("sub/c.py", "import math\n" + C.replace("x * K", "math.floor(x * K)"))
    before = fp(name)
    write("sub/c.py", "import cmath as math\n" + C.replace("x * K", "math.floor(x * K)"))
    assert fp(name) != before


def test_importlib_targets_and_python_m_entry_points_spelled_in_strings_count(pkg):
    name, write = pkg
    write("sub/__main__.py", "from .c import helper\n\nprint(helper(1))\n")
    write("plugins.py", f'CONVERTER = "{name}.sub.c:helper"\nCOMMAND = ["-m", "{name}.sub"]\n')
    write("user.py", "from .plugins import CONVERTER, COMMAND\n")
    before = fp(name, "user")
    write("sub/c.py", C.replace("x * K", "x * K + 1"))
    with_helper_edit = fp(name, "user")
    assert with_helper_edit != before
    write("sub/__main__.py", "from .c import helper\n\nprint(helper(2))\n")
    assert fp(name, "user") != with_helper_edit


def test_imports_inside_a_reached_function_are_followed_to_the_name(pkg):
    name, write = pkg
    write("lazy.py", "def load(x):\n    from .sub.c import helper\n\n    return helper(x)\n")
    write("sub/c.py", C + "\n\ndef unused():\n    return 0\n")
    before = fp(name, "lazy")
    write("sub/c.py", C + "\n\ndef unused():\n    return 1\n")
    assert fp(name, "lazy") == before
    write("sub/c.py", C.replace("x * K", "x + K") + "\n\ndef unused():\n    return 1\n")
    assert fp(name, "lazy") != before


def test_missing_import_in_an_unreached_function_still_fails_loudly(pkg):
    name, write = pkg
    write("sub/c.py", C + "\n\ndef unused():\n    from ..nowhere import thing\n")
    with pytest.raises(ModuleNotFoundError, match=r"c\.py.*nowhere"):
        fp(name)


def test_strings_that_only_look_like_module_paths_are_ignored(pkg):
    name, write = pkg
    hints = [f"{name}.nowhere.thing", f"{name}.nowhere:thing", f"{name}.b.K"]
    write("b.py", f"K = 1\nHINTS = {hints!r}\n")
    assert len(fp(name)) == 16


def test_order_and_names_of_nested_in_package_imports_do_not_count(pkg):
    """An import sorter reordering a function's imports, or a move renaming their paths."""
    name, write = pkg
    write("e.py", "def f():\n    from .b import K\n    from .sub.c import helper\n    return helper(K)\n")
    before = fp(name, "e")
    write("e.py", "def f():\n    from .sub.c import helper\n    from .b import K\n    return helper(K)\n")
    assert fp(name, "e") == before
    write("e.py", "def f():\n    from .sub.c import helper\n    from .b import K\n    return helper(K + 1)\n")
    assert fp(name, "e") != before


def test_module_paths_in_strings_are_erased_but_other_dotted_text_counts(pkg):
    name, write = pkg
    write("e.py", f'WHERE = "{name}.b"\nDB = "results/{name}.duckdb"\n')
    before = fp(name, "e")
    write("moved/__init__.py", "")
    write("moved/b.py", B)
    write("e.py", f'WHERE = "{name}.moved.b"\nDB = "results/{name}.duckdb"\n')
    assert fp(name, "e") == before  # the same module's code, now elsewhere
    write("e.py", f'WHERE = "{name}.moved.b"\nDB = "results/{name}.db"\n')
    assert fp(name, "e") != before
