"""Load a pickle of plain data only (dicts, lists, tuples, strings, numbers), refusing any call.

    >>> from ground.convert.safe_pickle import load_plain_pickle
    >>> refs = load_plain_pickle(Path("resources/refcoco/refs(unc).p"))  # doctest: +SKIP

A pickle is a program: a global it names (`os.system`, `builtins.open`, ...) gets called while it
loads. Plain containers, strings and numbers have their own opcodes and need no global at all,
so `PlainDataUnpickler.find_class` refuses every global and loading stops before anything runs.
The refer toolkit's `refs(unc).p` / `refs(umd).p` hold only such data. Python-2-era pickles of
old-style or class instances name `copy_reg._reconstructor` or `__builtin__` globals: refused too.
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import Any

# Globals a Python 2 pickle names when it holds objects rather than plain data.
_PY2_OBJECT_MODULES = frozenset({"copy_reg", "copyreg", "__builtin__"})


class UnsafePickleError(pickle.UnpicklingError):
    """The pickle asked for a global (a class or function to call): it is not plain data."""


class PlainDataUnpickler(pickle.Unpickler):
    """An unpickler whose `find_class` refuses every global, so loading can call nothing."""

    def find_class(self, module: str, name: str) -> Any:
        if module in _PY2_OBJECT_MODULES:
            raise UnsafePickleError(
                f"refusing global {module}.{name}: a Python-2-era pickle of objects, "
                "not plain data (dicts, lists, strings, numbers)"
            )
        raise UnsafePickleError(
            f"refusing global {module}.{name}: only plain data (dicts, lists, strings, numbers) "
            "may be unpickled, nothing may be called"
        )

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafePickleError(f"refusing persistent id {pid!r}: not plain data")


def loads_plain(data: bytes, source: str = "<bytes>") -> Any:
    """Unpickle `data` as plain data; errors name `source` (a file name) and the refused global."""
    # latin1 maps every byte of a Python 2 `str` to one character and never fails; the refer
    # files' strings are ASCII, for which it is exact.
    unpickler = PlainDataUnpickler(io.BytesIO(data), encoding="latin1")
    try:
        return unpickler.load()
    except UnsafePickleError as err:
        raise UnsafePickleError(f"{source}: {err}") from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError) as err:
        raise pickle.UnpicklingError(f"{source}: not a readable pickle: {err}") from None


def load_plain_pickle(path: Path) -> Any:
    """The plain data pickled in `path`; UnsafePickleError (naming file and global) otherwise."""
    path = Path(path)
    return loads_plain(path.read_bytes(), source=path.as_posix())
