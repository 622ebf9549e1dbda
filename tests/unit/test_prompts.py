"""The versioned GPT prompts: structure of paper figures 4-6, rendering, versions, answer parsing.

.venv/bin/pytest tests/unit/test_prompts.py
"""

from __future__ import annotations

import json

import pytest

from ground.common.formats import parse_boxes, parse_spans
from ground.generate import prompts
from ground.generate.prompts import (
    PROMPT_VERSIONS,
    PROMPTS,
    TASKS,
    InvalidAnswer,
    build_messages,
    parse_answer,
)
from ground.generate.validate import validate_dialogue

# A Flickr30K Entities sample: "[/EN#1/people A man] in [/EN#2/clothing a blue shirt] ..." with
# the entities' boxes already normalised to the padded square.
FLICKR = {
    "kind": "image",
    "sentences": [
        {
            "text": "A man in a blue shirt plays a guitar on a stage.",
            "phrases": [
                {"text": "A man", "box": [0.2104, 0.1, 0.55, 0.95]},
                {"text": "a blue shirt", "box": [0.25, 0.3, 0.5, 0.6]},
                {"text": "a guitar", "box": [0.3, 0.45, 0.7, 0.75]},
                {"text": "a stage", "box": [0.0, 0.8, 1.0, 1.0]},
            ],
        },
        {
            "text": "A musician performs for the crowd.",
            "phrases": [{"text": "A musician", "box": [0.2104, 0.1, 0.55, 0.95]}],
        },
    ],
}


def test_a_flickr30k_sample_renders_like_figure_5() -> None:
    messages = build_messages(None, FLICKR, turns=3)
    roles = [m["role"] for m in messages]
    examples = len(PROMPTS["image_conversation"]["examples"])
    assert roles == ["system", *["user", "assistant"] * examples, "user"]
    assert messages[0]["content"] == PROMPTS["image_conversation"]["system"]
    sample = messages[-1]["content"]
    assert sample.startswith("Captions:\n- A man[0.210, 0.100, 0.550, 0.950] in a blue shirt[")
    assert "a guitar[0.300, 0.450, 0.700, 0.750] on a stage[0.000, 0.800, 1.000, 1.000]." in sample
    assert "- A musician[0.210, 0.100, 0.550, 0.950] performs" in sample
    assert sample.rstrip().endswith("Write 3 question-answer pair(s).")
    assert len(parse_boxes(sample)) == 5


def test_task_choice() -> None:
    assert build_messages(None, FLICKR, 1)[0]["content"] == PROMPTS["image_detail"]["system"]
    video = {"kind": "video", "events": [{"text": "a dog runs", "span": [0.1, 0.456]}]}
    messages = build_messages(None, video, 2)
    assert messages[0]["content"] == PROMPTS["video_dialogue"]["system"]
    assert "- a dog runs {0.10, 0.46}" in messages[-1]["content"]
    vcr = {"kind": "vcr", "objects": [{"name": "person1", "box": [0.1, 0.1, 0.5, 0.9]}],
           "question": "Why?", "answer": "Because.", "rationale": "It shows."}  # fmt: skip
    text = build_messages(None, vcr, 2)[-1]["content"]
    assert "- person1[0.100, 0.100, 0.500, 0.900]" in text and "Rationale: It shows." in text
    with pytest.raises(ValueError, match="no prompt for annotation kind 'audio'"):
        build_messages(None, {"kind": "audio"})


@pytest.mark.parametrize("task", TASKS)
def test_in_context_examples_pass_the_filter(task: str) -> None:
    """Each human-written example answer is one the validator would accept for its input."""
    for example in PROMPTS[task]["examples"]:
        text = example["input"]
        annotation = {
            "objects": [{"box": list(b)} for b in parse_boxes(text)],
            "events": [{"span": list(s)} for s in parse_spans(text)],
        }
        pairs = int(text.rsplit("Write ", 1)[1].split()[0])
        assert validate_dialogue({"text": example["output"]}, annotation, pairs)
        assert PROMPTS[task]["system"].count("Question:") == 1


def test_versions_hash_the_files(tmp_path, monkeypatch) -> None:
    assert set(PROMPT_VERSIONS) == set(TASKS)
    assert PROMPT_VERSIONS["image_detail"].startswith("image_detail.v1-")
    edited = json.loads((prompts.PROMPT_DIR / "image_detail.v1.json").read_text())
    edited["system"] += " Be brief."
    (tmp_path / "image_detail.v1.json").write_text(json.dumps(edited))
    monkeypatch.setattr(prompts, "PROMPT_DIR", tmp_path)
    with pytest.raises(ValueError, match="differs from PROMPT_LOCK"):
        prompts._load("image_detail")


def test_parse_answer() -> None:
    turns = parse_answer("Question: What?\nAnswer: A cat[0.1, 0.2, 0.3, 0.4].\n\nMore.\n")
    assert turns == [
        {"from": "human", "value": "What?"},
        {"from": "gpt", "value": "A cat[0.1, 0.2, 0.3, 0.4].\nMore."},
    ]
    for bad in ("", "Hello", "Question: only", "Answer: x\nQuestion: y"):
        with pytest.raises(InvalidAnswer):
            parse_answer(bad)
