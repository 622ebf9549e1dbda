"""Training-source converters on hand-written files in the published formats.

.venv/bin/pytest tests/unit/test_sources.py

Fixtures: tests/fixtures/raw/<dataset>/ (the upstream file names), VCR's per-image metadata in
tests/fixtures/media/vcr/vcr1images/. Each file holds a few good records and one or two
deliberately malformed ones.
"""

from __future__ import annotations

import importlib
import json
import random
import shutil
from pathlib import Path
from typing import Any

import pytest
from test_convert import from_pool, question

from ground.common.catalog import DATASETS
from ground.convert.sources.audio import convert_clotho, convert_wavcaps
from ground.convert.sources.image import convert_flickr30k_entities, detokenize
from ground.convert.sources.vcr import convert_vcr
from ground.convert.sources.video import event_slot
from ground.convert.templates import POOLS, placeholders, render

RAW = Path(__file__).parents[1] / "fixtures" / "raw"
MEDIA = Path(__file__).parents[1] / "fixtures" / "media"
Records = list[dict[str, Any]]


def answer(record: dict[str, Any]) -> str:
    return record["conversations"][1]["value"]


def by_id(records: Records) -> dict[str, dict[str, Any]]:
    return {r["id"]: r for r in records}


def convert(name: str, seed: int = 0, split: str = "train") -> tuple[Records, Records]:
    """Run the converter the catalog names for `name` (so the catalog's wiring is tested too)."""
    module, function = DATASETS[name].converter.split(":")
    return getattr(importlib.import_module(module), function)(name, RAW / name, split, seed)


# ---------------------------------------------------------------------------- Visual Genome


def test_visual_genome_reg_and_rec_per_region_with_padded_square_boxes() -> None:
    records, _ = convert("visual_genome")
    assert [r["id"] for r in records] == [
        "visual_genome-train-1-reg-1382",
        "visual_genome-train-1-rec-1382",
        "visual_genome-train-1-reg-1383",
        "visual_genome-train-1-rec-1383",
        "visual_genome-train-2-reg-2001",
        "visual_genome-train-2-rec-2001",
    ]
    reg, rec = records[:2]
    # 640x480 padded to 640x640, 80 px above: x=64 y=48 w=128 h=192 -> xyxy [64, 48, 192, 240]
    # -> [64/640, (48+80)/640, 192/640, (240+80)/640].
    box = "[0.100, 0.200, 0.300, 0.500]"
    assert answer(rec) == box and answer(reg) == "the clock is green in colour"
    assert question(rec) in from_pool("rec", exp="the clock is green in colour")
    assert question(reg) in from_pool("reg", region=box)
    assert rec["image"] == reg["image"] == "VG_100K_2/1.jpg"
    assert rec["conversations"][0]["value"].startswith("<image>\n")
    assert rec["meta"] == {
        "raw_id": "1",
        "image_id": 1,
        "width": 640,
        "height": 480,
        "region_id": 1382,
        "box_px": [64.0, 48.0, 192.0, 240.0],
        "expression": "the clock is green in colour",
    }
    # 300x500 padded left and right by 100 px: [50, 100, 150, 300] -> [150/500, 0.2, 250/500, 0.6]
    assert answer(records[5]) == "[0.300, 0.200, 0.500, 0.600]"
    assert records[5]["image"] == "VG_100K/2.jpg"


def test_visual_genome_overhanging_box_is_clipped_and_recorded() -> None:
    record = by_id(convert("visual_genome")[0])["visual_genome-train-1-rec-1383"]
    assert record["meta"]["box_px"] == [600.0, 400.0, 640.0, 480.0]
    assert record["meta"]["clipped"] == {"box_px": [600.0, 400.0, 650.0, 500.0]}
    assert answer(record) == "[0.938, 0.750, 1.000, 0.875]"  # 600/640, 480/640, 1, 560/640


