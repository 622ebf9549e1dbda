"""The convert step for catalog datasets: every converter reached by its catalog name, media
paths under the dataset's media folder, the authors' JSON as an alternative, missing files named
with the fix."""

import json
import shutil
from pathlib import Path

import pytest

from ground.common.catalog import DATASETS
from ground.common.formats import (
    FLOAT2,
    FLOAT3,
    Coords,
    parse_boxes,
    parse_spans,
    recipe_forms,
    writing,
)
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


def grounding(text: str, boxes: Coords, spans: Coords) -> tuple[list, list] | None:
    try:
        return parse_boxes(text, boxes), parse_spans(text, spans)
    except ValueError:  # text-only records keep bracketed code as it is
        return None


def test_every_converter_writes_the_recipes_coordinate_form(tmp_path: Path) -> None:
    """`convert.coords=bins:100` / `convert.spans=bins:100` through every real converter and the
    authors' JSON: the same records, every box and span in bins, within a bin of the default's."""
    bins = Coords.parse("bins:100")
    counted = {"boxes": 0, "spans": 0}
    for name, authors in [(n, False) for n in RAW] + [("refcoco", True)]:
        texts = {}
        for form in ("float3", "bins:100"):
            out = tmp_path / f"{name}-{authors}-{form.replace(':', '')}.jsonl"
            if authors:
                with writing(*recipe_forms({"coords": form, "spans": form.replace("3", "2")})):
                    convert_published(name, "train", FIXTURES, out, tmp_path / "m.json", seed=0,
                                      max_reject_fraction=1.0, authors=True)  # fmt: skip
            else:
                convert_dataset(name, "train", FIXTURES, out, tmp_path / "m.json", seed=0, max_reject_fraction=1.0,
                                coords=form, spans=form.replace("3", "2"))  # fmt: skip
            texts[form] = {r["id"]: [t["value"] for t in r["conversations"]]
                           for r in map(json.loads, out.read_text().splitlines())}  # fmt: skip
        assert texts["float3"].keys() == texts["bins:100"].keys(), name
        for key, turns in texts["float3"].items():
            for default, binned in zip(turns, texts["bins:100"][key], strict=True):
                expected = grounding(default, FLOAT3, FLOAT2)
                if expected is None or expected == ([], []):
                    continue
                got = grounding(binned, bins, bins)
                assert got is not None, (name, binned)
                for kind, want, have in zip(("boxes", "spans"), expected, got, strict=True):
                    assert len(have) == len(want), (name, default, binned)
                    for a, b in zip(want, have, strict=True):
                        assert a == pytest.approx(b, abs=bins.tolerance + FLOAT2.tolerance), (name, default, binned)
                    counted[kind] += len(want)
    assert counted["boxes"] > 10 and counted["spans"] > 10, counted
