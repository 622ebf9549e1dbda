"""Conversation-format converters and the authors' JSON, on hand-written published-format files.

.venv/bin/pytest -q tests/unit/test_conversations.py
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ground.common.formats import parse_boxes
from ground.convert.sources.authors import convert_authors
from ground.convert.sources.conversations import (
    convert_llava_mix665k,
    convert_llava_pretrain,
    convert_valley_instruct,
    convert_valley_pretrain,
    convert_videochat_11k,
)
from ground.convert.templates import pool

RAW = Path(__file__).parents[1] / "fixtures" / "raw"
AUTHORS = RAW / "authors"
CONVERTERS = {
    "llava_pretrain": convert_llava_pretrain,
    "valley_pretrain": convert_valley_pretrain,
    "llava_mix665k": convert_llava_mix665k,
    "valley_instruct": convert_valley_instruct,
    "videochat_11k": convert_videochat_11k,
}
Result = tuple[list[dict[str, Any]], list[dict[str, Any]]]


def convert(dataset: str, seed: int = 0) -> Result:
    return CONVERTERS[dataset](dataset, RAW / dataset, "train", seed)


def authors(dataset: str, split: str = "train", **kwargs: Any) -> Result:
    return convert_authors(dataset, AUTHORS, split, 0, **kwargs)


def values(record: dict[str, Any]) -> list[str]:
    return [turn["value"] for turn in record["conversations"]]


def by_id(records: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {r["id"]: r for r in records}


def reasons(rejected: list[dict[str, Any]]) -> dict[int, str]:
    return {r["index"]: r["reason"] for r in rejected}


def assert_schema(record: dict[str, Any]) -> None:
    """The keys and order `Context.record` produces; media tokens lead the first human turn."""
    media = [kind for kind in ("sound", "video", "image") if kind in record]
    assert list(record) == ["id", "dataset", "split", "task", *media, "conversations", "meta"]
    turns = record["conversations"]
    assert [t["from"] for t in turns] == ["human", "gpt"] * (len(turns) // 2)
    assert turns[0]["value"].startswith("".join(f"<{kind}>\n" for kind in media))
    joined = "".join(t["value"] for t in turns)
    for kind in media:
        assert joined.count(f"<{kind}>") == 1
    assert record["meta"]["raw_id"] in record["id"]


# ---------------------------------------------------------------------------- LLaVA-Pretrain


def test_llava_pretrain_captions_with_questions_from_the_pool() -> None:
    records, _ = convert("llava_pretrain")
    assert [r["id"] for r in records] == [
        "llava_pretrain-train-004539375-image_caption-0",
        "llava_pretrain-train-002239345-image_caption-0",
    ]
    first = records[0]
    assert_schema(first)
    assert first["task"] == "image_caption" and first["image"] == "00453/004539375.jpg"
    question, answer = values(first)
    assert question.removeprefix("<image>\n") in pool("image_caption")
    assert answer == "select luxury furniture 3 - inch gel memory foam mattress topper"
    raw_question = "Render a clear and concise summary of the photo."
    assert first["meta"] == {"raw_id": "004539375", "raw_question": raw_question}


def test_llava_pretrain_rejections_name_file_index_and_id() -> None:
    _, rejected = convert("llava_pretrain")
    assert [(r["index"], r["id"]) for r in rejected] == [
        (2, "001557585"),
        (3, "004223411"),
        (4, "009802001"),
    ]
    found = reasons(rejected)
    prefix = "blip_laion_cc_sbu_558k.json: record 2 (id '001557585'): "
    assert found[2] == prefix + "missing field 'conversations'"
    assert "<image> must appear once, in the first human turn (turn 0 has 2)" in found[3]
    assert "'/data/llava/images/00980/009802001.jpg' must be relative" in found[4]


def test_ids_stable_and_seed_changes_only_the_questions() -> None:
    assert convert("llava_pretrain", seed=0) == convert("llava_pretrain", seed=0)
    base, _ = convert("llava_pretrain", seed=0)
    questions = set()
    for seed in range(20):
        records, _ = convert("llava_pretrain", seed=seed)
        questions.add(values(records[0])[0])
        for record, reference in zip(records, base, strict=True):
            assert {**record, "conversations": record["conversations"][1:]} == {
                **reference,
                "conversations": reference["conversations"][1:],
            }
    assert len(questions) > 1
    # Kept conversations do not depend on the seed at all.
    assert convert("llava_mix665k", seed=0) == convert("llava_mix665k", seed=7)


# ---------------------------------------------------------------------------- Valley pretrain


def test_valley_pretrain_single_pair_is_a_caption_multi_turn_is_kept() -> None:
    records, rejected = convert("valley_pretrain")
    caption, dialogue, image_token = records
    assert_schema(caption)
    assert caption["id"] == "valley_pretrain-train-1021859593-video_caption-0"
    assert caption["video"] == "1021859593.mp4"  # Valley's loader adds the missing .mp4
    assert values(caption)[0].removeprefix("<video>\n") in pool("video_caption")
    assert values(caption)[1] == "Aerial view of a green forest at sunrise."
    assert_schema(dialogue)
    assert dialogue["id"] == "valley_pretrain-train-1047466822-instruction-0"
    assert values(dialogue) == [
        "<video>\nWhat is the man doing?",  # the token moved from the end to the front
        "He is repairing a bicycle wheel.",
        "Where is he?",
        "In a small garage.",
    ]
    # Valley's loader splices the video at <image> too: read as <video>.
    assert image_token["id"] == "valley_pretrain-train-1069938271-video_caption-0"
    assert image_token["meta"]["raw_question"] == "Describe the following video concisely."
    assert_schema(image_token)
    found = reasons(rejected)
    assert (
        "record 2 (id '1056803941'): field 'video' is given but the first human turn lacks <video>"
        in found[2]
    )
    assert "conversations[0]: expected a turn from 'human', got 'gpt'" in found[3]


# ---------------------------------------------------------------------------- LLaVA-1.5 mix


def test_mix665k_keeps_conversations_and_reformats_boxes() -> None:
    records, _ = convert("llava_mix665k")
    found = by_id(records)
    assert list(found) == [
        "llava_mix665k-train-000000033471-instruction-0",
        "llava_mix665k-train-000000033471-instruction-1",  # same image id, another conversation
        "llava_mix665k-train-i6IyJda_0-instruction-0",
    ]
    for record in records:
        assert_schema(record)
        assert record["task"] == "instruction"
    assert len(values(records[0])) == 4
    grounded = found["llava_mix665k-train-000000033471-instruction-1"]
    assert values(grounded) == [
        "<image>\nPlease provide the bounding box coordinate of the region this sentence "
        "describes: white bus on the left.",
        "[0.100, 0.250, 0.470, 0.800]",
        "Please provide a short description for this region: [0.520, 0.300, 0.950, 0.810]",
        "Red bus.",
    ]
    assert parse_boxes(values(grounded)[1]) == [(0.1, 0.25, 0.47, 0.8)]
    text_only = found["llava_mix665k-train-i6IyJda_0-instruction-0"]
    assert "image" not in text_only
    assert values(text_only)[1] == "Here it is: [1, 2, 3, 4]"  # no image: not a box


def test_mix665k_rejections() -> None:
    _, rejected = convert("llava_mix665k")
    found = reasons(rejected)
    assert sorted(found) == [3, 4, 5, 6, 7]
    assert found[3] == (
        "llava_v1_5_mix665k.json: record 3 (id '2357710'): conversations[1]: "
        "box [0.12, 0.34, 1.56, 0.78] lies outside 0..1"
    )
    assert "box [0.65, 0.2, 0.31, 0.7] needs x1 < x2 and y1 < y2" in found[4]
    assert "record 5 (id '000000033471'): duplicate of record 0" in found[5]
    assert "turn 0 has <image> but the record has no 'image'" in found[6]
    assert "'conversations' needs human/gpt pairs, got 3 turn(s)" in found[7]


def test_reserved_splice_tokens_are_rejected(tmp_path: Path) -> None:
    item = {"id": "x1", "image": "a.jpg", "conversations": [
        {"from": "human", "value": "<image>\nWhat is <im_patch> here?"},
        {"from": "gpt", "value": "Nothing."},
    ]}  # fmt: skip
    (tmp_path / "llava_v1_5_mix665k.json").write_text(json.dumps([item]))
    records, rejected = convert_llava_mix665k("llava_mix665k", tmp_path, "train", 0)
    assert records == []
    assert rejected[0]["reason"].endswith(
        "record 0 (id 'x1'): conversations[0]: holds the reserved token <im_patch>"
    )


# ---------------------------------------------------------------------------- Valley-Instruct


def test_valley_instruct_videos_under_their_source() -> None:
    records, rejected = convert("valley_instruct")
    vatex, jukin = records
    assert vatex["video"] == "VATEX/--0edUL8zmA_000010_000020.mp4"
    assert jukin["video"] == "jukinmedia/1036520.mp4"
    assert jukin["meta"] == {"raw_id": "1036520", "source": "jukinmedia"}
    assert values(jukin)[0] == "<video>\nWhat happens in this video?"
    for record in records:
        assert_schema(record)
    found = reasons(rejected)
    assert "record 2 (id 'v_bad'): field 'video': media path '../escape.mp4'" in found[2]
    assert "record 3 (id '1046731'): missing field 'video'" in found[3]


# ---------------------------------------------------------------------------- VideoChat


def test_videochat_one_multi_turn_record_per_entry() -> None:
    records, rejected = convert("videochat_11k")
    assert [r["id"] for r in records] == [
        "videochat_11k-train-1025359337-instruction-0",
        "videochat_11k-train-1011185636-instruction-0",
        "videochat_11k-train-1025359337-instruction-1",
    ]
    for record in records:
        assert_schema(record)
    assert values(records[0]) == [
        "<video>\nWhat is the person doing in the video?",
        "The person is kneading dough on a wooden table.",
        "What happens after that?",
        "She shapes the dough into a loaf.",
    ]
    assert values(records[1])[0] == "<video>\nGive a detailed description of the video."
    assert records[1]["video"] == "1011185636.mp4"
    found = reasons(rejected)
    assert found[3].endswith(
        "record 3 (id '1088231214'): QA[0]: field 'a' must be a non-empty string, got ''"
    )
    assert found[4].endswith("record 4 (id None): missing field 'video'")


def test_unreadable_file_is_an_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="train.json: published file not found"):
        convert_valley_pretrain("valley_pretrain", tmp_path, "train", 0)
    (tmp_path / "train.json").write_text(json.dumps({"id": 1}))
    with pytest.raises(ValueError, match="train.json: expected a JSON list of records, got dict"):
        convert_valley_pretrain("valley_pretrain", tmp_path, "train", 0)


# ---------------------------------------------------------------------------- the authors' JSON


def test_authors_stage1_captions() -> None:
    records, rejected = authors("wavcaps")
    assert [(r["id"], r["task"]) for r in records] == [
        ("wavcaps-train-wavcaps_000001-audio_caption-0", "audio_caption"),
        ("wavcaps-train-wavcaps_000002-audio_caption-0", "audio_caption"),
    ]
    second = records[1]
    assert_schema(second)
    assert second["sound"] == "BBC_Sound_Effects/07011013.flac"
    assert values(second)[0] == "<sound>\nDescribe what you hear in this audio."  # kept, moved
    assert second["meta"] == {"raw_id": "wavcaps_000002", "authors_file": "Stage1/Wavecaps.json"}
    found = reasons(rejected)
    assert found[2] == (
        "Stage1/Wavecaps.json: record 2 (id 'wavcaps_000003'): "
        "turn 0 has <sound> but the record has no 'sound'"
    )
    assert "record 3 (id 'wavcaps_000004'): missing field 'conversations'" in found[3]


def test_authors_stage2_tasks_and_box_checks() -> None:
    records, rejected = authors("refcoco")
    assert [(r["id"], r["task"]) for r in records] == [
        ("refcoco-train-refcoco_0-rec-0", "rec"),
        ("refcoco-train-refcoco_1-reg-0", "reg"),
    ]
    assert values(records[0])[1] == "[0.393, 0.378, 0.616, 0.843]"
    found = reasons(rejected)
    assert sorted(found) == [2, 3, 4]
    assert (
        "record 2 (id 'refcoco_2'): conversations[1]: box coordinate 1.216 is outside 0..1"
        in found[2]
    )
    assert "record 3 (id 'refcoco_0'): duplicate of record 0" in found[3]
    assert (
        "record 4 (id 'refcoco_4'): conversations[1]: box [0.500, 0.600, 0.400, 0.900]" in found[4]
    )


def test_authors_spans() -> None:
    records, rejected = authors("didemo")
    assert [r["task"] for r in records] == ["temporal_grounding", "dense_caption"]
    assert values(records[0])[1] == "{0.00, 0.17}"
    assert records[0]["video"] == "10015567@N08_3655084291.mov.mp4"
    found = reasons(rejected)
    assert (
        "record 2 (id 'didemo_2'): conversations[1]: span {0.67, 0.33} ends before it starts"
        in found[2]
    )
    assert "record 3 (id 'didemo_3'): field 'video': media path '/mnt/data" in found[3]


def test_authors_stage3_is_instruction_and_media_tags_stay_out_of_answers() -> None:
    records, rejected = authors("clotho", split="development")
    assert [(r["id"], r["task"]) for r in records] == [
        ("clotho-development-clotho_0-instruction-0", "instruction"),
        ("clotho-development-clotho_1-instruction-0", "instruction"),
    ]
    assert len(values(records[1])) == 4
    assert (
        "record 2 (id 'clotho_2'): <sound> must appear once, in the first human turn (turn 1 has 1)"
        in reasons(rejected)[2]
    )


def test_authors_missing_media_is_rejected_with_media_dir(tmp_path: Path) -> None:
    present = tmp_path / "coco/train2014/COCO_train2014_000000581857.jpg"
    present.parent.mkdir(parents=True)
    present.write_bytes(b"jpeg")
    records, rejected = authors("refcoco", media_dir=tmp_path)
    assert [r["id"] for r in records] == ["refcoco-train-refcoco_0-rec-0"]
    missing = tmp_path / "coco/train2014/COCO_train2014_000000033471.jpg"
    assert reasons(rejected)[1] == (
        f"Stage2/refcoco.json: record 1 (id 'refcoco_1'): field 'image': "
        f"missing media file {missing.as_posix()}"
    )
    assert records[0]["image"] == "coco/train2014/COCO_train2014_000000581857.jpg"  # relative


def test_authors_split_and_dataset_checks() -> None:
    with pytest.raises(ValueError, match="convert it as split 'development', not 'train'"):
        authors("clotho", split="train")
    with pytest.raises(ValueError, match="convert it as split 'train', not 'testA'"):
        authors("refcoco", split="testA")
    with pytest.raises(ValueError, match="refcocog: the authors published no converted file"):
        authors("refcocog")
    assert authors("didemo") == authors("didemo")


def test_a_turn_holding_the_stop_string_is_rejected(tmp_path: Path) -> None:
    """`###` separates the template's turns: an answer holding it (a markdown heading in
    ShareGPT data) would be cut there in training, so the record is rejected, named."""
    item = {"id": "md-1", "conversations": [
        {"from": "human", "value": "Write a title."}, {"from": "gpt", "value": "### Title\nText"}]}
    (tmp_path / "llava_v1_5_mix665k.json").write_text(json.dumps([item]))
    records, rejected = convert_llava_mix665k("llava_mix665k", tmp_path, "train", 0)
    assert records == []
    assert "md-1" in rejected[0]["reason"] and "stop string '###'" in rejected[0]["reason"]