def test_visual_genome_rejections_name_file_image_and_region() -> None:
    _, rejected = convert("visual_genome")
    assert [r["id"] for r in rejected] == [1384, 1385, 1386, 3, 4]
    reasons = [r["reason"] for r in rejected]
    where = "region_descriptions.json image 1 regions[{}] (region_id {}): "
    assert reasons[0] == where.format(2, 1384) + "phrase '  ' is empty"
    assert reasons[1].startswith(where.format(3, 1385) + "degenerate box")
    assert reasons[2] == where.format(4, 1386) + (
        "box [700.0, 10.0, 720.0, 30.0] lies outside the 640x480 image"
    )
    assert reasons[3] == (
        "region_descriptions.json entry 2: image_data.json image 3: "
        "width/height Nonex600 missing or not positive"
    )
    assert reasons[4] == "region_descriptions.json entry 3: image 4 is not in image_data.json"


# ---------------------------------------------------------------------------- Flickr30K Entities


def test_flickr30k_grounded_caption_boxes_follow_phrases() -> None:
    records, _ = convert("flickr30k_entities")
    first = records[0]
    assert first["id"] == "flickr30k_entities-train-1000092795-grounded_caption-0"
    assert first["task"] == "grounded_caption" and first["image"] == "1000092795.jpg"
    # 640x480, 80 px padding above. "Two young guys" has two boxes (VOC 1-based, minus 1):
    # [64, 48, 128, 240] and [128, 60, 192, 200]; their union [64, 48, 192, 240].
    # "shaggy hair" [96, 48, 160, 80]; "their hands" (nobndbox) and "the yard" (scene) stay text.
    assert answer(first) == (
        "Two young guys[0.100, 0.200, 0.300, 0.500] with shaggy hair"
        "[0.150, 0.200, 0.250, 0.250] look at their hands while hanging out in the yard."
    )
    assert question(first) in POOLS["grounded_caption"]
    meta = first["meta"]
    assert meta["width"] == 640 and meta["height"] == 480
    assert meta["caption"] == (
        "Two young guys with shaggy hair look at their hands while hanging out in the yard ."
    )
    assert meta["phrases"][0] == {
        "phrase": "Two young guys",
        "entity": "1",
        "type": "people",
        "boxes_px": [[64, 48, 128, 240], [128, 60, 192, 200]],
        "union_px": [64, 48, 192, 240],
    }
    assert [p["phrase"] for p in meta["phrases"]] == ["Two young guys", "shaggy hair"]
    # An object naming two entities gives both the box: [0, 240, 320, 480] -> y (240+80)/640.
    second = by_id(records)["flickr30k_entities-train-1000092795-grounded_caption-2"]
    assert "in green shirts[0.000, 0.500, 0.500, 0.875] are" in answer(second)


def test_flickr30k_tall_image_and_all_sentences() -> None:
    records, _ = convert("flickr30k_entities")
    tall = [r for r in records if r["meta"]["image_id"] == "10002456"]
    assert [r["meta"]["sentence_index"] for r in tall] == [0, 1, 2, 3, 4]
    # 300x500: 100 px each side. [50, 100, 150, 300] and [0, 0, 200, 100].
    assert answer(tall[0]) == (
        "A woman[0.300, 0.200, 0.500, 0.600] holds an umbrella[0.200, 0.000, 0.600, 0.200]."
    )


def test_flickr30k_rejections_name_the_file_and_sentence() -> None:
    _, rejected = convert("flickr30k_entities")
    assert [r["id"] for r in rejected] == ["1000092795#3", "1000092795#4", "99999", "1111"]
    reasons = [r["reason"] for r in rejected]
    assert reasons[0].startswith("Sentences/1000092795.txt:4: no phrase has a box")
    assert reasons[1].startswith("Sentences/1000092795.txt:5: malformed entity markup")
    assert reasons[2] == "train.txt:3: image 99999: Annotations/99999.xml is missing"
    assert reasons[3].startswith("train.txt:4: image 1111: 1111.xml: malformed XML")


