"""`ground import`: the released GroundingGPT checkpoint in our layout, checked tensor by tensor.

pytest tests/unit/test_release.py

A tiny checkpoint with every key of the release (tests/release_fixture.py) is imported once; the
imported LLM, adapters and encoders are compared with reference computations written here
straight from the source tensors (LAVIS's BERT Q-Former and EVA-ViT maths, LLaVA's projector).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from release_fixture import CONFIG, reference_keys, tiny_state, write_release
from safetensors.torch import load_file, save_file
from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

from ground.model.encoders import load_encoder
from ground.model.grounding import GroundingModel
from ground.model.imagebind import ImageBindAudioConfig, ImageBindAudioModel
from ground.release.layout import ReleaseError, check_layout, expected_shapes, release_sizes
from ground.release.run import compare_frame_encoders, import_release

FULL_CONFIG = {"model_type": "LEGO", "vocab_size": 32009, "hidden_size": 4096, "intermediate_size": 11008,
               "num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 32,
               "mm_vision_hidden_size": 1024, "image_token_len": 576}  # fmt: skip


@pytest.fixture(scope="module")
def imported(tmp_path_factory) -> tuple[dict[str, torch.Tensor], Path, dict]:
    root = tmp_path_factory.mktemp("release")
    state = tiny_state(seed=0)
    src = write_release(root / "src", state, fmt="bin")
    report = import_release(src, root / "out")
    return state, root / "out", report


def test_layout_maps_or_drops_every_key_of_the_full_size_release():
    state = {k: torch.empty(shape, device="meta") for k, shape, _, _ in reference_keys()}
    where = check_layout(state, expected_shapes(release_sizes(FULL_CONFIG, state)))
    assert set(where) == set(state) and len(where) == 2493
    dropped = [k for k, v in where.items() if v.startswith("dropped")]
    assert len(dropped) == 1134 + 3  # ImageBind's five other modalities, three position_ids buffers
    assert all(".audio." not in k for k in dropped if k.startswith("model.audio_encoder."))
    parts = {v.split(":")[0] for v in where.values() if not v.startswith("dropped")}
    assert parts == {"llm", "adapters", "frame_encoder", "audio_encoder"}


def test_report_names_every_source_tensor(imported):
    state, out, report = imported
    assert set(report["keys"]) == set(state) and report["tensors"] == len(state)
    assert report["mapped"] + report["dropped"] == len(state)
    assert json.loads((out / "import.json").read_text())["keys"] == report["keys"]
    assert report["keys"]["model.ln_vision.weight"] == "frame_encoder:vision_model.post_layernorm.weight"
    assert report["keys"]["model.Qformer.bert.encoder.layer.0.crossattention.self.key.weight"] == (
        "frame_encoder:qformer.encoder.layer.0.crossattention.attention.key.weight")
    assert report["keys"]["model.llama_proj.weight"] == "adapters:video.proj.weight"


def test_imported_llm_gives_the_logits_of_the_source_tensors(imported):
    state, out, _ = imported
    model = GroundingModel.from_pretrained(out).eval()
    fields = {k: CONFIG[k] for k in ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers",
                                     "num_attention_heads", "num_key_value_heads", "rms_norm_eps", "rope_theta")}  # fmt: skip
    reference = LlamaForCausalLM(LlamaConfig(**fields, tie_word_embeddings=False)).eval()
    llm = {k: v for k, v in state.items() if k.startswith(("model.layers.", "model.embed_tokens", "model.norm", "lm_head"))}
    reference.load_state_dict(llm, strict=True)
    ids = torch.tensor([[1, 400, 32001, 32000, 32002, 900, 32008, 31999]])
    with torch.no_grad():
        assert torch.equal(model.llm(input_ids=ids).logits, reference(input_ids=ids).logits)
    tokenizer = AutoTokenizer.from_pretrained(out / "llm")
    assert model.token_ids == {t: tokenizer.convert_tokens_to_ids(t) for t in model.token_ids}
    assert sorted(model.token_ids.values()) == list(range(32000, 32009))


def _ln(x, state, key, eps):
    return F.layer_norm(x, x.shape[-1:], state[f"{key}.weight"], state[f"{key}.bias"], eps)


def _linear(x, state, key):
    return F.linear(x, state[f"{key}.weight"], state.get(f"{key}.bias"))


def _attend(q, k, v, heads):
    b, n, d = q.shape
    split = lambda t: t.view(b, t.shape[1], heads, d // heads).transpose(1, 2)  # noqa: E731
    weights = (split(q) @ split(k).transpose(-1, -2) / (d // heads) ** 0.5).softmax(-1)
    return (weights @ split(v)).transpose(1, 2).reshape(b, n, d)


def ref_qformer(state, prefix, queries, keys, cross_every, heads):
    """LAVIS's BertModel on query embeddings only (BLIP-2's Q-Former), from the release names."""
    p = f"{prefix}bert."
    x = _ln(queries, state, f"{p}embeddings.LayerNorm", 1e-12)
    layer = 0
    while f"{p}encoder.layer.{layer}.attention.self.query.weight" in state:
        lp = f"{p}encoder.layer.{layer}."
        blocks = [("attention", x)] + ([("crossattention", keys)] if layer % cross_every == 0 else [])
        for name, source in blocks:
            h = _attend(_linear(x, state, f"{lp}{name}.self.query"), _linear(source, state, f"{lp}{name}.self.key"),
                        _linear(source, state, f"{lp}{name}.self.value"), heads)  # fmt: skip
            x = _ln(_linear(h, state, f"{lp}{name}.output.dense") + x, state, f"{lp}{name}.output.LayerNorm", 1e-12)
        h = F.gelu(_linear(x, state, f"{lp}intermediate_query.dense"))
        x = _ln(_linear(h, state, f"{lp}output_query.dense") + x, state, f"{lp}output_query.LayerNorm", 1e-12)
        layer += 1
    return x


def ref_frames(state, pixels):
    """EVA-ViT-g (LAVIS: no final norm, q/v biases only), ln_vision (eps 1e-5), BLIP-2 Q-Former."""
    e = "model.visual_encoder."
    x = F.conv2d(pixels, state[f"{e}patch_embed.proj.weight"], state[f"{e}patch_embed.proj.bias"],
                 stride=state[f"{e}patch_embed.proj.weight"].shape[-1]).flatten(2).transpose(1, 2)  # fmt: skip
    x = torch.cat([state[f"{e}cls_token"].expand(x.shape[0], -1, -1), x], 1) + state[f"{e}pos_embed"]
    block = 0
    while f"{e}blocks.{block}.norm1.weight" in state:
        b = f"{e}blocks.{block}."
        h = _ln(x, state, f"{b}norm1", 1e-6)
        bias = torch.cat([state[f"{b}attn.q_bias"], torch.zeros_like(state[f"{b}attn.q_bias"]), state[f"{b}attn.v_bias"]])
        q, k, v = F.linear(h, state[f"{b}attn.qkv.weight"], bias).chunk(3, dim=-1)
        x = x + _linear(_attend(q, k, v, 1), state, f"{b}attn.proj")
        x = x + _linear(F.gelu(_linear(_ln(x, state, f"{b}norm2", 1e-6), state, f"{b}mlp.fc1")), state, f"{b}mlp.fc2")
        block += 1
    image = _ln(x, state, "model.ln_vision", 1e-5)
    queries = state["model.query_tokens"].expand(pixels.shape[0], -1, -1)
    return ref_qformer(state, "model.Qformer.", queries, image, 2, 1)


def test_imported_frame_encoder_matches_the_release_computation(imported):
    state, out, _ = imported
    encoder = load_encoder("video", out / "encoders" / "frame_encoder")
    pixels = torch.randn(3, *encoder.input_shape, generator=torch.Generator().manual_seed(1))
    expected = ref_frames(state, pixels)
    got = encoder.encode(pixels)
    assert got.shape == (3, 4, 64)
    # transformers' post_layernorm takes EVA's eps (1e-6) where LAVIS's ln_vision has 1e-5
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=1e-4)
    assert expected.std() > 0.1  # not a degenerate comparison


def test_imported_audio_encoder_matches_the_source_tensors_mapped_by_hand(imported):
    state, out, _ = imported
    encoder = load_encoder("audio", out / "encoders" / "audio_encoder")
    by_hand = {"model.audio_encoder.modality_preprocessors.audio.": "preprocessor.",
               "model.audio_encoder.modality_trunks.audio.": "trunk.",
               "model.audio_encoder.modality_heads.audio.": "head.",
               "model.audio_encoder.modality_postprocessors.audio.": "postprocessor."}  # fmt: skip
    mapped = {by_hand[p] + k[len(p):]: v for k, v in state.items() for p in by_hand if k.startswith(p)}
    reference = ImageBindAudioModel(ImageBindAudioConfig(hidden_size=32, num_attention_heads=1,
                                                         projection_dim=12)).eval()  # fmt: skip
    reference.load_state_dict(mapped, strict=True)
    mel = torch.randn(2, 1, 128, 204, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        torch.testing.assert_close(encoder.encode(mel), reference(mel).audio_embeds)


def test_imported_adapters_reproduce_the_release_adapters(imported):
    state, out, _ = imported
    model = GroundingModel.from_pretrained(out).eval()
    gen = torch.Generator().manual_seed(3)
    image, video, audio = torch.randn(2, 4, 12, generator=gen), torch.randn(2, 5, 4, 64, generator=gen), torch.randn(2, 3, 12, generator=gen)
    with torch.no_grad():
        got = {m: model.adapters[m](x) for m, x in (("image", image), ("video", video), ("audio", audio))}
    proj = "model.mm_vision_projector."
    expected_image = _linear(F.gelu(_linear(image, state, f"{proj}0")), state, f"{proj}2")
    timed = (video + state["model.video_frame_position_embedding.weight"][:5, None]).flatten(1, 2)
    vq = ref_qformer(state, "model.video_Qformer.", state["model.video_query_tokens"].expand(2, -1, -1), timed, 1, 1)
    clips = audio + state["model.audio_position_embedding.weight"][:3]
    aq = ref_qformer(state, "model.audio_Qformer.", state["model.audio_query_tokens"].expand(2, -1, -1), clips, 1, 1)
    torch.testing.assert_close(got["image"], expected_image)
    torch.testing.assert_close(got["video"], _linear(vq, state, "model.llama_proj"))
    torch.testing.assert_close(got["audio"], _linear(aq, state, "model.audio_llama_proj"))


def _no_output(root: Path) -> None:
    assert not (root / "out").exists()
    assert [p.name for p in root.iterdir()] == ["src"]  # no staging folder left behind


def test_a_missing_tensor_stops_the_import_naming_it(tmp_path):
    state = tiny_state()
    del state["model.Qformer.bert.encoder.layer.3.output_query.dense.bias"]
    src = write_release(tmp_path / "src", state, fmt="safetensors", shards=1)
    with pytest.raises(ReleaseError, match=r"missing \(1\): model\.Qformer\.bert\.encoder\.layer\.3\.output_query\.dense\.bias"):
        import_release(src, tmp_path / "out")
    _no_output(tmp_path)


def test_a_wrong_shape_stops_the_import_naming_it(tmp_path):
    state = tiny_state()
    state["model.audio_llama_proj.weight"] = torch.zeros(16, 63)
    src = write_release(tmp_path / "src", state, fmt="safetensors")
    with pytest.raises(ReleaseError, match=r"mis-shaped \(1\): model\.audio_llama_proj\.weight: release \[16, 63\]"):
        import_release(src, tmp_path / "out")
    _no_output(tmp_path)


def test_an_unexpected_tensor_stops_the_import_naming_it(tmp_path):
    state = tiny_state() | {"model.video_Qformer.cls.predictions.bias": torch.zeros(3)}
    src = write_release(tmp_path / "src", state, fmt="safetensors")
    with pytest.raises(ReleaseError, match=r"unexpected \(1\): model\.video_Qformer\.cls\.predictions\.bias"):
        import_release(src, tmp_path / "out")
    _no_output(tmp_path)


class _Payload:
    def __reduce__(self):
        return (print, ("a pickled callable ran",))


def test_a_bin_shard_holding_a_pickled_callable_is_refused_naming_the_file(tmp_path, capsys):
    src = write_release(tmp_path / "src", fmt="bin")
    shard = src / "pytorch_model-00002-of-00002.bin"
    torch.save({"model.norm.weight": torch.ones(16), "x": _Payload()}, shard)
    with pytest.raises(ReleaseError, match=r"pytorch_model-00002-of-00002\.bin: refused by torch\.load\(weights_only=True\)"):
        import_release(src, tmp_path / "out")
    assert "a pickled callable ran" not in capsys.readouterr().out
    _no_output(tmp_path)


def test_report_compares_frame_encoder_tensors_by_hash(imported, tmp_path):
    _, out, _ = imported
    frame = load_file(str(out / "encoders" / "frame_encoder" / "model.safetensors"))
    same = compare_frame_encoders(frame, out / "encoders" / "frame_encoder")
    assert same["same"] and len(same["tensors"]) == 5
    save_file(frame | {"query_tokens": frame["query_tokens"] + 1}, str(tmp_path / "model.safetensors"))
    other = compare_frame_encoders(frame, tmp_path)
    assert not other["same"] and not other["tensors"]["query_tokens"]["same"]
    assert other["tensors"]["vision_model.post_layernorm.weight"]["same"]
