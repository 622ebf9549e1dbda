"""Shared by the end-to-end and cluster tests: a private copy of the project to run `ground` in."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _copy(root: Path) -> Path:
    """Snakefile, recipe, rules, envs, profiles and src/ under `root`: tests may edit code and media there
    without touching the checkout (`ground` runs with `root/src` first on PYTHONPATH)."""
    for name in ("Snakefile", "config.yaml"):
        shutil.copy(REPO / name, root / name)
    for name in ("rules", "src", "envs", "profiles"):
        shutil.copytree(REPO / name, root / name, ignore=shutil.ignore_patterns("__pycache__"))
    return root


@pytest.fixture(scope="session")
def copy_project() -> Callable[[Path], Path]:
    return _copy
