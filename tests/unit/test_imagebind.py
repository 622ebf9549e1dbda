"""ImageBind audio branch: official key table, loading by name, forward pass, save/load."""

from __future__ import annotations

import math
import re

import pytest
import torch
import torch.nn.functional as F

from ground.model.imagebind import (
    ImageBindAudioConfig,
    ImageBindAudioModel,
    ImageBindWeightsError,
    load_imagebind_audio_weights,
    official_audio_key_shapes,
    official_to_local,
)

# huge width with 2 blocks: every official shape except the depth, and still fast
SMALL_HUGE = {"num_hidden_layers": 2}
HEADS = 12


def official_state(config: ImageBindAudioConfig, seed: int = 0) -> dict[str, torch.Tensor]:
    """A random state dict under the official names, plus keys of other modalities."""
    generator = torch.Generator().manual_seed(seed)
    state = {
        key: torch.randn(shape, generator=generator) * 0.05
        for key, shape in official_audio_key_shapes(config).items()
    }
    # LayerNorm gains near 1 so activations stay in a sensible range
    for key in state:
        if re.search(r"(norm_layer|norm_1|norm_2|heads\.audio\.0)\.weight$", key):
            state[key] += 1.0
    state["modality_postprocessors.audio.1.log_logit_scale"] = torch.tensor(math.log(20.0))
    state["modality_trunks.vision.blocks.0.attn.in_proj_weight"] = torch.zeros(3, 3)
    state["modality_preprocessors.text.mask"] = torch.zeros(77, 77)
    return state


def reference_forward(
    state: dict[str, torch.Tensor], mel: torch.Tensor, blocks: int
) -> torch.Tensor:
    """The official audio forward written out with functional ops on the official keys
    (sequence-first trunk, as imagebind_model.py runs it)."""
    pre, dim = "modality_preprocessors.audio.", state["modality_heads.audio.0.weight"].shape[0]
    x = F.conv2d(mel, state[pre + "rgbt_stem.proj.weight"], stride=10).flatten(2).transpose(1, 2)
    stem_norm = pre + "rgbt_stem.norm_layer."
    x = F.layer_norm(x, (dim,), state[stem_norm + "weight"], state[stem_norm + "bias"], eps=1e-5)
    x = torch.cat((state[pre + "cls_token"].expand(x.shape[0], -1, -1), x), dim=1)
    x = (x + state[pre + "pos_embedding_helper.pos_embed"]).transpose(0, 1)
    for i in range(blocks):
        b = f"modality_trunks.audio.blocks.{i}."
        h = F.layer_norm(x, (dim,), state[b + "norm_1.weight"], state[b + "norm_1.bias"], eps=1e-6)
        attn, _ = F.multi_head_attention_forward(
            h, h, h, dim, HEADS,
            state[b + "attn.in_proj_weight"], state[b + "attn.in_proj_bias"],
            state[b + "attn.bias_k"], state[b + "attn.bias_v"], False, 0.0,
            state[b + "attn.out_proj.weight"], state[b + "attn.out_proj.bias"],
            training=False, need_weights=False,
        )  # fmt: skip
        x = x + attn
        h = F.layer_norm(x, (dim,), state[b + "norm_2.weight"], state[b + "norm_2.bias"], eps=1e-6)
        h = F.gelu(F.linear(h, state[b + "mlp.fc1.weight"], state[b + "mlp.fc1.bias"]))
        x = x + F.linear(h, state[b + "mlp.fc2.weight"], state[b + "mlp.fc2.bias"])
    head = "modality_heads.audio."
    x = F.layer_norm(
        x.transpose(0, 1), (dim,), state[head + "0.weight"], state[head + "0.bias"], 1e-6
    )
    x = F.linear(x[:, 0], state[head + "2.weight"])
    scale = state["modality_postprocessors.audio.1.log_logit_scale"].exp().clamp(max=100)
    return F.normalize(x, dim=-1) * scale


@pytest.fixture(scope="module")
def loaded() -> tuple[ImageBindAudioModel, dict[str, torch.Tensor]]:
    config = ImageBindAudioConfig(**SMALL_HUGE)
    model = ImageBindAudioModel(config).eval()
    state = official_state(config)
    load_imagebind_audio_weights(model, state)
    return model, state


def test_huge_table_covers_all_twelve_blocks() -> None:
    config = ImageBindAudioConfig()
    table = official_audio_key_shapes(config)
    assert config.patch_grid == (12, 19)
    blocks = {int(m.group(1)) for k in table if (m := re.search(r"blocks\.(\d+)\.", k))}
    assert blocks == set(range(12))
    assert all(sum(f"blocks.{i}." in k for k in table) == 14 for i in range(12))
    assert len(table) == 5 + 12 * 14 + 3 + 1
    assert table["modality_preprocessors.audio.rgbt_stem.proj.weight"] == (768, 1, 16, 16)
    assert table["modality_preprocessors.audio.pos_embedding_helper.pos_embed"] == (1, 229, 768)
    assert table["modality_preprocessors.audio.cls_token"] == (1, 1, 768)
    assert table["modality_trunks.audio.blocks.11.attn.in_proj_weight"] == (2304, 768)
    assert table["modality_trunks.audio.blocks.11.attn.bias_k"] == (1, 1, 768)
    assert table["modality_trunks.audio.blocks.11.mlp.fc1.weight"] == (3072, 768)
    assert table["modality_heads.audio.2.weight"] == (1024, 768)
    assert table["modality_postprocessors.audio.1.log_logit_scale"] == ()


