"""The feature store: round trips, write-once files, old stores, parallel writers, crashes."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from ground.features.store import FeatureStore, feature_key, file_sha256


def tensors(count: int, start: int = 0) -> dict[str, torch.Tensor]:
    return {
        f"key{i:03d}": torch.full((2, 3), float(i), dtype=torch.float16)
        for i in range(start, start + count)
    }


def shard_files(root: Path) -> dict[str, tuple[bytes, int]]:
    return {
        p.name: (p.read_bytes(), p.stat().st_mtime_ns)
        for p in (root / "shards").glob("*.safetensors")
    }


def test_round_trip_keeps_values_shapes_and_dtypes(tmp_path: Path) -> None:
    store = FeatureStore(tmp_path)
    data = tensors(5) | {"wide": torch.arange(12, dtype=torch.float32).reshape(3, 4)}
    with store.writer(shard_size=2) as writer:
        for key, value in data.items():
            writer.add(key, value)
    assert len(shard_files(tmp_path)) == 3  # 6 tensors, 2 per shard
    for reopened in (store, FeatureStore(tmp_path)):
        assert sorted(reopened.keys()) == sorted(data)
        loaded = reopened.load_many(data)
        for key, value in data.items():
            assert loaded[key].dtype == value.dtype and torch.equal(loaded[key], value)
    with pytest.raises(KeyError):
        store.load("absent")


def test_rows_of_one_batch_are_stored_independently(tmp_path: Path) -> None:
    batch = torch.arange(6.0).reshape(3, 2)
    with FeatureStore(tmp_path).writer() as writer:
        for i, row in enumerate(batch):
            writer.add(f"row{i}", row)
        batch.zero_()  # the caller reuses its buffer before the shard is written
    assert FeatureStore(tmp_path).load("row2").tolist() == [4.0, 5.0]


def test_a_second_session_adds_new_shards_and_never_touches_old_ones(tmp_path: Path) -> None:
    with FeatureStore(tmp_path).writer(shard_size=4) as writer:
        for key, value in tensors(6).items():
            writer.add(key, value)
    before = shard_files(tmp_path)
    store = FeatureStore(tmp_path)
    with store.writer(shard_size=2) as writer:
        for key, value in tensors(7, start=3).items():  # 3 already stored, 4 new
            writer.add(key, value)
    after = shard_files(tmp_path)
    assert {name: after[name] for name in before} == before
    assert len(after) == len(before) + 2
    assert len(FeatureStore(tmp_path)) == 10


def test_an_exception_inside_the_writer_keeps_what_was_added(tmp_path: Path) -> None:
    with FeatureStore(tmp_path).writer() as writer:
        writer.add("earlier", torch.ones(2))
    store = FeatureStore(tmp_path)
    with pytest.raises(RuntimeError, match="encoder crashed"):
        with store.writer(shard_size=10) as writer:
            writer.add("added before the crash", torch.zeros(2))
            raise RuntimeError("encoder crashed")
    reopened = FeatureStore(tmp_path)
    assert set(reopened.keys()) == {"earlier", "added before the crash"}
    assert reopened.load("earlier").tolist() == [1.0, 1.0]


def legacy_store(root: Path, data: dict[str, torch.Tensor], shard_size: int) -> Path:
    """A store as written before per-shard index files: shards plus one appended index.jsonl."""
    with FeatureStore(root).writer(shard_size=shard_size) as writer:
        for key, value in data.items():
            writer.add(key, value)
    parts = [p for p in writer.written if p.suffix == ".jsonl"]  # in the order they were appended
    (root / "index.jsonl").write_bytes(b"".join(p.read_bytes() for p in parts))
    for part in parts:
        part.unlink()
    (root / "index").rmdir()
    return root / "index.jsonl"


def test_a_store_written_the_old_way_stays_readable_and_is_never_written_again(tmp_path: Path) -> None:
    index = legacy_store(tmp_path, tensors(4), shard_size=2)
    old = index.read_bytes()
    store = FeatureStore(tmp_path)
    assert sorted(store.keys()) == ["key000", "key001", "key002", "key003"]
    with store.writer() as writer:
        for key, value in tensors(3, start=3).items():  # key003 is already there
            writer.add(key, value)
    assert index.read_bytes() == old
    assert len(list((tmp_path / "index").glob("*.jsonl"))) == 1
    assert len(FeatureStore(tmp_path)) == 6


def test_a_torn_index_line_and_a_stray_tmp_shard_are_ignored(tmp_path: Path) -> None:
    index = legacy_store(tmp_path, tensors(4), shard_size=2)
    index.write_bytes(index.read_bytes()[:-25])  # a crash in the middle of the last line
    (tmp_path / "shards" / ".half-written.safetensors.tmp").write_bytes(b"\x00" * 10)
    (tmp_path / "index").mkdir()
    (tmp_path / "index" / ".half-written.jsonl.tmp").write_bytes(b'{"key": "gho')
    store = FeatureStore(tmp_path)
    assert sorted(store.keys()) == ["key000", "key001", "key002"]
    assert store.load("key002").tolist() == [[2.0] * 3] * 2
    with store.writer() as writer:
        writer.add("key003", torch.zeros(1))
        writer.add("new", torch.zeros(1))
    assert sorted(FeatureStore(tmp_path).keys()) == ["key000", "key001", "key002", "key003", "new"]


def test_two_writers_at_once_write_no_common_file_and_readers_see_both(tmp_path: Path) -> None:
    """Two jobs (threads here; on a cluster, processes on other nodes) fill one store together."""
    import threading

    barrier = threading.Barrier(2)
    written: dict[int, list[Path]] = {}

    def fill(job: int) -> None:
        store = FeatureStore(tmp_path)  # each opens the store before the other has written
        barrier.wait()
        with store.writer(shard_size=3) as writer:
            for key, value in tensors(7, start=100 * job).items():
                writer.add(key, value)
                barrier.wait()  # interleave: every shard of one lands between shards of the other
        written[job] = writer.written

    threads = [threading.Thread(target=fill, args=(job,)) for job in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert set(written[0]).isdisjoint(written[1])
    on_disk = {p for p in tmp_path.rglob("*") if p.is_file()}
    assert on_disk == set(written[0]) | set(written[1])  # nothing shared, no tmp left behind
    assert not (tmp_path / "index.jsonl").exists()
    store = FeatureStore(tmp_path)
    assert sorted(store.keys()) == sorted([*tensors(7), *tensors(7, start=100)])
    assert store.load("key104").tolist() == [[104.0] * 3] * 2


def test_index_lines_of_a_missing_shard_are_ignored(tmp_path: Path) -> None:
    with FeatureStore(tmp_path).writer(shard_size=1) as writer:
        writer.add("a", torch.ones(1))
        writer.add("b", torch.ones(1))
    shard = FeatureStore(tmp_path)._entries["b"]["shard"]
    (tmp_path / "shards" / shard).unlink()
    assert FeatureStore(tmp_path).keys() == ["a"]


def test_feature_key_changes_with_each_of_its_parts() -> None:
    base = feature_key("m" * 64, "clip-vit-l/abc", {"frames": 64, "size": 224})
    assert base == feature_key("m" * 64, "clip-vit-l/abc", {"size": 224, "frames": 64})
    assert base != feature_key("n" * 64, "clip-vit-l/abc", {"frames": 64, "size": 224})
    assert base != feature_key("m" * 64, "clip-vit-l/abd", {"frames": 64, "size": 224})
    assert base != feature_key("m" * 64, "clip-vit-l/abc", {"frames": 32, "size": 224})
    assert len(base) == 64 and int(base, 16) >= 0


def test_file_sha256_matches_hashlib(tmp_path: Path) -> None:
    import hashlib

    path = tmp_path / "blob"
    path.write_bytes(b"x" * 3_000_000)
    assert file_sha256(path) == hashlib.sha256(b"x" * 3_000_000).hexdigest()
