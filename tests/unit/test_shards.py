"""Splitting the feature step into shard jobs: stable assignment, digests that change only for
the shard whose media changed, the per-process digest cache, and the gather of shard indexes."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ground.features.shards import (
    digest,
    gather_indexes,
    planned_digests,
    shard_digests,
    shard_of,
    split_media,
    write_listing,
)


def test_shard_of_is_sha256_of_the_path_and_the_same_in_every_process():
    path = "resources/demo/media/images/train_000.png"
    expected = int.from_bytes(hashlib.sha256(path.encode()).digest()[:8], "big") % 64
    assert shard_of(path, 64) == shard_of(Path(path), 64) == expected == 62
    # a fresh interpreter with another hash seed agrees (Python's hash() would not)
    code = f"from ground.features.shards import shard_of; print(shard_of({path!r}, 64))"
    env = os.environ | {"PYTHONHASHSEED": "123"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "62"
    assert all(shard_of(f"m{i}", 1) == 0 for i in range(50))
    with pytest.raises(ValueError):
        shard_of(path, 0)


def test_every_media_lands_in_exactly_one_shard_and_shards_are_balanced():
    media = [f"media/videos/v{i:06d}.mp4" for i in range(20_000)]
    parts = split_media(media + media[:10], 16)  # duplicates are one media
    flat = [str(p) for part in parts for p in part]
    assert sorted(flat) == sorted(media)
    assert all(part == sorted(part) for part in parts)
    mean = len(media) / 16
    assert all(abs(len(part) - mean) < 0.1 * mean for part in parts), [len(p) for p in parts]
    # a media file's shard depends on its path alone, not on which other media exist
    assert split_media(media[:100], 16)[shard_of(media[7], 16)].count(Path(media[7])) == 1


def records(path: Path, media: list[str], field: str = "image") -> Path:
    path.write_text("".join(json.dumps({"id": m, field: m}) + "\n" for m in media))
    return path


def test_new_media_change_only_the_digest_of_their_shard(tmp_path):
    media = [f"img/{i}.png" for i in range(40)]
    before = shard_digests([records(tmp_path / "a.jsonl", media)], "image", 4)
    assert len(set(before)) == 4
    new = "img/new.png"
    after = shard_digests([records(tmp_path / "a.jsonl", [*media, new])], "image", 4)
    changed = [i for i in range(4) if before[i] != after[i]]
    assert changed == [shard_of(new, 4)]
    assert after[changed[0]] == digest(split_media([*media, new], 4)[changed[0]])


def test_planned_digests_wait_for_missing_data_and_follow_edits(tmp_path):
    data = tmp_path / "a.jsonl"
    assert planned_digests([str(data)], "image", 2) is None  # not converted yet
    records(data, ["x.png"])
    first = planned_digests([str(data)], "image", 2)
    assert first == shard_digests([data], "image", 2)
    records(data, ["x.png", "yy.png"])
    os.utime(data, ns=(1, 1))  # another size and mtime: not the cached answer
    assert planned_digests([str(data)], "image", 2) == shard_digests([data], "image", 2) != first


def test_listing_counts_media_per_shard(tmp_path):
    data = records(tmp_path / "a.jsonl", [f"s{i}.wav" for i in range(9)], field="sound")
    listing = write_listing([data], "audio", 3, tmp_path / "out/shards.json")
    assert sum(listing["media"]) == 9 and listing["digests"] == shard_digests([data], "audio", 3)
    assert json.loads((tmp_path / "out/shards.json").read_text()) == listing


def summary(shard: int, media: int, failed: list[str] = ()) -> dict:
    fails = [{"media": m, "error": "unreadable"} for m in failed]
    return {"modality": "video", "shard": shard, "media": media, "encoded": 1, "cached": media - 1,
            "failed": fails}  # fmt: skip


def test_gather_merges_shard_indexes_sorted_with_their_failures(tmp_path):
    one, two = tmp_path / "shard0.index.jsonl", tmp_path / "shard1.index.jsonl"
    one.write_text('{"media": "b.mp4", "key": "kb"}\n{"media": "d.mp4", "key": "kd"}\n')
    two.write_text('{"media": "a.mp4", "key": "ka"}\n')
    out = tmp_path / "video.index.jsonl"
    result = gather_indexes([one, two], [summary(0, 2), summary(1, 2, ["c.mp4"])], out)
    assert [json.loads(line) for line in out.read_text().splitlines()] == [
        {"media": m, "key": f"k{m[0]}"} for m in ("a.mp4", "b.mp4", "d.mp4")
    ]
    assert (result["media"], result["indexed"], result["shards"]) == (4, 3, 2)
    assert [f["media"] for f in result["failed"]] == ["c.mp4"]
    assert [s["failed"] for s in result["by_shard"]] == [0, 1]
    empty = tmp_path / "shard2.index.jsonl"
    empty.write_text("")
    gather_indexes([empty], [summary(2, 0)], out)
    assert out.read_text() == ""


def test_gather_refuses_a_media_file_in_two_shards(tmp_path):
    one, two = tmp_path / "shard0.index.jsonl", tmp_path / "shard1.index.jsonl"
    one.write_text('{"media": "a.mp4", "key": "k1"}\n')
    two.write_text('{"media": "x.mp4", "key": "k2"}\n{"media": "a.mp4", "key": "k1"}\n')
    with pytest.raises(ValueError, match="shard1.index.jsonl:2: a.mp4 is also in .*shard0"):
        gather_indexes([one, two], [summary(0, 1), summary(1, 2)], tmp_path / "out.jsonl")
