"""Cached code fingerprints: reused while no file changed, recomputed after any edit.

.venv/bin/pytest tests/unit/test_codecache.py -q
"""

from __future__ import annotations

import importlib
import itertools
import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from ground.workflow import codecache
from ground.workflow.fingerprint import code_fingerprint

_counter = itertools.count()
HOUR_AGO = time.time() - 3600
# Files written by a test are as fresh as their ctime, which no utime can age: a shorter racy
# window (still above any clock's granularity), waited out after each write.
RACY_S = 0.05


@pytest.fixture
def pkg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[str, Path, list[int]]:
    """A package `ground_cc_test_N` (a.py imports b.py) on sys.path, its files' mtimes an hour
    old; yields (name, its folder, a list that grows by one per real fingerprint computation)."""
    name = f"ground_cc_test_{next(_counter)}"
    root = tmp_path / "site" / name
    root.mkdir(parents=True)
    (root / "__init__.py").write_text("")
    (root / "a.py").write_text("from . import b\n\n\ndef run():\n    return b.K\n")
    (root / "b.py").write_text("K = 1\n")
    age(root)
    importlib.invalidate_caches()
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    monkeypatch.setattr(codecache, "_memory", {})
    monkeypatch.setattr(codecache, "RACY_S", RACY_S)
    calls: list[int] = []
    real = codecache.code_fingerprint

    def counting(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(codecache, "code_fingerprint", counting)
    return name, root, calls


def age(*paths: Path) -> None:
    """Old mtimes, and the racy window waited out."""
    for path in [p for root in paths for p in (root, *root.rglob("*"))]:
        os.utime(path, (HOUR_AGO, HOUR_AGO))
    time.sleep(2 * RACY_S)


def fingerprint(name: str, cache: Path) -> Callable[[], str]:
    return lambda: codecache.cached_fingerprint(f"{name}.a", package=name, cache=cache)


def test_stored_once_then_read_from_the_file_by_a_new_process(pkg, tmp_path):
    name, _, calls = pkg
    cache = tmp_path / ".snakemake/ground/fingerprints.json"
    fp = fingerprint(name, cache)
    first = fp()
    assert first == code_fingerprint(f"{name}.a", package=name) and cache.is_file()
    assert fp() == first and len(calls) == 1
    codecache._memory.clear()  # what a new process starts with
    assert fp() == first and len(calls) == 1


def test_an_edit_changes_the_fingerprint_even_with_size_and_mtime_kept(pkg, tmp_path):
    name, root, calls = pkg
    fp = fingerprint(name, tmp_path / "fingerprints.json")
    before = fp()
    (root / "b.py").write_text("K = 2\n")  # same size
    age(root)  # same mtime: only the ctime tells
    after = fp()
    assert after != before and after == code_fingerprint(f"{name}.a", package=name)
    assert len(calls) == 2


def test_a_new_module_changes_the_state(pkg, tmp_path):
    """`from . import c` in a.py would find a module that did not exist before: the package
    folder's entries are part of the key."""
    name, root, calls = pkg
    fp = fingerprint(name, tmp_path / "fingerprints.json")
    fp()
    (root / "c.py").write_text("X = 3\n")
    age(root)
    fp()
    assert len(calls) == 2


def test_a_script_file_is_part_of_the_key(pkg, tmp_path):
    name, _, calls = pkg
    script = tmp_path / "adapter.py"
    script.write_text("print(1)\n")
    age(script)
    cache = tmp_path / "fingerprints.json"
    before = codecache.cached_fingerprint(f"{name}.a", package=name, files=[script], cache=cache)
    script.write_text("print(2)\n")
    after = codecache.cached_fingerprint(f"{name}.a", package=name, files=[script], cache=cache)
    assert before != after and len(calls) == 2


def test_a_file_changed_just_now_is_not_trusted(pkg, tmp_path):
    """Within the clock's granularity a second edit could keep every stat field: nothing is
    stored while a file is that fresh, so the next call computes again."""
    name, root, calls = pkg
    cache = tmp_path / "fingerprints.json"
    fp = fingerprint(name, cache)
    (root / "b.py").write_text("K = 3\n")
    os.utime(root / "b.py", (HOUR_AGO, HOUR_AGO))  # an old mtime, a fresh ctime
    first = fp()
    assert not cache.exists()
    (root / "b.py").write_text("K = 4\n")
    os.utime(root / "b.py", (HOUR_AGO, HOUR_AGO))
    assert fp() != first and len(calls) == 2


def test_a_corrupt_cache_file_is_recomputed(pkg, tmp_path):
    name, _, calls = pkg
    cache = tmp_path / "fingerprints.json"
    cache.write_text("{not json")
    assert fingerprint(name, cache)() == code_fingerprint(f"{name}.a", package=name)
    assert len(calls) == 1


def test_shard_digests_are_reused_until_a_record_changes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The DAG's shard digests: the first call computes and stores them, later processes read
    them back (a cache that kept answering would fail the edit below), an edit recomputes."""
    from ground.features import shards

    monkeypatch.setattr(codecache, "RACY_S", RACY_S)
    monkeypatch.setattr(codecache, "_memory", {})
    data, cache = tmp_path / "a.jsonl", tmp_path / "digests.json"
    assert codecache.cached_digests([str(data)], "image", 4, cache) is None  # not converted yet
    data.write_text("".join(f'{{"id": {i}, "image": "img/{i}.png"}}\n' for i in range(20)))
    time.sleep(2 * RACY_S)
    expected = shards.shard_digests([data], "image", 4)
    assert codecache.cached_digests([str(data)], "image", 4, cache) == expected
    calls: list[int] = []
    real = shards.planned_digests
    monkeypatch.setattr(shards, "planned_digests", lambda *a: calls.append(1) or real(*a))
    codecache._memory.clear()  # what a new process starts with
    assert codecache.cached_digests([str(data)], "image", 4, cache) == expected
    assert codecache.cached_digests([str(data)], "video", 4, cache) == [shards.digest([])] * 4
    assert calls == [1]  # the image digests came from the file, the video ones were computed
    data.write_text(data.read_text() + '{"id": 99, "image": "img/new.png"}\n')
    time.sleep(2 * RACY_S)
    edited = codecache.cached_digests([str(data)], "image", 4, cache)
    assert edited == shards.shard_digests([data], "image", 4) != expected and calls == [1, 1]