def test_table_is_exactly_the_model_state_dict() -> None:
    config = ImageBindAudioConfig(hidden_size=64, num_hidden_layers=3, num_attention_heads=4)
    ours = {k: tuple(v.shape) for k, v in ImageBindAudioModel(config).state_dict().items()}
    mapped = {official_to_local(k): s for k, s in official_audio_key_shapes(config).items()}
    assert ours == mapped


def test_every_official_tensor_lands_in_its_parameter(loaded) -> None:
    model, state = loaded
    ours = model.state_dict()
    for key, value in state.items():
        if key.startswith(("modality_trunks.vision", "modality_preprocessors.text")):
            continue
        assert torch.equal(ours[official_to_local(key)], value), key


def test_output_is_normalised_times_twenty_and_matches_reference(loaded) -> None:
    model, state = loaded
    mel = torch.randn(3, 1, 128, 204, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        out = model(mel)
        expected = reference_forward(state, mel, blocks=2)
    assert out.audio_embeds.shape == (3, 1024)
    assert out.last_hidden_state.shape == (3, 229, 768)
    torch.testing.assert_close(out.audio_embeds.norm(dim=-1), torch.full((3,), 20.0))
    torch.testing.assert_close(out.audio_embeds, expected, atol=1e-4, rtol=1e-4)


def test_no_drop_path_even_in_train_mode(loaded) -> None:
    model, _ = loaded
    mel = torch.randn(2, 1, 128, 204)
    model.train()
    try:
        with torch.no_grad():
            first, second = model(mel).audio_embeds, model(mel).audio_embeds
    finally:
        model.eval()
    assert torch.equal(first, second)


def test_missing_key_is_named() -> None:
    config = ImageBindAudioConfig(**SMALL_HUGE)
    state = official_state(config)
    del state["modality_trunks.audio.blocks.1.attn.bias_v"]
    with pytest.raises(
        ImageBindWeightsError,
        match=r"missing \(1\):\s+modality_trunks\.audio\.blocks\.1\.attn\.bias_v",
    ):
        load_imagebind_audio_weights(ImageBindAudioModel(config), state)


def test_wrong_shape_and_unexpected_keys_are_named() -> None:
    config = ImageBindAudioConfig(**SMALL_HUGE)
    state = official_state(config)
    state["modality_heads.audio.2.weight"] = torch.zeros(768, 768)
    state["modality_trunks.audio.blocks.7.norm_1.weight"] = torch.ones(768)
    model = ImageBindAudioModel(config)
    before = model.head[2].weight.clone()
    with pytest.raises(ImageBindWeightsError) as error:
        load_imagebind_audio_weights(model, state)
    message = str(error.value)
    assert "modality_heads.audio.2.weight: checkpoint [768, 768], model [1024, 768]" in message
    assert "unexpected (1)" in message and "blocks.7.norm_1.weight" in message
    assert torch.equal(model.head[2].weight, before), "nothing is copied when a key is wrong"


def test_loads_from_pth_and_round_trips_through_save_pretrained(tmp_path) -> None:
    config = ImageBindAudioConfig(hidden_size=64, num_hidden_layers=2, num_attention_heads=4)
    torch.save(official_state(config, seed=3), tmp_path / "imagebind.pth")
    model = ImageBindAudioModel(config).eval()
    load_imagebind_audio_weights(model, tmp_path / "imagebind.pth")
    model.save_pretrained(tmp_path / "saved")
    again = ImageBindAudioModel.from_pretrained(tmp_path / "saved").eval()
    assert again.config.model_type == "imagebind_audio"
    mel = torch.randn(2, 1, 128, 204)
    with torch.inference_mode():
        torch.testing.assert_close(again(mel).audio_embeds, model(mel).audio_embeds)


def test_missing_file_and_wrong_input_shape_fail_clearly(tmp_path) -> None:
    model = ImageBindAudioModel(
        ImageBindAudioConfig(hidden_size=64, num_hidden_layers=1, num_attention_heads=4)
    )
    with pytest.raises(FileNotFoundError, match="nope.pth"):
        load_imagebind_audio_weights(model, tmp_path / "nope.pth")
    with pytest.raises(ValueError, match=r"\[B, 1, 128, 204\]"):
        model(torch.zeros(1, 1, 128, 100))
