"""The convert step for catalog datasets: every converter reached by its catalog name, media
paths under the dataset's media folder, the authors' JSON as an alternative, missing files named
with the fix."""

import json
import shutil
from pathlib import Path

import pytest

from ground.common.catalog import DATASETS
from ground.convert.published import convert_published
from ground.convert.run import convert_dataset

FIXTURES = Path(__file__).parents[1] / "fixtures"
RAW = sorted(p.name for p in (FIXTURES / "raw").iterdir() if p.name in DATASETS)


def test_every_training_source_has_a_fixture_in_its_published_format() -> None:
    evalsets = {"charades_sta", "refcoco", "refcoco+", "refcocog", "vggss"}  # tests/fixtures/evalsets
    assert set(RAW) | evalsets == set(DATASETS)


@pytest.mark.parametrize("name", RAW)
def test_each_dataset_converts_through_the_step(name: str, tmp_path: Path) -> None:
    out, manifest = tmp_path / "out.jsonl", tmp_path / "out.manifest.json"
    summary = convert_dataset(name, "train", FIXTURES, out, manifest, seed=0, max_reject_fraction=1.0)
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert records and summary["records_out"] == len(records)
    media_root = f"{FIXTURES.as_posix()}/media/{DATASETS[name].media}/"
    for record in records:
        media = [record[k] for k in ("image", "video", "sound") if k in record]
        assert all(m.startswith(media_root) for m in media), (name, media)
        assert record["conversations"][0]["from"] == "human"
    written = json.loads(manifest.read_text())
    assert written["source"] == "published" and written["rejected"] == summary["rejected"]
    assert {r["id"] for r in records} == {json.loads(line)["id"] for line in out.read_text().splitlines()}
    assert len({r["id"] for r in records}) == len(records)


def test_the_authors_json_is_taken_instead_when_asked(tmp_path: Path) -> None:
    out, manifest = tmp_path / "refcoco.jsonl", tmp_path / "m.json"
    summary = convert_published("refcoco", "train", FIXTURES, out, manifest, seed=0,
                                max_reject_fraction=1.0, authors=True)  # fmt: skip
    assert summary["source"] == "authors"
    assert summary["raw"] == [(FIXTURES / "raw/authors/Stage2/refcoco.json").as_posix()]
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert records and all(r["image"].startswith(f"{FIXTURES.as_posix()}/media/coco/") for r in records)


def test_missing_published_files_name_the_manual_step(tmp_path: Path) -> None:
    (tmp_path / "raw" / "didemo").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match=r"didemo/train: missing .*train_data\.json.*"
                       r"TemporalLanguageRelease"):  # fmt: skip
        convert_published("didemo", "train", tmp_path, tmp_path / "o", tmp_path / "m", seed=0)
    assert not (tmp_path / "o").exists()


def test_wavcaps_needs_only_some_of_its_sources(tmp_path: Path) -> None:
    raw = tmp_path / "raw" / "wavcaps"
    raw.mkdir(parents=True)
    shutil.copy(FIXTURES / "raw/wavcaps/sb_final.json", raw)
    summary = convert_published("wavcaps", "train", tmp_path, tmp_path / "o", tmp_path / "m",
                                seed=0, max_reject_fraction=1.0)  # fmt: skip
    assert summary["records_out"] > 0
