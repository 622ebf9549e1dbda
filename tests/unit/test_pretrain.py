"""The demo's pretraining of its tiny parts (ground.demo.pretrain): exact labels, learning,
determinism, and checkpoints the rest of the pipeline loads unchanged."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import torch

from ground.common.formats import box_to_square
from ground.demo.corpus import DemoParams, generate_demo_corpus, video_actors
from ground.demo.encoders import create_tiny_encoders
from ground.demo.llm import create_language_parts
from ground.demo.pretrain import PAIRS, frame_labels, patch_labels, pretrain_parts
from ground.model.encoders import load_encoder

SIZES = {
    "vocab_size": 300,
    "llm_hidden": 32,
    "llm_layers": 2,
    "llm_heads": 2,
    "llm_max_positions": 256,
}


def _weights(folder: Path) -> str:
    return hashlib.sha256((folder / "model.safetensors").read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("demo")
    generate_demo_corpus(root, seed=0, splits={"train": 6, "test": 1}, video_events=("appear",))
    return root


def _fresh_models(root: Path, out: Path) -> Path:
    create_language_parts(root / "raw", out, seed=0, sizes=SIZES)
    create_tiny_encoders(out, seed=0)
    return out


def test_patch_labels_follow_the_drawn_pixels() -> None:
    # an 80x64 landscape image: padded to 80x80 (8 px above and below), resized to 64 -> 0.8 scale
    record = {"width": 80, "height": 64, "objects": [
        {"shape": "square", "color": "blue", "size": "large", "box": [0, 0, 30, 30]},
        {"shape": "circle", "color": "red", "size": "small", "box": [60, 40, 72, 52]},
    ]}  # fmt: skip
    labels = patch_labels(record, size=64, patch=8)
    grid = labels["color"].view(8, 8)
    # the square covers padded rows 8..38, columns 0..30 -> resized 6.4..30.4 and 0..24 px: patch
    # rows 0..3 (row 0 holds 1.6 px rows of it, 8 x 2 pixels after the nearest-pixel resize)
    assert (grid[0:4, 0:3] == 4 + 1).all()  # "blue" is the fifth colour
    assert grid[:4, 3:].max() == 0 and grid[6:].max() == 0  # the gap and the padding
    assert (labels["shape"].view(8, 8)[0:4, 0:3] == 2).all()  # square: second shape, + 1
    owned = labels["color"] == 5
    expected = torch.tensor(box_to_square([0, 0, 30, 30], 80, 64))
    assert torch.allclose(labels["box"][owned], expected.expand(int(owned.sum()), 4))
    red = labels["color"] == 1
    assert red.any() and (labels["size"][red] == 1).all()  # small: first size, + 1
    assert torch.allclose(
        labels["box"][red][0], torch.tensor(box_to_square([60, 40, 72, 52], 80, 64))
    )
    assert (labels["box"][labels["color"] == 0] == 0).all()


def test_frame_labels_are_the_visible_actors(corpus: Path) -> None:
    params = DemoParams(corpus, 0, (80, 64), 8.0, 8, 64, 6.0, 16000, ("appear",))
    actors, n_frames = video_actors(params, "train", 0)
    event = next(a for a in actors if a.kind == "appear")
    pair = PAIRS.index((event.color, event.shape))
    assert frame_labels(actors, event.start)[pair] == 1.0
    if event.start > 0:
        assert frame_labels(actors, event.start - 1)[pair] == 0.0
    if event.end < n_frames:
        assert frame_labels(actors, event.end)[pair] == 0.0


def test_pretraining_learns_is_seeded_and_saves_loadable_parts(
    corpus: Path, tmp_path: Path
) -> None:
    steps = {"image_encoder": 40, "frame_encoder": 10, "audio_encoder": 10, "llm": 30}
    models = _fresh_models(corpus, tmp_path / "a")
    random = {p: _weights(models / p) for p in steps}
    reports = pretrain_parts(corpus, models, seed=0, steps=steps)
    assert set(reports) == set(steps)
    assert all(_weights(models / p) != random[p] for p in steps)
    for part in ("image_encoder", "llm"):  # enough steps to fit six samples' labels
        assert reports[part]["last_loss"] < 0.8 * reports[part]["first_loss"], reports[part]
    # the features step loads the pretrained checkpoint through its usual call
    image = load_encoder("image", models / "image_encoder")
    assert image.encode(torch.zeros(1, 3, 64, 64)).shape == (1, 64, 64)

    again = _fresh_models(corpus, tmp_path / "b")
    pretrain_parts(corpus, again, seed=0, steps=steps)
    assert all(_weights(again / p) == _weights(models / p) for p in steps)


def test_zero_steps_keep_a_part_random_and_unknown_parts_are_named(
    corpus: Path, tmp_path: Path
) -> None:
    models = _fresh_models(corpus, tmp_path / "m")
    before = _weights(models / "llm")
    assert pretrain_parts(corpus, models, seed=0, steps={"llm": 0}) == {}
    assert _weights(models / "llm") == before
    with pytest.raises(ValueError, match=r"download\.models\.pretrain.*'vision'"):
        pretrain_parts(corpus, models, seed=0, steps={"vision": 3})