def test_flickr30k_missing_split_list_fails(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"val\.txt: split list"):
        convert_flickr30k_entities("flickr30k_entities", tmp_path, "val", 0)


# ---------------------------------------------------------------------------- VCR


def test_vcr_question_answer_rationale_with_object_boxes() -> None:
    records, _ = convert("vcr")
    assert [r["id"] for r in records] == [
        "vcr-train-train-0-vcr-0",
        "vcr-train-train-1-vcr-0",
        "vcr-train-train-5-vcr-0",
    ]
    first = records[0]
    # 1920x1080 padded to 1920 square, 420 px above: person0 [192, 60, 576, 1020]
    # -> [0.1, (60+420)/1920, 0.3, (1020+420)/1920]; person1 [960, 156, 1344, 1020].
    p0, p1 = "person[0.100, 0.250, 0.300, 0.750]", "person[0.500, 0.300, 0.700, 0.750]"
    assert answer(first) == f"{p0} is talking to {p1}. Because he is looking at {p1} and gesturing."
    assert question(first) in from_pool("vcr", question=f"What is {p0} doing?")
    assert first["image"] == (
        "vcr1images/lsmdc_3001_21_JUMP_STREET/3001_21_JUMP_STREET_00.03.00.017-00.03.03.702@0.jpg"
    )
    meta = first["meta"]
    assert (meta["width"], meta["height"]) == (1920, 1080)
    assert meta["objects_px"][2] == {"name": "car", "box_px": [0.0, 540.0, 960.0, 1080.0]}
    assert (meta["answer_label"], meta["rationale_label"]) == (2, 1)
    second = records[1]
    car = "car[0.000, 0.500, 0.500, 0.781]"  # (1080 + 420) / 1920 = 0.78125
    assert second["meta"]["question"] == f"Why are {p0} and {p1} standing by {car}?"
    # A missing final period is added; "I" keeps its capital.
    assert answer(second) == f"They are waiting for a ride. Because I see no driver in {car}."


def test_vcr_rejections_name_line_and_annotation() -> None:
    _, rejected = convert("vcr")
    assert [(r["id"], r["line"]) for r in rejected] == [
        ("train-2", 3),
        ("train-3", 4),
        ("train-4", 5),
        (None, 6),
    ]
    reasons = [r["reason"] for r in rejected]
    assert reasons[0] == "train.jsonl:3 (annot_id train-2): answer_label 4 out of range 0..3"
    assert reasons[1] == "train.jsonl:4 (annot_id train-3): object index 5 out of range 0..2"
    assert reasons[2].startswith("train.jsonl:5 (annot_id train-4): metadata file ")
    assert reasons[2].endswith("vcr1images/lsmdc_3001_21_JUMP_STREET/missing@0.json is missing")
    assert reasons[3].startswith("train.jsonl:6 (annot_id None): ")


def test_vcr_flat_media_dir_keyword(tmp_path: Path) -> None:
    nested = MEDIA / "vcr" / "vcr1images"
    shutil.copytree(nested, tmp_path / "vcr", dirs_exist_ok=True)
    records, _ = convert_vcr("vcr", RAW / "vcr", "train", 0, media_dir=tmp_path / "vcr")
    assert records[0]["image"].startswith("lsmdc_3001_21_JUMP_STREET/")
    assert [answer(r) for r in records] == [answer(r) for r in convert("vcr")[0]]


# ---------------------------------------------------------------------------- DiDeMo


