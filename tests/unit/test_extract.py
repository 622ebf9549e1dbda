"""The feature step on real files: only unseen media are encoded, keys follow preprocessing,
a bad file fails by name or is skipped, and the store survives both."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ground.common.config import Features
from ground.common.media import MediaError
from ground.demo.encoders import create_tiny_encoders
from ground.features.extract import cache_features, referenced_media
from ground.features.store import FeatureStore


@pytest.fixture(scope="module")
def encoders(tmp_path_factory) -> dict[str, Path]:
    return create_tiny_encoders(tmp_path_factory.mktemp("enc"), seed=0)


def write_images(folder: Path, names: list[str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    records = folder / "records.jsonl"
    with records.open("a") as out:
        for name in names:
            rng = np.random.default_rng(list(name.encode()))
            path = folder / name
            Image.fromarray(rng.integers(0, 255, (40, 60, 3), dtype=np.uint8)).save(path)
            out.write(json.dumps({"id": name, "image": str(path)}) + "\n")
    return records


def config(tmp_path: Path, encoders: dict[str, Path], **overrides) -> dict:
    import dataclasses

    cfg = dataclasses.asdict(Features(store=str(tmp_path / "store"), shard_size=2))
    cfg["image"]["encoder"] = str(encoders["image"])
    return cfg | overrides


def test_second_run_encodes_only_new_media(tmp_path, encoders):
    cfg = config(tmp_path, encoders)
    records = write_images(tmp_path / "media", ["a.png", "b.png", "c.png"])
    first = cache_features("image", [records], tmp_path / "index.jsonl", cfg)
    assert (first["encoded"], first["cached"]) == (3, 0)
    write_images(tmp_path / "media", ["d.png"])
    second = cache_features("image", [records], tmp_path / "index.jsonl", cfg)
    assert (second["encoded"], second["cached"]) == (1, 3)
    index = [json.loads(line) for line in (tmp_path / "index.jsonl").read_text().splitlines()]
    store = FeatureStore(Path(cfg["store"]) / "image")
    assert len(index) == 4 and all(e["key"] in store for e in index)
    assert store.load(index[0]["key"]).shape == (64, 64)  # patches x hidden, CLS dropped


def test_another_encoder_gives_new_keys(tmp_path, encoders):
    records = write_images(tmp_path / "media", ["a.png"])
    cfg = config(tmp_path, encoders)
    cache_features("image", [records], tmp_path / "i1.jsonl", cfg)
    cfg["image"]["encoder"] = str(create_tiny_encoders(tmp_path / "other", seed=1)["image"])
    again = cache_features("image", [records], tmp_path / "i2.jsonl", cfg)
    assert again["encoded"] == 1
    keys = [json.loads((tmp_path / f).read_text())["key"] for f in ("i1.jsonl", "i2.jsonl")]
    assert keys[0] != keys[1]


def test_bad_media_fails_by_name_or_is_skipped_and_the_store_survives(tmp_path, encoders):
    records = write_images(tmp_path / "media", ["good.png"])
    cfg = config(tmp_path, encoders)
    cache_features("image", [records], tmp_path / "index.jsonl", cfg)
    shards = {p: p.read_bytes() for p in Path(cfg["store"]).rglob("*") if p.is_file()}
    bad = tmp_path / "media" / "bad.png"
    bad.write_bytes(b"not an image at all")
    with records.open("a") as out:
        out.write(json.dumps({"id": "bad", "image": str(bad)}) + "\n")
    with pytest.raises(MediaError, match="bad.png"):
        cache_features("image", [records], tmp_path / "index.jsonl", cfg)
    assert all(p.read_bytes() == data for p, data in shards.items())
    skipped = cache_features("image", [records], tmp_path / "index.jsonl", cfg | {"on_error": "skip"})
    assert [Path(f["media"]).name for f in skipped["failed"]] == ["bad.png"]
    assert skipped["cached"] == 1


def test_referenced_media_reads_the_modality_field_and_names_bad_lines(tmp_path):
    records = tmp_path / "r.jsonl"
    records.write_text('{"sound": "x.wav", "image": "s.png"}\n{"video": "v.mp4"}\n')
    assert referenced_media([records], "audio") == [Path("x.wav")]
    assert referenced_media([records], "image") == [Path("s.png")]
    records.write_text('{"video": "v.mp4"}\n{broken\n')
    with pytest.raises(ValueError, match="r.jsonl:2"):
        referenced_media([records], "video")


def test_sampler_choice_is_not_part_of_the_feature_key_but_frames_are():
    import dataclasses

    from ground.features.extract import preprocess_params

    cfg = dataclasses.asdict(Features())
    seek = preprocess_params("video", cfg)
    cfg["video"]["sampler"] = "single_pass"
    assert preprocess_params("video", cfg) == seek
    cfg["video"]["frames"] = 16
    assert preprocess_params("video", cfg) != seek


def test_shards_encode_disjoint_media_into_one_store(tmp_path, encoders):
    from ground.features.extract import cache_shard
    from ground.features.shards import shard_of

    cfg = config(tmp_path, encoders)
    names = [f"{c}.png" for c in "abcdefgh"]
    records = write_images(tmp_path / "media", names)
    summaries = [cache_shard("image", [records], tmp_path / f"s{i}.jsonl", cfg, i, 3) for i in range(3)]
    indexed = [
        [json.loads(line)["media"] for line in (tmp_path / f"s{i}.jsonl").read_text().splitlines()]
        for i in range(3)
    ]
    assert sorted(m for part in indexed for m in part) == [str(tmp_path / "media" / n) for n in names]
    assert all(shard_of(m, 3) == i for i, part in enumerate(indexed) for m in part)
    assert [s["encoded"] for s in summaries] == [len(part) for part in indexed]
    assert [s["shard"] for s in summaries] == [0, 1, 2]
    # a shard's job finds in the shared store what another shard's job already encoded
    whole = cache_features("image", [records], tmp_path / "all.jsonl", cfg)
    assert (whole["encoded"], whole["cached"]) == (0, 8)
    with pytest.raises(ValueError, match="shard 3"):
        cache_shard("image", [records], tmp_path / "s3.jsonl", cfg, 3, 3)
