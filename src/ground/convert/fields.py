"""Checks of raw records' fields for the converters: each returns the value or raises
RejectRecord, whose message is the reason put in the convert manifest.

    >>> with at("objects[2]"):
    ...     width = positive_field(raw, "width")   # "objects[2]: field 'width' must be ..."
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


class RejectRecord(ValueError):
    """A raw record that cannot be converted; the message is the reason put in the manifest."""


def field(raw: dict[str, Any], name: str) -> Any:
    if name not in raw:
        raise RejectRecord(f"missing field {name!r}")
    return raw[name]


def text_field(raw: dict[str, Any], name: str) -> str:
    value = field(raw, name)
    if not isinstance(value, str) or not value.strip():
        raise RejectRecord(f"field {name!r} must be a non-empty string, got {value!r}")
    return value.strip()


def positive_field(raw: dict[str, Any], name: str) -> float:
    value = field(raw, name)
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise RejectRecord(f"field {name!r} must be a positive number, got {value!r}")
    return value


def list_field(raw: dict[str, Any], name: str) -> list[Any]:
    value = field(raw, name)
    if not isinstance(value, list):
        raise RejectRecord(f"field {name!r} must be a list, got {type(value).__name__}")
    return value


@contextmanager
def at(where: str) -> Iterator[None]:
    """Prefix a rejection (or a format check's ValueError) with where in the record it arose."""
    try:
        yield
    except ValueError as err:
        raise RejectRecord(f"{where}: {err}") from None


def index_field(raw: dict[str, Any], name: str, length: int, into: str) -> int:
    value = field(raw, name)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < length:
        raise RejectRecord(
            f"field {name!r}={value!r} is not an index into {into} (0..{length - 1})"
        )
    return value


def finite_number(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise RejectRecord(f"{what} {value!r} is not a finite number")
    return float(value)


def plain_text(value: Any, what: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise RejectRecord(f"{what} {value!r} is not a non-empty string")
    return value.strip()