def test_didemo_consensus_segment_and_spans() -> None:
    records, _ = convert("didemo")
    spans = {r["meta"]["raw_id"]: answer(r) for r in records if r["task"] == "temporal_grounding"}
    # 3227: [2,2] and [1,2] tie (2 votes each), the earlier [1,2] wins: [5, 15] s of 30 s.
    # 3228: [0,1] of 5 segments: [0, 10] s of 25 s. 3229: no num_segments -> 30 s; [4,5] -> [20, 30].
    assert spans == {"3227": "{0.17, 0.50}", "3228": "{0.00, 0.40}", "3229": "{0.67, 1.00}"}
    tg, dc = records[:2]
    assert tg["id"] == "didemo-train-3227-temporal_grounding-0"
    assert tg["video"] == "56066135@N00_5320213455_25c19af45d.mp4"
    assert tg["meta"]["segment_s"] == [5.0, 15.0] and tg["meta"]["duration"] == 30.0
    assert tg["meta"]["consensus"] == [1, 2]
    assert question(tg) in from_pool(
        "temporal_grounding", event="the cross is seen for the first time"
    )
    assert dc["task"] == "dense_caption" and answer(dc) == "the cross is seen for the first time."
    assert question(dc) in from_pool("dense_caption", time="{0.17, 0.50}")


def test_didemo_rejections_name_the_annotation() -> None:
    _, rejected = convert("didemo")
    assert [(r["id"], r["index"]) for r in rejected] == [(3230, 3), (3231, 4), (3232, 5)]
    reasons = [r["reason"] for r in rejected]
    assert reasons[0] == (
        "train_data.json: entry 3 (annotation_id 3230): "
        "times[0]=[3, 2] is not [s, e] with 0 <= s <= e <= 5"
    )
    assert "times[0]=[5, 5] is not [s, e] with 0 <= s <= e <= 4" in reasons[1]
    assert reasons[2].startswith("train_data.json: entry 5 (annotation_id 3232): description")


# ---------------------------------------------------------------------------- HiREST


def test_hirest_query_grounding_and_step_captions() -> None:
    records, _ = convert("hirest")
    assert [(r["id"], answer(r)) for r in records] == [
        ("hirest-train-fNX3QIgJ0tU-temporal_grounding-0", "{0.10, 0.80}"),  # [12, 96] of 120 s
        ("hirest-train-fNX3QIgJ0tU-dense_caption-1", "Pour the cream into a jar"),
        ("hirest-train-fNX3QIgJ0tU-dense_caption-2", "Shake the jar"),
        ("hirest-train-7jXUXvXs0wI-temporal_grounding-0", "{0.80, 1.00}"),  # 55 clipped to 50
    ]
    assert records[0]["video"] == "fNX3QIgJ0tU.mp4"
    assert question(records[0]) in from_pool(
        "temporal_grounding", event="how to make butter at home"
    )
    assert question(records[2]) in from_pool("dense_caption", time="{0.25, 0.75}")  # [30, 90]
    assert records[2]["meta"]["parent_query"] == "How to make butter at home"
    assert records[3]["meta"]["clipped"] == {"end_s": 55.0}
    assert records[3]["meta"]["segment_s"] == [40.0, 50.0]


def test_hirest_rejections_name_query_video_and_step() -> None:
    _, rejected = convert("hirest")
    assert [r["id"] for r in rejected] == [
        "fNX3QIgJ0tU/step2",
        "fNX3QIgJ0tU/step3",
        "How to tie a tie/kC8a3GU0jn4.mp4",
    ]
    where = "all_data_train.json: query 'How to make butter at home' video 'fNX3QIgJ0tU.mp4'"
    assert rejected[0]["reason"].startswith(f"{where} steps[2]: heading")
    assert rejected[1]["reason"] == f"{where} steps[3]: start 100.0 s is not before end 95.0 s"
    assert rejected[2]["reason"] == (
        "all_data_train.json: query 'How to tie a tie' video 'kC8a3GU0jn4.mp4': "
        "start 70.0 s is not before end 20.0 s"
    )


# ---------------------------------------------------------------------------- ActivityNet


