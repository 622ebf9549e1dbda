"""The convert step on hand-written raw records: schema, templates, seeding, rejections.

.venv/bin/pytest tests/unit/test_convert.py
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from ground.common.formats import box_to_square, format_box, format_span
from ground.convert.run import convert_dataset
from ground.convert.sources.demo import CONVERTERS
from ground.convert.templates import POOLS, TEMPLATE_VERSION, placeholders, render


def image_raw(raw_id: str, **changes: Any) -> dict[str, Any]:
    """A wide 200x100 image with two shapes and two expressions."""
    raw = {
        "id": raw_id,
        "image": f"media/images/{raw_id}.png",
        "width": 200,
        "height": 100,
        "objects": [
            {"shape": "circle", "color": "red", "size": "small", "box": [20, 10, 60, 50]},
            {"shape": "square", "color": "blue", "size": "large", "box": [100, 40, 180, 100]},
        ],
        "caption": "two shapes: a small red circle and a large blue square",
        "expressions": [
            {"text": "the red circle", "object": 0},
            {"text": "the square right of the circle", "object": 1},
        ],
    }
    return raw | changes


def video_raw(raw_id: str, **changes: Any) -> dict[str, Any]:
    raw = {
        "id": raw_id,
        "video": f"media/videos/{raw_id}.mp4",
        "duration": 8.0,
        "fps": 8,
        "width": 64,
        "height": 64,
        "caption": "a red circle appears, then a blue square moves right",
        "events": [
            {"text": "the red circle is visible", "start": 1.0, "end": 4.0},
            {"text": "the blue square moves to the right", "start": 3.0, "end": 8.0},
        ],
    }
    return raw | changes


def audio_raw(raw_id: str, **changes: Any) -> dict[str, Any]:
    raw = {
        "id": raw_id,
        "audio": f"media/audio/{raw_id}.wav",
        "duration": 6.0,
        "image": f"media/scenes/{raw_id}.png",
        "width": 100,
        "height": 200,
        "objects": [
            {"shape": "circle", "color": "red", "size": "small", "box": [10, 20, 50, 60]},
            {"shape": "square", "color": "blue", "size": "large", "box": [50, 100, 90, 180]},
        ],
        "source": 0,
        "box": [10, 20, 50, 60],
        "caption": "a high beeping tone",
    }
    return raw | changes


def write_raw(root: Path, dataset: str, lines: list[dict | str], split: str = "train") -> Path:
    """Raw JSONL (dicts dumped, strings verbatim) plus empty placeholder media files."""
    for line in lines:
        if isinstance(line, dict):
            for key in ("image", "video", "audio"):
                if isinstance(line.get(key), str):
                    (root / line[key]).parent.mkdir(parents=True, exist_ok=True)
                    (root / line[key]).touch()
    path = root / "raw" / dataset / f"{split}.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines))
    return path


def run(root: Path, dataset: str, seed: int = 0, **kwargs: Any) -> tuple[list[dict], dict]:
    out, manifest = root / "out" / f"{dataset}.jsonl", root / "out" / f"{dataset}.manifest.json"
    summary = convert_dataset(dataset, "train", root, out, manifest, seed=seed, **kwargs)
    assert json.loads(manifest.read_text()) == summary
    return [json.loads(line) for line in out.read_text().splitlines()], summary


def question(record: dict) -> str:
    return record["conversations"][0]["value"].split("\n")[-1]


def from_pool(task: str, **slots: str) -> set[str]:
    filled = set()
    for template in POOLS[task]:
        for name, value in slots.items():
            template = template.replace(f"<{name}>", value)
        filled.add(template)
    return filled


def test_image_records(tmp_path: Path) -> None:
    write_raw(tmp_path, "demo_image", [image_raw("a")])
    records, summary = run(tmp_path, "demo_image")
    assert [r["task"] for r in records] == ["image_caption", "rec", "reg", "rec", "reg"]
    assert summary["by_task"] == {"image_caption": 1, "rec": 2, "reg": 2}
    assert summary["records_in"] == 1 and summary["records_out"] == 5
    assert summary["template_version"] == TEMPLATE_VERSION and summary["rejected"] == []
    caption, rec, reg = records[:3]
    assert rec["id"] == "demo_image-train-a-rec-0"
    assert rec["image"] == (tmp_path / "media/images/a.png").as_posix()
    assert rec["conversations"][0]["value"].startswith("<image>\n")
    # The padded-square box: 200x100 -> 50 px of padding above.
    box = "[0.100, 0.300, 0.300, 0.500]"
    assert rec["conversations"][1]["value"] == box
    assert box == format_box(box_to_square([20, 10, 60, 50], 200, 100))
    assert question(rec) in from_pool("rec", exp="the red circle")
    assert question(reg) in from_pool("reg", region=box)
    assert reg["conversations"][1]["value"] == "the red circle"
    assert rec["meta"] == {
        "raw_id": "a",
        "width": 200,
        "height": 100,
        "box_px": [20, 10, 60, 50],
        "expression": "the red circle",
        "object": 0,
    }
    assert question(caption) in POOLS["image_caption"]
    assert caption["conversations"][1]["value"] == image_raw("a")["caption"]
    assert len(caption["meta"]["objects"]) == 2


def test_media_root_prefix(tmp_path: Path) -> None:
    write_raw(tmp_path, "demo_image", [image_raw("a")])
    records, _ = run(tmp_path, "demo_image", media_root_prefix=Path("/data/demo"))
    assert records[0]["image"] == "/data/demo/media/images/a.png"


def test_video_records(tmp_path: Path) -> None:
    write_raw(tmp_path, "demo_video", [video_raw("v")])
    records, summary = run(tmp_path, "demo_video")
    assert summary["by_task"] == {"dense_caption": 2, "temporal_grounding": 2, "video_caption": 1}
    tg, dense = records[1], records[2]
    assert tg["task"] == "temporal_grounding" and dense["task"] == "dense_caption"
    assert tg["conversations"][1]["value"] == "{0.12, 0.50}" == format_span(1.0, 4.0, 8.0)
    assert question(tg) in from_pool("temporal_grounding", event="the red circle is visible")
    assert question(dense) in from_pool("dense_caption", time="{0.12, 0.50}")
    assert dense["conversations"][1]["value"] == "the red circle is visible"
    assert tg["meta"] == {
        "raw_id": "v",
        "duration": 8.0,
        "segment_s": [1.0, 4.0],
        "query": "the red circle is visible",
    }
    assert tg["video"].endswith("media/videos/v.mp4") and "image" not in tg
    assert len(records[0]["meta"]["events"]) == 2


def test_audio_records(tmp_path: Path) -> None:
    write_raw(tmp_path, "demo_audio", [audio_raw("s")])
    (caption, loc), summary = run(tmp_path, "demo_audio")
    assert summary["by_task"] == {"audio_caption": 1, "sound_localization": 1}
    assert "sound" in caption and "image" not in caption
    assert caption["conversations"][0]["value"].startswith("<sound>\n")
    assert loc["sound"].endswith("media/audio/s.wav") and loc["image"].endswith(
        "media/scenes/s.png"
    )
    assert loc["conversations"][0]["value"].startswith("<sound>\n<image>\n")
    # 100x200: 50 px of padding on the left.
    assert loc["conversations"][1]["value"] == "[0.300, 0.100, 0.500, 0.300]"
    assert loc["meta"]["box_px"] == [10, 20, 50, 60] and loc["meta"]["width"] == 100


def test_malformed_records_are_rejected_with_line_and_reason(tmp_path: Path) -> None:
    no_caption = image_raw("c")
    del no_caption["caption"]
    lines: list[dict | str] = [
        image_raw("a"),
        "{not json",
        no_caption,
        image_raw(
            "d",
            objects=[{"shape": "circle", "color": "red", "size": "small", "box": [30, 10, 30, 50]}],
            expressions=[],
        ),
        image_raw("e", width=170),  # the blue square now sticks out of the image
        image_raw("f", expressions=[{"text": "the thing", "object": 7}]),
        image_raw("a"),
        image_raw("g"),
        image_raw("h", image="media/images/missing.png"),
    ]
    write_raw(tmp_path, "demo_image", lines)
    (tmp_path / "media/images/missing.png").unlink()
    records, summary = run(tmp_path, "demo_image", max_reject_fraction=1.0)
    reasons = {r["line"]: (r["id"], r["reason"]) for r in summary["rejected"]}
    assert sorted(reasons) == [2, 3, 4, 5, 6, 7, 9]
    assert reasons[2][0] is None and "not valid JSON" in reasons[2][1]
    assert reasons[3] == ("c", "missing field 'caption'")
    assert reasons[4][0] == "d" and "objects[0]: degenerate box" in reasons[4][1]
    assert "objects[1]: box [100, 40, 180, 100] lies outside the 170x100 image" in reasons[5][1]
    assert "expressions[0]" in reasons[6][1] and "not an index" in reasons[6][1]
    assert reasons[7] == ("a", "duplicate id (first seen on line 1)")
    assert "missing media file" in reasons[9][1] and "missing.png" in reasons[9][1]
    assert summary["records_in"] == 9
    assert {r["meta"]["raw_id"] for r in records} == {"a", "g"}


def test_bad_video_spans_are_rejected(tmp_path: Path) -> None:
    past_end = [{"text": "late", "start": 5.0, "end": 9.0}]
    reversed_ = [{"text": "backwards", "start": 4.0, "end": 2.0}]
    lines = [video_raw("ok"), video_raw("x", events=past_end), video_raw("y", events=reversed_)]
    write_raw(tmp_path, "demo_video", lines)
    _, summary = run(tmp_path, "demo_video", max_reject_fraction=1.0)
    reasons = {r["id"]: r["reason"] for r in summary["rejected"]}
    assert "outside the video [0, 8.0] s" in reasons["x"]
    assert "end must be after start" in reasons["y"]


def test_sound_box_must_match_its_source_object(tmp_path: Path) -> None:
    write_raw(tmp_path, "demo_audio", [audio_raw("s"), audio_raw("t", source=1)])
    _, summary = run(tmp_path, "demo_audio", max_reject_fraction=1.0)
    assert [r["id"] for r in summary["rejected"]] == ["t"]
    assert "differs from objects[1].box" in summary["rejected"][0]["reason"]


def test_too_many_rejections_fail_naming_the_file(tmp_path: Path) -> None:
    raw_path = write_raw(tmp_path, "demo_image", [image_raw("a"), "[]", image_raw("b")])
    out = tmp_path / "out.jsonl"
    with pytest.raises(ValueError) as err:
        convert_dataset("demo_image", "train", tmp_path, out, tmp_path / "m.json", seed=0)
    message = str(err.value)
    assert str(raw_path) in message and "1 of 3" in message
    assert "line 2" in message and "expected a JSON object, got list" in message
    assert not out.exists()


def test_empty_file_and_unknown_dataset_fail(tmp_path: Path) -> None:
    write_raw(tmp_path, "demo_image", [])
    with pytest.raises(ValueError, match="no raw records"):
        run(tmp_path, "demo_image")
    with pytest.raises(ValueError, match="known: .*demo_image"):
        run(tmp_path, "coco")
    # evaluation sets are read from their published files, which are named when missing
    with pytest.raises(FileNotFoundError, match=r"refcoco/train: missing \['.*/raw/refcoco/refs\(unc\).p'"):
        run(tmp_path, "refcoco")
    assert set(CONVERTERS) == {"demo_image", "demo_video", "demo_audio"}


def test_deterministic_for_a_seed_and_changes_with_it(tmp_path: Path) -> None:
    write_raw(tmp_path, "demo_image", [image_raw(f"r{i}") for i in range(12)])
    first, _ = run(tmp_path, "demo_image", seed=0)
    again, _ = run(tmp_path, "demo_image", seed=0)
    other, _ = run(tmp_path, "demo_image", seed=1)
    assert first == again
    assert [question(r) for r in first] != [question(r) for r in other]
    # Only the questions depend on the seed.
    assert [r["conversations"][1] for r in first] == [r["conversations"][1] for r in other]


def test_a_record_does_not_depend_on_its_neighbours(tmp_path: Path) -> None:
    write_raw(tmp_path, "demo_image", [image_raw("a"), image_raw("b")])
    before, _ = run(tmp_path, "demo_image")
    write_raw(
        tmp_path, "demo_image", [image_raw("new"), image_raw("b"), image_raw("z"), image_raw("a")]
    )
    after, _ = run(tmp_path, "demo_image")
    by_id = {r["id"]: r for r in after}
    assert all(by_id[r["id"]] == r for r in before)


def test_command_line(tmp_path: Path) -> None:
    write_raw(tmp_path, "demo_video", [video_raw("v")])
    out, manifest = tmp_path / "o.jsonl", tmp_path / "m.json"
    args = ["--dataset", "demo_video", "--split", "train", "--root", str(tmp_path)]
    args += ["--out", str(out), "--manifest", str(manifest), "--seed", "3"]
    subprocess.run([sys.executable, "-m", "ground.convert.run", *args], check=True)
    assert json.loads(manifest.read_text())["seed"] == 3
    assert len(out.read_text().splitlines()) == 5


def test_template_pools() -> None:
    paper_first = {
        "image_caption": "Provide a brief description of the given image.",
        "reg": "What object is present within the specified region<region>?",
        "rec": "In this image, where is <exp> located?",
        "object_color": "What color is this <exp>?",
        "video_caption": "Relay a brief, clear account of the video shown.",
        "dense_caption": "Describe the content shown in the video clip<time> of this video.",
        "temporal_grounding": "When did <event> occur in the video?",
        "audio_caption": "Analyze the audio and provide a description of its content.",
        "sound_localization": "What is the cause of the sound in this given image?",
    }
    for task, first in paper_first.items():
        assert POOLS[task][0] == first
    for task, templates in POOLS.items():
        assert 8 <= len(templates) <= 12, task
        assert len(set(templates)) == len(templates), task
        assert len({placeholders(t) for t in templates}) == 1, f"{task}: mixed placeholders"
    assert render("rec", random.Random(0), exp="X").count("X") == 1
    with pytest.raises(ValueError, match="takes slots"):
        render("rec", random.Random(0), region="[0.1, 0.2, 0.3, 0.4]")
    with pytest.raises(ValueError, match="no template pool"):
        render("nope", random.Random(0))


def test_boxes_and_spans_in_the_recipes_form(tmp_path: Path) -> None:
    """`convert.coords` / `convert.spans`: LocVLM's integer bins in answers and questions alike."""
    write_raw(tmp_path, "demo_image", [image_raw("a")])
    write_raw(tmp_path, "demo_video", [video_raw("v")])
    images, _ = run(tmp_path, "demo_image", coords="bins:100")
    rec, reg = images[1], images[2]
    assert rec["conversations"][1]["value"] == "[10, 30, 30, 50]"  # 0.100, 0.300, 0.300, 0.500
    assert question(reg) in from_pool("reg", region="[10, 30, 30, 50]")
    videos, _ = run(tmp_path, "demo_video", spans="bins:100", coords="float4")
    tg, dense = videos[1], videos[2]
    assert tg["conversations"][1]["value"] == "{12, 50}"  # 1.0 and 4.0 s of 8
    assert question(dense) in from_pool("dense_caption", time="{12, 50}")
    with pytest.raises(ValueError, match="bins:N"):
        run(tmp_path, "demo_video", spans="bins")
