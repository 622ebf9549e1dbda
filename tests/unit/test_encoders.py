"""Frozen encoders: tiny creation, loading, output shapes, identity."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from ground.demo.encoders import create_tiny_encoders
from ground.model.encoders import CLIP_MEAN, checkpoint_identity, load_encoder


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> dict[str, Path]:
    return create_tiny_encoders(tmp_path_factory.mktemp("encoders"), seed=0)


def test_layout_on_disk(tiny) -> None:
    assert {k: p.name for k, p in tiny.items()} == {
        "image": "image_encoder",
        "video": "frame_encoder",
        "audio": "audio_encoder",
    }
    for path in tiny.values():
        assert (path / "config.json").is_file() and (path / "model.safetensors").is_file()


def test_image_features_are_penultimate_layer_without_cls(tiny) -> None:
    encoder = load_encoder("image", tiny["image"])
    pixels = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    features = encoder.encode(pixels)
    assert features.shape == (2, 64, 64)  # (64 / 8)^2 patches, hidden 64
    with torch.no_grad():
        out = encoder.model(pixel_values=pixels, output_hidden_states=True)
    assert len(out.hidden_states) == 3 + 1
    torch.testing.assert_close(features, out.hidden_states[-2][:, 1:])
    assert not torch.allclose(features, out.hidden_states[-1][:, 1:])
    assert encoder.image_mean == CLIP_MEAN and encoder.input_shape == (3, 64, 64)


def test_frame_features_are_the_qformer_query_outputs(tiny) -> None:
    encoder = load_encoder("video", tiny["video"])
    pixels = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    features = encoder.encode(pixels)
    assert features.shape == (3, 8, 64)
    # transformers' own forward runs the same vision -> Q-Former path, then its ITM projection
    with torch.no_grad():
        reference = encoder.model(pixel_values=pixels).image_embeds
        projected = torch.nn.functional.normalize(encoder.model.vision_projection(features), dim=-1)
    torch.testing.assert_close(projected, reference)
    assert features.std(dim=0).mean() > 0.05, "tiny frame features must depend on the frame"
    assert features[0, 0].sub(features[0, 1]).abs().max() > 0.1, "queries must differ"


def test_audio_features_have_norm_twenty(tiny) -> None:
    encoder = load_encoder("audio", tiny["audio"])
    features = encoder.encode(torch.randn(4, 1, 128, 204))
    assert features.shape == (4, 64)
    torch.testing.assert_close(features.norm(dim=-1), torch.full((4,), 20.0))
    assert encoder.input_shape == (1, 128, 204)


def test_leading_dimensions_are_kept(tiny) -> None:
    frames = load_encoder("video", tiny["video"])
    clips = load_encoder("audio", tiny["audio"])
    video = torch.randn(2, 5, 3, 32, 32)
    features = frames.encode(video)
    assert features.shape == (2, 5, 8, 64)
    torch.testing.assert_close(features[1], frames.encode(video[1]))
    assert clips.encode(torch.randn(2, 3, 1, 128, 204)).shape == (2, 3, 64)


def test_encoders_are_frozen_and_check_their_input(tiny) -> None:
    encoder = load_encoder("image", tiny["image"])
    assert not encoder.model.training
    assert not any(p.requires_grad for p in encoder.model.parameters())
    with pytest.raises(ValueError, match=r"\[\.\.\., 3, 64, 64\]"):
        encoder.encode(torch.zeros(1, 3, 32, 32))
    with pytest.raises(ValueError, match="unknown encoder kind"):
        load_encoder("depth", tiny["image"])
    with pytest.raises(FileNotFoundError, match="config.json"):
        load_encoder("image", tiny["image"] / "absent")


def test_identity_is_stable_and_follows_the_weights(tiny, tmp_path) -> None:
    first = load_encoder("audio", tiny["audio"]).identity
    assert first == load_encoder("audio", tiny["audio"]).identity
    assert len(first) == 16 and int(first, 16) >= 0
    assert checkpoint_identity("image", tiny["audio"]) != first  # the kind is part of it

    changed = tmp_path / "audio_encoder"
    changed.mkdir()
    (changed / "config.json").write_bytes((tiny["audio"] / "config.json").read_bytes())
    weights = load_file(tiny["audio"] / "model.safetensors")
    weights["head.2.weight"][0, 0] += 1.0
    save_file(weights, changed / "model.safetensors", metadata={"format": "pt"})
    assert load_encoder("audio", changed).identity != first


def test_same_seed_same_weights(tiny, tmp_path) -> None:
    again = create_tiny_encoders(tmp_path / "again", seed=0)
    other = create_tiny_encoders(tmp_path / "other", seed=1)
    for kind, path in tiny.items():
        ours, theirs = (
            load_file(path / "model.safetensors"),
            load_file(again[kind] / "model.safetensors"),
        )
        assert ours.keys() == theirs.keys()
        assert all(torch.equal(ours[k], theirs[k]) for k in ours), kind
        assert checkpoint_identity(kind, path) == checkpoint_identity(kind, again[kind])
        assert checkpoint_identity(kind, path) != checkpoint_identity(kind, other[kind])


def test_creation_leaves_the_global_random_stream_alone(tmp_path) -> None:
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    create_tiny_encoders(tmp_path, seed=5)
    torch.testing.assert_close(torch.rand(3), expected)


def test_tiny_vision_encoders_get_readable_grid_positions(tmp_path):
    """The random tiny ViTs' positions are smooth 2-D codes of the patches' scale, so where a
    patch is stays readable in its features (a pretrained ViT's property the demo relies on)."""
    from transformers import Blip2VisionModelWithProjection, CLIPVisionModel

    from ground.demo.encoders import create_tiny_encoders, grid_positions

    codes = grid_positions(8, 64)
    assert codes.shape == (65, 64) and codes[0].abs().sum() == 0
    assert len({tuple(row.tolist()) for row in codes[1:]}) == 64  # every patch distinct
    # neighbours are closer than far patches: the code is smooth in both directions
    near, far = (codes[1] - codes[2]).norm(), (codes[1] - codes[8]).norm()
    assert near < far and (codes[1] - codes[9]).norm() < (codes[1] - codes[57]).norm()
    paths = create_tiny_encoders(tmp_path, seed=0)
    clip = CLIPVisionModel.from_pretrained(paths["image"])
    assert torch.equal(clip.embeddings.position_embedding.weight.detach(), grid_positions(8, 64))
    blip = Blip2VisionModelWithProjection.from_pretrained(paths["video"])
    assert torch.equal(blip.vision_model.embeddings.position_embedding.detach()[0], grid_positions(4, 64))