def test_activitynet_pairs_spans_and_clipping() -> None:
    records, _ = convert("activitynet_captions")
    tg = [r for r in records if r["task"] == "temporal_grounding"]
    assert len(tg) == 7 and len(records) == 14
    first = tg[0]
    assert first["id"] == "activitynet_captions-train-v_QOlSCBRmfWY-temporal_grounding-0"
    assert first["video"] == "v_QOlSCBRmfWY.mp4"
    assert answer(first) == "{0.01, 0.24}"  # 0.83 / 82.73 = 0.010, 19.86 / 82.73 = 0.240
    event = "a young woman is seen standing in a room and leads into her dancing"
    assert question(first) in from_pool("temporal_grounding", event=event)
    assert first["meta"]["query"] == event[0].upper() + event[1:] + "."
    clipped = by_id(records)["activitynet_captions-train-v_ehGHCYKzyZ8-dense_caption-2"]
    assert clipped["meta"]["clipped"] == {"end_s": 62.0}
    assert clipped["meta"]["segment_s"] == [44.05, 61.72]
    assert question(clipped) in from_pool("dense_caption", time="{0.71, 1.00}")


def test_activitynet_rejections() -> None:
    _, rejected = convert("activitynet_captions")
    assert rejected == [
        {
            "id": "v_nwznKOuZM7w",
            "reason": "train.json: video v_nwznKOuZM7w: 2 timestamps but 1 sentences",
        },
        {
            "id": "v_ogQozSI5V8U/1",
            "reason": "train.json: video v_ogQozSI5V8U pair 1: start 20.0 s is not before end 20.0 s",
        },
    ]


# ---------------------------------------------------------------------------- WavCaps


def test_wavcaps_present_sources_only() -> None:
    records, _ = convert("wavcaps")
    assert [(r["id"], r["sound"]) for r in records] == [
        (
            "wavcaps-train-AudioSet_SL-Y7fmOlUlwoNg.wav-audio_caption-0",
            "AudioSet_SL/Y7fmOlUlwoNg.wav",
        ),
        (
            "wavcaps-train-AudioSet_SL-Y--0w1YA1Hm4.wav-audio_caption-0",
            "AudioSet_SL/Y--0w1YA1Hm4.wav",
        ),
        ("wavcaps-train-SoundBible-2080-audio_caption-0", "SoundBible/2080.flac"),
    ]
    first = records[0]
    assert first["conversations"][0]["value"].startswith("<sound>\n")
    assert question(first) in POOLS["audio_caption"]
    assert answer(first) == "Music plays in the background while a man speaks."
    assert records[2]["meta"]["duration"] == 2.27 and records[2]["meta"]["source"] == "SoundBible"


def test_wavcaps_rejections_and_missing_files(tmp_path: Path) -> None:
    _, rejected = convert("wavcaps")
    assert [(r["id"], r["index"]) for r in rejected] == [
        ("Y7fmOlUlwoNg.wav", 2),
        ("YbadCaption.wav", 3),
        (None, 1),
    ]
    assert rejected[0]["reason"] == (
        "as_final.json: data[2] (id Y7fmOlUlwoNg.wav): duplicate id (first at index 0)"
    )
    assert rejected[1]["reason"].startswith("as_final.json: data[3] (id YbadCaption.wav): caption")
    assert rejected[2]["reason"].startswith("sb_final.json: data[1] (id None): id None is missing")
    with pytest.raises(FileNotFoundError, match="none of the WavCaps files"):
        convert_wavcaps("wavcaps", tmp_path, "train", 0)
    # The hub repo's nesting (json_files/<source>/<file>) is found too.
    nested = tmp_path / "json_files" / "SoundBible"
    nested.mkdir(parents=True)
    shutil.copy(RAW / "wavcaps" / "sb_final.json", nested)
    records, _ = convert_wavcaps("wavcaps", tmp_path, "train", 0)
    assert [r["sound"] for r in records] == ["SoundBible/2080.flac"]


