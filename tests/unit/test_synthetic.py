"""The synthetic demo corpus: deterministic, and every label checked against the media it describes.

.venv/bin/pytest tests/unit/test_synthetic.py -q
"""

from __future__ import annotations

import json
import wave
from pathlib import Path

import ffmpeg
import numpy as np
import pytest
from PIL import Image

from ground.common.media import ffmpeg_exe, media_duration
from ground.demo.corpus import generate_demo_corpus, main
from ground.demo.media import PITCH
from ground.demo.scene import COLORS, SHAPES, SIZES
from ground.demo.video import plan_video

SPLITS = {"train": 6, "test": 3}
DATASETS = ("demo_image", "demo_video", "demo_audio")
RELATIONS = ("left of", "right of", "above", "below")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("demo")
    generate_demo_corpus(out, seed=7, splits=SPLITS)
    return out


def records(root: Path, dataset: str, split: str | None = None) -> list[dict]:
    splits = [split] if split else list(SPLITS)
    lines = []
    for name in splits:
        lines += (root / "raw" / dataset / f"{name}.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


def color_mask(pixels: np.ndarray, color: str, tolerance: int = 0) -> np.ndarray:
    diff = np.abs(pixels.astype(int) - np.array(COLORS[color])).max(axis=-1)
    return diff <= tolerance


def decode_frames(path: Path, size: int) -> np.ndarray:
    raw, _ = (
        ffmpeg.input(str(path))
        .output("pipe:", format="rawvideo", pix_fmt="rgb24")
        .run(cmd=ffmpeg_exe(), capture_stdout=True, quiet=True)
    )
    return np.frombuffer(raw, np.uint8).reshape(-1, size, size, 3)


def test_summary_counts_and_no_partial_files(corpus: Path) -> None:
    summary = json.loads((corpus / "corpus.json").read_text())
    assert summary["datasets"] == {d: SPLITS for d in DATASETS}
    assert summary["parameters"]["seed"] == 7
    for dataset in DATASETS:
        assert len(records(corpus, dataset)) == sum(SPLITS.values())
    assert not list(corpus.rglob("*.part"))


def test_same_seed_same_bytes_and_splits_independent(corpus: Path, tmp_path: Path) -> None:
    generate_demo_corpus(tmp_path / "again", seed=7, splits=SPLITS)
    for path in corpus.rglob("*"):
        if path.suffix in {".jsonl", ".png", ".wav"}:
            assert path.read_bytes() == (tmp_path / "again" / path.relative_to(corpus)).read_bytes()
    # a smaller train split leaves the train prefix and the other split unchanged
    generate_demo_corpus(tmp_path / "small", seed=7, splits={"test": 3, "train": 2})
    for dataset in DATASETS:
        assert (
            records(tmp_path / "small", dataset, "train") == records(corpus, dataset, "train")[:2]
        )
        assert records(tmp_path / "small", dataset, "test") == records(corpus, dataset, "test")
    other = tmp_path / "other"
    generate_demo_corpus(other, seed=8, splits={"train": 2})
    assert records(other, "demo_image", "train") != records(corpus, "demo_image", "train")[:2]


@pytest.mark.parametrize("dataset", ["demo_image", "demo_audio"])
def test_boxes_are_tight_around_the_drawn_colour(corpus: Path, dataset: str) -> None:
    orientations = set()
    for record in records(corpus, dataset):
        pixels = np.asarray(Image.open(corpus / record["image"]).convert("RGB"))
        assert pixels.shape[:2] == (record["height"], record["width"])
        orientations.add(record["width"] > record["height"])
        assert 2 <= len(record["objects"]) <= 4
        for obj in record["objects"]:
            assert obj["shape"] in SHAPES and obj["size"] in SIZES
            x1, y1, x2, y2 = obj["box"]
            assert 0 <= x1 < x2 <= record["width"] and 0 <= y1 < y2 <= record["height"]
            region = color_mask(pixels[y1:y2, x1:x2], obj["color"])
            # the colour reaches every edge of the box: tight, not merely inside
            assert region[0].any() and region[-1].any()
            assert region[:, 0].any() and region[:, -1].any()
            side = x2 - x1
            assert (12 <= side <= 16) if obj["size"] == "small" else (22 <= side <= 30)
    assert orientations == {True, False}


def _matching(objects: list[dict], phrase: str) -> list[int]:
    words = phrase.split()
    assert words[0] == "the" and words[-1] in SHAPES, phrase
    wanted = {"shape": words[-1]}
    for word in words[1:-1]:
        wanted["size" if word in SIZES else "color"] = word
    return [i for i, o in enumerate(objects) if all(o[k] == v for k, v in wanted.items())]


def _holds(target: dict, anchor: dict, relation: str) -> bool:
    tx1, ty1, tx2, ty2 = target["box"]
    ax1, ay1, ax2, ay2 = anchor["box"]
    return {
        "left of": tx2 <= ax1,
        "right of": tx1 >= ax2,
        "above": ty2 <= ay1,
        "below": ty1 >= ay2,
    }[relation]


def resolve(objects: list[dict], text: str) -> list[int]:
    """Objects an expression can mean, read independently of the generator."""
    for relation in RELATIONS:
        if f" {relation} " in text:
            target, anchor = text.split(f" {relation} ")
            anchors = _matching(objects, anchor)
            assert len(anchors) == 1, f"anchor of {text!r} is ambiguous"
            a = anchors[0]
            return [
                i
                for i in _matching(objects, target)
                if i != a and _holds(objects[i], objects[a], relation)
            ]
    return _matching(objects, text)


def test_expressions_identify_exactly_their_object(corpus: Path) -> None:
    spatial = 0
    for record in records(corpus, "demo_image"):
        texts = [e["text"] for e in record["expressions"]]
        assert len(set(texts)) == len(texts)
        # one expression per object
        assert sorted(e["object"] for e in record["expressions"]) == list(range(len(record["objects"])))
        for obj in record["objects"]:
            assert f"a {obj['size']} {obj['color']} {obj['shape']}" in record["caption"]
        for expression in record["expressions"]:
            assert resolve(record["objects"], expression["text"]) == [expression["object"]]
            spatial += any(f" {r} " in expression["text"] for r in RELATIONS)
    assert spatial > 0


def test_video_duration_and_events_match_the_frames(corpus: Path) -> None:
    kinds = set()
    for record in records(corpus, "demo_video"):
        path = corpus / record["video"]
        assert media_duration(path) == pytest.approx(record["duration"], abs=0.05)
        frames = decode_frames(path, record["width"])
        assert len(frames) == round(record["duration"] * record["fps"])
        times = np.arange(len(frames)) / record["fps"]
        texts = [e["text"] for e in record["events"]]
        assert 1 <= len(texts) <= 3 and len(set(texts)) == len(texts)
        for event in record["events"]:
            assert 1.5 <= event["end"] - event["start"] <= 0.35 * record["duration"] + 1e-9
            for seconds in (event["start"], event["end"]):
                assert seconds * record["fps"] == pytest.approx(round(seconds * record["fps"]))
            inside = (times >= event["start"]) & (times < event["end"])
            assert inside.any() and not inside.all()
            kinds.add(check_event(frames, inside, event["text"]))
    assert kinds == {"appear", "move", "change"}  # seed 7 happens to cover every kind


def check_event(frames: np.ndarray, inside: np.ndarray, text: str) -> str:
    """Appear / colour change: the colour is on screen exactly in the span. Move: it travels."""
    words = text.split()
    if words[-1] == "visible" or words[-2] == "turns":
        color = words[1] if words[-1] == "visible" else words[-1]
        counts = color_mask(frames, color, tolerance=40).sum(axis=(1, 2))
        span = np.flatnonzero(inside)
        assert counts[span[len(span) // 2]] > 30, text
        assert counts[~inside].max() < 5, text
        return "appear" if words[-1] == "visible" else "change"
    # a mover stands still before its span and reaches its target by the span's end
    first, last = (np.argwhere(color_mask(frames[k], words[1], 40)).mean(axis=0) for k in (0, -1))
    step = last - first  # (dy, dx)
    direction = {"right": (0, 1), "left": (0, -1), "up": (-1, 0), "down": (1, 0)}[words[-1]]
    assert np.dot(step, direction) > 10, text
    assert abs(step[0] * direction[1] - step[1] * direction[0]) < 2, text
    return "move"


def test_audio_pitch_names_the_source_colour(corpus: Path) -> None:
    for record in records(corpus, "demo_audio"):
        colors = [o["color"] for o in record["objects"]]
        assert len(set(colors)) == len(colors)  # the pitch alone singles out the source
        assert record["box"] == record["objects"][record["source"]]["box"]
        with wave.open(str(corpus / record["audio"])) as wav:
            assert (wav.getnchannels(), wav.getsampwidth(), wav.getframerate()) == (1, 2, 16000)
            assert wav.getnframes() == round(record["duration"] * 16000) == 6 * 16000
            samples = np.frombuffer(wav.readframes(wav.getnframes()), "<i2").astype(float)
        spectrum = np.abs(np.fft.rfft(samples))
        peak = np.fft.rfftfreq(len(samples), 1 / 16000)[spectrum.argmax()]
        heard = min(PITCH, key=lambda c: abs(np.log(PITCH[c][0] / peak)))
        assert heard == colors[record["source"]]
        assert record["caption"].split(" ", 1)[1].startswith(PITCH[heard][1] + " ")


def test_video_events_of_the_chosen_kinds_only() -> None:
    for events in (("appear",), ("move", "change")):
        for index in range(20):
            rng = np.random.default_rng(index)
            actors = plan_video(rng, 64, 64, 8, events)
            assert {a.kind for a in actors} - {"static"} <= set(events)
            assert any(a.kind in events for a in actors)
    with pytest.raises(ValueError, match="video events must be some of"):
        plan_video(np.random.default_rng(0), 64, 64, 8, ("explode",))


def test_bad_arguments_fail_loudly(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="split name"):
        generate_demo_corpus(tmp_path, seed=0, splits={"../x": 1})
    with pytest.raises(ValueError, match="too short"):
        generate_demo_corpus(tmp_path, seed=0, splits={"train": 1}, video_seconds=1.0)


def test_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    main(["--out", str(tmp_path), "--seed", "1", "--train", "1", "--val", "0", "--test", "1"])
    assert json.loads(capsys.readouterr().out)["datasets"]["demo_video"] == {
        "train": 1,
        "val": 0,
        "test": 1,
    }
    assert (tmp_path / "media" / "videos" / "test_00000.mp4").is_file()
