"""The generate step with the offline composer: grounding, the response cache, the validator.

.venv/bin/pytest tests/unit/test_generate.py
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest

from ground.common.config import Generate
from ground.common.formats import (
    FLOAT2,
    FLOAT3,
    Coords,
    box_to_square,
    format_box,
    format_span,
    parse_boxes,
    parse_spans,
)
from ground.convert.run import convert_dataset
from ground.generate.run import (
    BACKENDS,
    InvalidDialogue,
    generate_instructions,
    validate_dialogue,
)

OBJECTS = [
    {"shape": "circle", "color": "red", "size": "small", "box": [20, 10, 60, 50]},
    {"shape": "square", "color": "blue", "size": "large", "box": [100, 40, 180, 100]},
    {"shape": "circle", "color": "green", "size": "large", "box": [120, 0, 170, 30]},
]
EVENTS = [
    {"text": "the red circle is visible", "start": 1.0, "end": 4.0},
    {"text": "the blue square moves to the right", "start": 3.0, "end": 8.0},
]


def write_sources(root: Path, images: int = 3, videos: int = 2) -> list[Path]:
    """Converted train files of demo_image and demo_video made from hand-written raw records."""
    raw_image = [
        {
            "id": f"i{k}",
            "image": f"media/images/i{k}.png",
            "width": 200,
            "height": 100,
            "objects": OBJECTS[: 2 + k % 2],
            "caption": f"the shapes of picture {k}",
            "expressions": [{"text": "the red circle", "object": 0}],
        }
        for k in range(images)
    ]
    raw_video = [
        {
            "id": f"v{k}",
            "video": f"media/videos/v{k}.mp4",
            "duration": 8.0,
            "caption": f"clip {k}",
            "events": EVENTS[: 1 + k % 2],
        }
        for k in range(videos)
    ]
    sources = []
    for dataset, raws, field in (
        ("demo_image", raw_image, "image"),
        ("demo_video", raw_video, "video"),
    ):
        if not raws:
            continue
        for raw in raws:
            (root / raw[field]).parent.mkdir(parents=True, exist_ok=True)
            (root / raw[field]).touch()
        raw_path = root / "raw" / dataset / "train.jsonl"
        raw_path.parent.mkdir(parents=True, exist_ok=True)
        raw_path.write_text("".join(json.dumps(r) + "\n" for r in raws))
        out = root / "convert" / f"{dataset}.jsonl"
        convert_dataset(dataset, "train", root, out, root / "convert" / f"{dataset}.m.json", seed=0)
        sources.append(out)
    return sources


def generate(root: Path, sources: list[Path], **kwargs: Any) -> tuple[list[dict], dict]:
    out, manifest = root / "gen" / "dialogues.jsonl", root / "gen" / "manifest.json"
    cfg = asdict(Generate()) | {"seed": 0, "cache_dir": str(root / "cache")} | kwargs
    summary = generate_instructions(sources, out, manifest, cfg)
    assert json.loads(manifest.read_text()) == summary
    return [json.loads(line) for line in out.read_text().splitlines()], summary


def test_dialogues_are_grounded_in_the_input(tmp_path: Path) -> None:
    records, summary = generate(tmp_path, write_sources(tmp_path))
    assert summary["media"] == 5 and summary["records_out"] == 5
    assert summary["requests"] == 5 and summary["cache_hits"] == 0
    assert summary["rejected_by_reason"] == {}
    known_boxes = {format_box(box_to_square(o["box"], 200, 100)) for o in OBJECTS}
    known_spans = {format_span(e["start"], e["end"], 8.0) for e in EVENTS}
    for record in records:
        assert record["task"] == "grounded_dialogue"
        kind = "image" if "image" in record else "video"
        raw_id = record["meta"]["raw_id"]
        assert record["id"] == f"demo_{kind}-train-{raw_id}-grounded_dialogue-0"
        turns = record["conversations"]
        assert [t["from"] for t in turns] == ["human", "gpt"] * 3
        assert turns[0]["value"].startswith(f"<{kind}>\n")
        text = " ".join(t["value"] for t in turns)
        boxes = {format_box(b) for b in parse_boxes(text)}
        spans = {format_span(a, b, 1.0) for a, b in parse_spans(text)}
        if kind == "image":
            assert boxes and boxes <= known_boxes and not spans
            # The grounded description names every object of its image with its box.
            count = len(record["meta"]["objects"])
            assert len(parse_boxes(turns[1]["value"])) == count
        else:
            assert spans and spans <= known_spans and not boxes


def test_second_run_makes_no_requests(tmp_path: Path) -> None:
    sources = write_sources(tmp_path)
    first, _ = generate(tmp_path, sources)
    second, summary = generate(tmp_path, sources)
    assert summary["requests"] == 0 and summary["cache_hits"] == 5
    assert first == second
    # A different seed is a different request: new keys, new calls.
    _, reseeded = generate(tmp_path, sources, seed=1)
    assert reseeded["requests"] == 5
    assert len(list((tmp_path / "cache").glob("*/*.json"))) == 10


def test_cache_layout(tmp_path: Path) -> None:
    records, _ = generate(tmp_path, write_sources(tmp_path, images=1, videos=0))
    key = records[0]["meta"]["cache_key"]
    entry = json.loads((tmp_path / "cache" / key[:2] / f"{key}.json").read_text())
    assert entry["key"] == key
    assert set(entry["material"]) == {"backend", "model", "prompt_version", "request", "sampling"}


def test_a_hallucinated_box_in_a_cached_answer_is_rejected(tmp_path: Path) -> None:
    sources = write_sources(tmp_path)
    records, _ = generate(tmp_path, sources)
    key = records[0]["meta"]["cache_key"]
    path = tmp_path / "cache" / key[:2] / f"{key}.json"
    entry = json.loads(path.read_text())
    answer = entry["response"]["conversations"][1]
    answer["value"] += " There is also a dog[0.900, 0.900, 0.950, 0.990]."
    path.write_text(json.dumps(entry))
    kept, summary = generate(tmp_path, sources)
    assert summary["requests"] == 0
    assert summary["rejected_by_reason"] == {"box not in annotations": 1}
    assert summary["records_out"] == 4
    assert records[0]["id"] not in {r["id"] for r in kept}


class Hallucinator:
    """A backend that answers with a time span that no annotation has."""

    name, model, prompt_version = "liar", "liar-1", "v0"

    def request(self, annotation: dict[str, Any], turns: int) -> dict[str, Any]:
        return {"annotation": annotation}

    def sampling(self, seed: int) -> dict[str, Any]:
        return {}

    def complete(self, request: dict[str, Any], sampling: dict[str, Any]) -> dict[str, Any]:
        return {
            "conversations": [
                {"from": "human", "value": "When does it happen?"},
                {"from": "gpt", "value": "During {0.01, 0.02}."},
            ]
        }


def test_a_backend_inventing_spans_is_rejected(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setitem(BACKENDS, "liar", lambda cfg: Hallucinator())
    sources = write_sources(tmp_path, images=0, videos=2)
    records, summary = generate(tmp_path, sources, backend="liar")
    assert records == [] and summary["rejected_by_reason"] == {"span not in annotations": 2}


def test_unknown_backend(tmp_path: Path) -> None:
    with pytest.raises(
        ValueError, match=r"unknown instruction backend 'gpt5'; known: \['offline', 'openai'"
    ):
        generate(tmp_path, [], backend="gpt5")


def test_validator_reasons() -> None:
    annotation = {"kind": "image", "objects": [{"box": [0.1, 0.3, 0.3, 0.5]}], "expressions": []}

    def check(*values: str) -> str:
        turns = [
            {"from": "human" if k % 2 == 0 else "gpt", "value": v} for k, v in enumerate(values)
        ]
        with pytest.raises(InvalidDialogue) as err:
            validate_dialogue({"conversations": turns}, annotation)
        return err.value.reason

    assert check("Where?") == "malformed conversation"
    assert check("Where?", "Somewhere.") == "ungrounded"
    assert check("Where?", "At [0.1, 0.2, 0.3].") == "unparsable box or span"
    assert check("Where?", "At [0.100, 0.300, 0.300, 0.600].") == "box not in annotations"
    assert check("When?", "At {0.10, 0.20}.") == "span not in annotations"
    good = [
        {"from": "human", "value": "Where?"},
        {"from": "gpt", "value": "At [0.1, 0.3, 0.3, 0.5]."},
    ]
    assert validate_dialogue({"conversations": good}, annotation) == good
    with pytest.raises(InvalidDialogue, match="malformed"):
        validate_dialogue({"conversations": [{"from": "gpt", "value": "x"}] * 2}, annotation)


def test_turns_is_honoured(tmp_path: Path) -> None:
    records, _ = generate(tmp_path, write_sources(tmp_path, images=1, videos=0), turns=1)
    assert len(records[0]["conversations"]) == 2
    with pytest.raises(ValueError, match="turns must be at least 1"):
        generate(tmp_path, [], turns=0)


def test_media_without_annotations_are_not_requested(tmp_path: Path) -> None:
    raw = {"id": "e", "video": "media/videos/e.mp4", "duration": 8.0, "caption": "x", "events": []}
    (tmp_path / "media/videos").mkdir(parents=True)
    (tmp_path / "media/videos/e.mp4").touch()
    (tmp_path / "raw/demo_video").mkdir(parents=True)
    (tmp_path / "raw/demo_video/train.jsonl").write_text(json.dumps(raw) + "\n")
    source = tmp_path / "convert.jsonl"
    convert_dataset("demo_video", "train", tmp_path, source, tmp_path / "m.json", seed=0)
    records, summary = generate(tmp_path, [source])
    assert records == [] and summary["requests"] == 0
    assert summary["rejected_by_reason"] == {"no annotations": 1}


def test_dialogues_are_written_in_the_recipes_form(tmp_path: Path) -> None:
    """Prompts and checks use GroundingGPT's decimals; the dialogues come out in `convert.coords`
    / `convert.spans` (here bins), each box and span the annotation's within a bin (plus the
    canonical text's rounding: 3 decimals for boxes, 2 for spans)."""
    sources = write_sources(tmp_path)
    bins = Coords.parse("bins:100")
    out, manifest = tmp_path / "gen" / "dialogues.jsonl", tmp_path / "gen" / "manifest.json"
    cfg = asdict(Generate()) | {"seed": 0, "cache_dir": str(tmp_path / "cache")}
    generate_instructions(sources, out, manifest, cfg, (bins, bins))
    records = [json.loads(line) for line in out.read_text().splitlines()]
    known_boxes = [box_to_square(o["box"], 200, 100) for o in OBJECTS]
    known_spans = [(e["start"] / 8.0, e["end"] / 8.0) for e in EVENTS]
    found = 0
    for record in records:
        text = " ".join(t["value"] for t in record["conversations"])
        # strict: a box or span left in decimals raises ("not a bin")
        for value, known, rounding in [(b, known_boxes, FLOAT3) for b in parse_boxes(text, bins)] + [
            (s, known_spans, FLOAT2) for s in parse_spans(text, bins)
        ]:
            tolerance = bins.tolerance + rounding.tolerance + 1e-9
            assert any(value == pytest.approx(k, abs=tolerance) for k in known), value
            found += 1
    assert found >= len(records)