# ---------------------------------------------------------------------------- Clotho


def test_clotho_one_record_per_caption() -> None:
    records, _ = convert("clotho", split="development")
    assert len(records) == 14
    first = records[0]
    assert first["id"] == "clotho-development-Distorted AM Radio noise.wav-audio_caption-0"
    assert first["sound"] == "development/Distorted AM Radio noise.wav"
    assert answer(first) == "A muddled noise of broken channel of the TV"
    assert question(first) in POOLS["audio_caption"]
    bridge = [r for r in records if r["meta"]["file_name"] == "Bridge, walking.wav"]
    assert [r["meta"]["caption_index"] for r in bridge] == [0, 1, 2, 3, 4]
    assert answer(bridge[0]) == "People walk over a wooden bridge, with steps echoing"


def test_clotho_rejections_name_the_csv_line(tmp_path: Path) -> None:
    _, rejected = convert("clotho", split="development")
    assert [r["line"] for r in rejected] == [4, 5]
    assert rejected[0]["reason"] == "clotho_captions_development.csv:4: missing file_name"
    assert rejected[1]["reason"] == (
        "clotho_captions_development.csv:5: file 01 A pug struggles to breathe 1_14_2008.wav: "
        "caption_2 is empty"
    )
    (tmp_path / "clotho_captions_evaluation.csv").write_text("file_name,caption_1\nx.wav,a\n")
    with pytest.raises(ValueError, match=r"header lacks column\(s\) \['caption_2'"):
        convert_clotho("clotho", tmp_path, "evaluation", 0)


# ---------------------------------------------------------------------------- all converters

SOURCES = {
    "visual_genome": "train",
    "flickr30k_entities": "train",
    "vcr": "train",
    "didemo": "train",
    "hirest": "train",
    "activitynet_captions": "train",
    "wavcaps": "train",
    "clotho": "development",
}


@pytest.mark.parametrize("name", sorted(SOURCES))
def test_output_is_stable_and_seeded(name: str) -> None:
    split = SOURCES[name]
    records, rejected = convert(name, seed=0, split=split)
    assert (records, rejected) == convert(name, seed=0, split=split)
    assert json.loads(json.dumps(records)) == records  # plain JSON data only
    assert len({r["id"] for r in records}) == len(records)
    for record in records:
        assert record["dataset"] == name and record["split"] == split
        assert record["meta"]["raw_id"] in record["id"]
        media = [record[k] for k in ("image", "video", "sound") if k in record]
        assert media and not any(m.startswith("/") or ".." in m for m in media)
    questions = {question(r) for seed in range(12) for r in convert(name, seed, split)[0][:1]}
    assert len(questions) > 1  # the seed picks the template


@pytest.mark.parametrize("name", sorted(SOURCES))
def test_catalog_names_the_fixture_files(name: str) -> None:
    files = DATASETS[name].files(SOURCES[name])
    present = [f for f in files if (RAW / name / f).exists()]
    # WavCaps sources are optional one by one; every other dataset needs all its files.
    assert present if name == "wavcaps" else present == list(files)


def test_new_pools_and_text_helpers() -> None:
    for task in ("grounded_caption", "vcr"):
        assert 8 <= len(POOLS[task]) <= 12 and len(set(POOLS[task])) == len(POOLS[task])
    assert {placeholders(t) for t in POOLS["vcr"]} == {frozenset({"question"})}
    assert {placeholders(t) for t in POOLS["grounded_caption"]} == {frozenset()}
    assert render("vcr", random.Random(0), question="Why?").count("Why?") == 1
    assert detokenize("Two men , one is n't here .") == "Two men, one isn't here."
    assert event_slot("The man plays a harmonica.") == "the man plays a harmonica"
    assert event_slot("TV turns on.") == "TV turns on"
    assert event_slot("I'm leaving.") == "I'm leaving" and event_slot("A dog.") == "a dog"
