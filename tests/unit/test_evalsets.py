"""Evaluation-set converters on hand-written files in the published formats; the safe unpickler.

.venv/bin/pytest tests/unit/test_evalsets.py
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any

import pytest

from ground.common.formats import parse_boxes
from ground.convert.safe_pickle import UnsafePickleError, load_plain_pickle
from ground.convert.sources.evalsets import (
    EVALSETS,
    clipping_report,
    convert_charades_sta,
    convert_raw_dir,
    convert_refcoco,
    convert_vggss,
)
from ground.convert.templates import POOLS

FIXTURES = Path(__file__).parents[1] / "fixtures" / "evalsets"


def human_question(record: dict[str, Any]) -> str:
    return record["conversations"][0]["value"]


def answer(record: dict[str, Any]) -> str:
    return record["conversations"][1]["value"]


def by_id(records: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {r["id"]: r for r in records}


# ---------------------------------------------------------------------------- Charades-STA


def charades(seed: int = 0) -> tuple[list[dict], list[dict]]:
    return convert_charades_sta(
        FIXTURES / "charades_sta_test.txt", FIXTURES / "Charades_v1_test.csv", "test", seed
    )


def test_charades_records_spans_and_schema() -> None:
    records, _ = charades()
    assert [r["id"] for r in records] == [
        "charades_sta-test-3MSZA-temporal_grounding-0",
        "charades_sta-test-3MSZA-temporal_grounding-1",
        "charades_sta-test-AO8RW-temporal_grounding-0",
        "charades_sta-test-AO8RW-temporal_grounding-1",
    ]
    first = records[0]
    # 24.3 / 32.08 = 0.7575, 30.4 / 32.08 = 0.9476
    assert answer(first) == "{0.76, 0.95}"
    assert first["video"] == "Charades_v1_480/3MSZA.mp4"
    assert first["task"] == "temporal_grounding" and first["split"] == "test"
    assert human_question(first).startswith("<video>\n")
    assert "person turns on the light." in human_question(first)
    meta = first["meta"]
    assert meta["video_id"] == "3MSZA" and meta["query"] == "person turns on the light."
    assert meta["segment_s"] == [24.3, 30.4] and meta["duration"] == 32.08
    assert "clipped" not in meta


def test_charades_end_past_duration_is_clipped_and_reported() -> None:
    records, _ = charades()
    record = by_id(records)["charades_sta-test-AO8RW-temporal_grounding-1"]
    assert record["meta"]["segment_s"] == [28.0, 33.0]
    assert record["meta"]["clipped"] == {"end_s": 36.5}
    assert answer(record) == "{0.85, 1.00}"  # 28 / 33 = 0.848
    assert clipping_report(records) == [{"id": record["id"], "clipped": {"end_s": 36.5}}]


def test_charades_rejections_name_the_line() -> None:
    _, rejected = charades()
    assert [r["line"] for r in rejected] == [5, 7, 8, 9]
    reasons = [r["reason"] for r in rejected]
    assert reasons[0].startswith("charades_sta_test.txt:5: ") and "no positive length" in reasons[0]
    assert "'this line is broken'" in reasons[1]
    assert "start 12.0 s is not before end 12.0 s" in reasons[2]
    assert "'ZZZZZ' is not in Charades_v1_test.csv" in reasons[3]


def test_charades_stable_across_runs_and_seeded() -> None:
    assert charades(seed=0) == charades(seed=0)
    questions = {human_question(r) for seed in range(20) for r in charades(seed)[0][:1]}
    assert len(questions) > 1  # the seed changes which template is drawn


def test_charades_csv_without_length_column_fails(tmp_path: Path) -> None:
    bad = tmp_path / "Charades_v1_test.csv"
    bad.write_text("id,subject\n3MSZA,HR43\n")
    with pytest.raises(ValueError, match=r"lacks column\(s\) \['length'\]"):
        convert_charades_sta(FIXTURES / "charades_sta_test.txt", bad, "test", 0)


# ---------------------------------------------------------------------------- RefCOCO


def sentence(sent_id: int, text: str) -> dict[str, Any]:
    return {"sent": text, "raw": text.capitalize(), "tokens": text.split(), "sent_id": sent_id}


REFS = [
    {
        "ref_id": 0,
        "ann_id": 1719310,
        "image_id": 580957,
        "split": "testA",
        "file_name": "COCO_train2014_000000580957_1719310.jpg",
        "category_id": 1,
        "sent_ids": [0, 1],
        "sentences": [sentence(0, "man in red shirt"), sentence(1, "left guy")],
    },
    {
        "ref_id": 1,
        "ann_id": 1724819,
        "image_id": 98304,
        "split": "testA",
        "file_name": "COCO_train2014_000000098304_1724819.jpg",
        "category_id": 1,
        "sent_ids": [2],
        "sentences": [sentence(2, "woman standing")],
    },
    {
        "ref_id": 2,
        "ann_id": 9999999,
        "image_id": 98304,
        "split": "testA",
        "file_name": "x.jpg",
        "category_id": 1,
        "sent_ids": [3],
        "sentences": [sentence(3, "gone")],
    },
    {
        "ref_id": 3,
        "ann_id": 2000000,
        "image_id": 98304,
        "split": "testA",
        "file_name": "y.jpg",
        "category_id": 1,
        "sent_ids": [4],
        "sentences": [sentence(4, "flat")],
    },
    {
        "ref_id": 4,
        "ann_id": 1719310,
        "image_id": 580957,
        "split": "val",
        "file_name": "z.jpg",
        "category_id": 1,
        "sent_ids": [5],
        "sentences": [sentence(5, "val")],
    },
]


@pytest.fixture
def refs_pickle(tmp_path: Path) -> Path:
    path = tmp_path / "refs(unc).p"
    path.write_bytes(pickle.dumps(REFS, protocol=2))
    return path


def refcoco(refs_pickle: Path, split: str = "testA", seed: int = 0) -> tuple[list, list]:
    return convert_refcoco(refs_pickle, FIXTURES / "instances.json", "refcoco", split, seed)


def test_refcoco_one_record_per_sentence_with_padded_square_box(refs_pickle: Path) -> None:
    records, _ = refcoco(refs_pickle)
    assert [r["id"] for r in records] == [
        "refcoco-testA-0-rec-0",
        "refcoco-testA-0-rec-1",
        "refcoco-testA-1-rec-0",
    ]
    first = records[0]
    # 640x427 image, pad 106.5 px top and bottom to a 640 square; bbox xywh -> xyxy
    # [103.93, 299.99, 238.15, 377.46]: x / 640 and (y + 106.5) / 640.
    assert answer(first) == "[0.162, 0.635, 0.372, 0.756]"
    assert first["image"] == "train2014/COCO_train2014_000000580957.jpg"
    assert human_question(first).startswith("<image>\n") and "man in red shirt" in human_question(
        first
    )
    assert first["meta"] | {"raw_id": None} == {
        "image_id": 580957,
        "ann_id": 1719310,
        "bbox_xywh": [103.93, 299.99, 134.22, 77.47],
        "width": 640,
        "height": 427,
        "expression": "man in red shirt",
        "ref_id": 0,
        "sent_id": 0,
        "raw_id": None,
    }
    # The tall 424x640 image is padded left and right by 108 px.
    (box,) = parse_boxes(answer(records[2]))
    expected = (120 / 640, 40 / 640, 320 / 640, 340 / 640)
    assert box == pytest.approx(expected, abs=6e-4)


def test_refcoco_rejects_missing_annotation_and_bad_box(refs_pickle: Path) -> None:
    _, rejected = refcoco(refs_pickle)
    assert [r["id"] for r in rejected] == [2, 3]
    assert rejected[0]["reason"] == "ref_id 2: ann_id 9999999 is not in instances.json"
    assert "ref_id 3: ann_id 2000000: bbox" in rejected[1]["reason"]


def test_refcoco_split_selection_and_stability(refs_pickle: Path) -> None:
    records, rejected = refcoco(refs_pickle, split="val")
    assert [r["id"] for r in records] == ["refcoco-val-4-rec-0"] and rejected == []
    assert refcoco(refs_pickle) == refcoco(refs_pickle)
    with pytest.raises(ValueError, match=r"no refs in split 'testB'; splits: \['testA', 'val'\]"):
        refcoco(refs_pickle, split="testB")
    with pytest.raises(ValueError, match="dataset must be one of"):
        convert_refcoco(refs_pickle, FIXTURES / "instances.json", "refclef", "val", 0)


def test_refcoco_template_comes_from_rec_pool(refs_pickle: Path) -> None:
    records, _ = refcoco(refs_pickle)
    question = human_question(records[0]).removeprefix("<image>\n")
    templates = [t.replace("<exp>", "man in red shirt") for t in POOLS["rec"]]
    assert question in templates


# ---------------------------------------------------------------------------- safe pickle


class WritesFile:
    """Unpickling this calls `builtins.open(target, "w")`, which would create the file."""

    def __init__(self, target: Path) -> None:
        self.target = target

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (str(self.target), "w"))


class RunsShell:
    def __init__(self, target: Path) -> None:
        self.target = target

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (f"touch {self.target}",))


@pytest.mark.parametrize("payload", [WritesFile, RunsShell])
def test_malicious_pickle_is_refused_and_runs_nothing(tmp_path: Path, payload: type) -> None:
    target = tmp_path / "pwned"
    path = tmp_path / "refs(unc).p"
    path.write_bytes(pickle.dumps([{"ref_id": 0, "evil": payload(target)}], protocol=2))
    with pytest.raises(
        UnsafePickleError,
        match=r"refs\(unc\)\.p: refusing global (io|posix|os)\.(open|system): only plain data",
    ):
        load_plain_pickle(path)
    with pytest.raises(UnsafePickleError):
        convert_refcoco(path, FIXTURES / "instances.json", "refcoco", "testA", 0)
    assert not target.exists()


class OldStyle:
    def __init__(self) -> None:
        self.value = 1


def test_python2_object_pickle_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "refs(umd).p"
    # Protocol 1 pickles instances through copy_reg._reconstructor, as Python 2 did.
    path.write_bytes(pickle.dumps([OldStyle()], protocol=1))
    with pytest.raises(
        UnsafePickleError, match=r"refusing global copy_reg\._reconstructor: a Python-2-era"
    ):
        load_plain_pickle(path)


def test_plain_pickle_round_trips_and_garbage_is_a_clear_error(tmp_path: Path) -> None:
    data = {"a": [1, 2.5, "x", None, True, (1, 2)], "b": {"c": -3}}
    for protocol in range(0, pickle.HIGHEST_PROTOCOL + 1):
        path = tmp_path / f"p{protocol}.p"
        path.write_bytes(pickle.dumps(data, protocol=protocol))
        assert load_plain_pickle(path) == data
    junk = tmp_path / "junk.p"
    junk.write_bytes(b"not a pickle at all")
    with pytest.raises(pickle.UnpicklingError, match=r"junk\.p: not a readable pickle"):
        load_plain_pickle(junk)


# ---------------------------------------------------------------------------- VGGSS


def vggss(seed: int = 0) -> tuple[list, list]:
    return convert_vggss(FIXTURES / "vggss.json", seed=seed)


def test_vggss_records_boxes_and_clipping() -> None:
    records, _ = vggss()
    first, second = records
    assert first["id"] == "vggss-test--0jeONf82dE_21000-sound_localization-0"
    assert first["sound"] == "audio/-0jeONf82dE_21000.wav"
    assert first["image"] == "frames/-0jeONf82dE_21000.jpg"
    assert human_question(first).startswith("<sound>\n<image>\n")
    assert answer(first) == "[0.250, 0.100, 0.750, 0.600]"
    assert first["meta"]["file"] == "-0jeONf82dE_21000"
    assert first["meta"]["boxes"] == [[0.25, 0.1, 0.75, 0.6]] and "clipped" not in first["meta"]
    # Two boxes clipped into 0..1, one degenerate (x2 == x1) dropped.
    assert second["meta"]["boxes"] == [[0.5, 0.5, 1.0, 0.9], [0.0, 0.2, 0.4, 0.7]]
    assert second["meta"]["clipped"] == {"clipped": 2, "degenerate": 1}
    assert answer(second) == "[0.500, 0.500, 1.000, 0.900], [0.000, 0.200, 0.400, 0.700]"
    assert clipping_report(records) == [
        {"id": second["id"], "clipped": {"clipped": 2, "degenerate": 1}}
    ]


def test_vggss_rejections_name_the_file() -> None:
    _, rejected = vggss()
    assert [(r["id"], r["index"]) for r in rejected] == [
        ("-2Dj5MH3kXo_30000", 2),
        ("-3Kv4fdm7Uk_30000", 3),
        (None, 4),
    ]
    assert rejected[0]["reason"] == "file -2Dj5MH3kXo_30000: no valid box ({'degenerate': 1})"
    assert rejected[1]["reason"] == "file -3Kv4fdm7Uk_30000: no valid box (none given)"
    assert rejected[2]["reason"] == "entry 4: missing 'file'"


def test_vggss_stable_and_seeded() -> None:
    assert vggss(0) == vggss(0)
    questions = {human_question(vggss(seed)[0][0]) for seed in range(20)}
    assert len(questions) > 1


def test_convert_raw_dir_finds_the_published_file_names(tmp_path: Path) -> None:
    for name in ("charades_sta_test.txt", "Charades_v1_test.csv", "instances.json", "vggss.json"):
        (tmp_path / name).write_bytes((FIXTURES / name).read_bytes())
    (tmp_path / "refs(umd).p").write_bytes(pickle.dumps(REFS, protocol=2))
    assert convert_raw_dir("charades_sta", tmp_path, "test", 0) == charades()
    assert convert_raw_dir("vggss", tmp_path, "test", 0) == vggss()
    records, _ = convert_raw_dir("refcocog", tmp_path, "val", 0)
    assert [r["id"] for r in records] == ["refcocog-val-4-rec-0"]
    assert set(EVALSETS) == {"charades_sta", "refcoco", "refcoco+", "refcocog", "vggss"}
    with pytest.raises(ValueError, match="no evaluation-set converter for 'flickr'"):
        convert_raw_dir("flickr", tmp_path, "test", 0)
