"""GroundingModel on a tiny random LLaMA: media tokens, splicing, trainable sets, checkpoints.

.venv/bin/pytest tests/unit/test_model.py -q
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from ground.model.adapters import feature_statistics, tokens_per_media
from ground.model.config import GroundingConfig
from ground.model.grounding import GroundingModel
from ground.model.tokens import BOUNDARY_TOKENS, MEDIA_TOKENS, SPECIAL_TOKENS, add_special_tokens

WORDS = ["<unk>", "<s>", "</s>"] + [f"w{i}" for i in range(57)]  # 60 ids
SHAPES = {"image": (4, 6), "video": (3, 2, 8), "audio": (3, 5)}
HIDDEN = 32


def tiny_tokenizer() -> PreTrainedTokenizerFast:
    vocab = {w: i for i, w in enumerate(WORDS)}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        pad_token="<unk>",
    )


def tiny_llm(vocab: int = len(WORDS)) -> LlamaForCausalLM:
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=vocab, hidden_size=HIDDEN, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=128,
        bos_token_id=1, eos_token_id=2, pad_token_id=0, tie_word_embeddings=False,
    )  # fmt: skip
    return LlamaForCausalLM(config)


def tiny_config() -> GroundingConfig:
    return GroundingConfig.for_features(
        SHAPES, llm_hidden=HIDDEN, qformer_hidden=16, qformer_heads=2, max_frames=8,
        video_queries=4, audio_queries=2,
    )  # fmt: skip


@pytest.fixture
def model() -> GroundingModel:
    tokenizer, llm = tiny_tokenizer(), tiny_llm()
    ids = add_special_tokens(tokenizer, llm)
    torch.manual_seed(1)
    return GroundingModel(llm, tiny_config(), ids).eval()  # eval: Q-Former dropout off


def span(model: GroundingModel, modality: str, n: int | None = None) -> list[int]:
    start, patch, end = (model.token_ids[t] for t in MEDIA_TOKENS[modality])
    return [start] + [patch] * (model.tokens_per_media()[modality] if n is None else n) + [end]


def make_batch(model: GroundingModel, video_patches: int | None = None) -> dict:
    """Row 0: image; row 1: audio then video; row 2: text only. Right-padded with id 0."""
    rows = [
        [1, 5, *span(model, "image"), 6, 7],
        [1, *span(model, "audio"), *span(model, "video", video_patches), 8],
        [1, 9, 10, 11],
    ]
    length = max(map(len, rows))
    input_ids = torch.tensor([r + [0] * (length - len(r)) for r in rows])
    attention_mask = torch.tensor([[1] * len(r) + [0] * (length - len(r)) for r in rows])
    torch.manual_seed(2)
    media = {
        "image": (torch.randn(1, *SHAPES["image"]).half(), torch.tensor([0])),  # fp16 cache
        "video": (torch.randn(1, *SHAPES["video"]), torch.tensor([1])),
        "audio": (torch.randn(1, *SHAPES["audio"]), torch.tensor([1])),
    }
    labels = torch.where(attention_mask.bool(), input_ids, -100)
    labels[:, :3] = -100
    return {
        "input_ids": input_ids,
        "attention_mask": attention_mask,
        "labels": labels,
        "media": media,
    }


def test_special_tokens_in_order_with_mean_rows() -> None:
    tokenizer, llm = tiny_tokenizer(), tiny_llm()
    old_in = llm.get_input_embeddings().weight.detach().clone()
    old_out = llm.get_output_embeddings().weight.detach().clone()
    ids = add_special_tokens(tokenizer, llm)
    assert list(ids) == list(SPECIAL_TOKENS)
    assert list(ids.values()) == list(range(60, 69))
    assert len(tokenizer) == 69 and llm.config.vocab_size == 69
    new_in, new_out = llm.get_input_embeddings().weight, llm.get_output_embeddings().weight
    assert torch.equal(new_in[:60], old_in) and torch.equal(new_out[:60], old_out)
    torch.testing.assert_close(new_in[60:], old_in.mean(0).expand(9, -1))
    torch.testing.assert_close(new_out[60:], old_out.mean(0).expand(9, -1))
    assert tokenizer("w3 <vi_start> w4", add_special_tokens=False)["input_ids"] == [6, 64, 7]
    assert add_special_tokens(tokenizer, llm) == ids  # idempotent
    assert len(tokenizer) == 69 and new_in.shape[0] == 69


def test_config_round_trip_and_7b(tmp_path: Path) -> None:
    cfg = tiny_config()
    cfg.to_json(tmp_path / "c.json")
    assert GroundingConfig.from_json(tmp_path / "c.json") == cfg
    big = GroundingConfig.for_7b()
    assert tokens_per_media(big) == {"image": 576, "video": 64, "audio": 8}
    assert (big.qformer_hidden, big.qformer_heads, big.max_frames, big.max_clips) == (
        768,
        12,
        64,
        8,
    )
    with pytest.raises(ValueError, match="qformer_heads"):
        GroundingConfig.for_features(SHAPES, llm_hidden=32, qformer_hidden=10, qformer_heads=3)


def test_adapter_shapes(model: GroundingModel) -> None:
    out = {m: model.adapters[m](torch.randn(2, *s)) for m, s in SHAPES.items()}
    assert {m: tuple(o.shape) for m, o in out.items()} == {
        "image": (2, 4, HIDDEN), "video": (2, 4, HIDDEN), "audio": (2, 2, HIDDEN)
    }  # fmt: skip
    with pytest.raises(ValueError, match="video has 9 frames"):
        model.adapters["video"](torch.randn(1, 9, 2, 8))


def test_feature_statistics_pool_items_and_first_axis() -> None:
    torch.manual_seed(0)
    items = [torch.randn(3, 2, 8) * 4 + 1 for _ in range(5)]  # 5 videos, 3 frames, 2 tokens
    items[2][:, 1, 0] = 7.0
    for item in items:
        item[:, 0, 3] = 2.5  # a constant dimension
    mean, std = feature_statistics(items)
    pooled = torch.cat(items)  # [15, 2, 8]: frames of all videos
    assert mean.shape == std.shape == (2, 8)
    assert torch.allclose(mean, pooled.mean(0)) and torch.allclose(mean[0, 3], torch.tensor(2.5))
    assert torch.allclose(std[1], pooled.std(0)[1])
    # the constant dimension gets the floor (1e-3 of the overall std), not 0
    assert torch.isclose(std[0, 3], 1e-3 * pooled.double().std().float(), rtol=1e-4)


def test_standardized_adapters_read_scaled_features(model: GroundingModel, tmp_path: Path) -> None:
    """With standardize_features the adapters see (x - mean) / std; the buffers are saved."""
    llm = tiny_llm(model.llm.get_input_embeddings().weight.shape[0])
    scaled = GroundingModel(llm, replace(tiny_config(), standardize_features=True), model.token_ids)
    missing, _ = scaled.adapters.load_state_dict(model.adapters.state_dict(), strict=False)
    assert sorted(missing) == sorted(f"{m}.scale.{b}" for m in SHAPES for b in ("mean", "std"))
    scaled.eval()
    torch.manual_seed(3)
    for modality, shape in SHAPES.items():
        mean, std = torch.randn(shape[1:]), torch.rand(shape[1:]) + 0.5
        scaled.adapters[modality].scale.set(mean, std)
        features = torch.randn(2, *shape)
        with torch.no_grad():
            want = model.adapters[modality]((features - mean) / std)
            assert torch.allclose(scaled.adapters[modality](features), want, atol=1e-6)
            assert not torch.allclose(model.adapters[modality](features), want, atol=1e-3)
    scaled.save_pretrained(tmp_path / "ckpt")
    loaded = GroundingModel.from_pretrained(tmp_path / "ckpt")
    assert loaded.config.standardize_features
    assert torch.equal(loaded.adapters["video"].scale.std, scaled.adapters["video"].scale.std)


def test_patch_positions_hold_adapter_outputs(model: GroundingModel) -> None:
    batch = make_batch(model)
    ids, media = batch["input_ids"], batch["media"]
    with torch.no_grad():
        spliced = model.embed_inputs(ids, media)
        plain = model.llm.get_input_embeddings()(ids)
        expected = {m: model.adapters[m](f)[0] for m, (f, _) in media.items()}
    patch = {m: model.token_ids[MEDIA_TOKENS[m][1]] for m in MEDIA_TOKENS}
    assert torch.equal(spliced[0][ids[0] == patch["image"]], expected["image"])
    assert torch.equal(spliced[1][ids[1] == patch["video"]], expected["video"])
    assert torch.equal(spliced[1][ids[1] == patch["audio"]], expected["audio"])
    other = ~torch.isin(ids, torch.tensor(list(patch.values())))
    assert torch.equal(spliced[other], plain[other])
    assert spliced.shape == plain.shape


def test_wrong_patch_count_names_the_row(model: GroundingModel) -> None:
    batch = make_batch(model, video_patches=3)
    with pytest.raises(ValueError, match="row 1: 3 video PATCH tokens, but its video item makes 4"):
        model(**batch)
    media = {k: v for k, v in batch["media"].items() if k != "image"}
    with pytest.raises(ValueError, match="row 0: 4 image PATCH tokens, but it has no image item"):
        model(**make_batch(model) | {"media": media})


def test_text_only_batch_never_runs_video_adapter(model: GroundingModel) -> None:
    calls = []
    model.adapters["video"].register_forward_hook(lambda *_: calls.append(1))
    ids = torch.tensor([[1, 5, 6, 7], [1, 8, 9, 0]])
    model(ids, torch.ones_like(ids))
    model(ids, torch.ones_like(ids), media={})
    batch = make_batch(model)
    model(**batch)
    assert len(calls) == 1


def test_loss_is_finite_and_reaches_adapters(model: GroundingModel) -> None:
    model.set_trainable(1)
    out = model(**make_batch(model))
    assert torch.isfinite(out.loss)
    out.loss.backward()
    for modality in ("image", "video", "audio"):
        grads = [p.grad for p in model.adapters[modality].parameters()]
        assert all(g is not None for g in grads)
        assert any(g.abs().sum() > 0 for g in grads)


STAGE1_ADAPTER_TOPS = {
    "adapters.image.fc1.weight", "adapters.image.fc1.bias",
    "adapters.image.fc2.weight", "adapters.image.fc2.bias",
    "adapters.video.position.weight", "adapters.video.query_tokens",
    "adapters.video.proj.weight", "adapters.video.proj.bias",
    "adapters.audio.position.weight", "adapters.audio.query_tokens",
    "adapters.audio.proj.weight", "adapters.audio.proj.bias",
}  # fmt: skip


def test_stage1_trainable_set(model: GroundingModel) -> None:
    names = model.set_trainable(1)
    assert names == sorted(names)
    adapters = [n for n in names if n.startswith("adapters.")]
    assert set(names) - set(adapters) == {"llm.model.embed_tokens.weight"}
    assert STAGE1_ADAPTER_TOPS <= set(adapters)
    qformer = set(adapters) - STAGE1_ADAPTER_TOPS
    assert all(
        n.startswith(("adapters.video.qformer.", "adapters.audio.qformer.")) for n in qformer
    )
    # Two layers, cross-attention in each: one crossattention block per layer per Q-Former.
    for modality in ("video", "audio"):
        for layer in (0, 1):
            key = f"adapters.{modality}.qformer.encoder.layer.{layer}.crossattention.attention.key.weight"
            assert key in qformer
    assert len(adapters) == sum(1 for _ in model.adapters.parameters())


def test_stage2_trains_everything(model: GroundingModel) -> None:
    model.set_trainable(1)
    names = model.set_trainable(2)
    assert names == sorted(n for n, _ in model.named_parameters())
    assert {"llm.lm_head.weight", "llm.model.layers.0.self_attn.q_proj.weight"} <= set(names)
    assert model.set_trainable(3) == names


def test_stage1_step_changes_only_boundary_rows(model: GroundingModel) -> None:
    model.set_trainable(1)
    embed = model.llm.get_input_embeddings().weight
    before = embed.detach().clone()
    head = model.llm.get_output_embeddings().weight.detach().clone()
    frozen = model.llm.model.layers[0].mlp.up_proj.weight.detach().clone()
    optimizer = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad], lr=1e-2, weight_decay=0.0
    )
    model(**make_batch(model)).loss.backward()
    optimizer.step()
    changed = (embed.detach() != before).any(dim=1).nonzero().flatten().tolist()
    assert changed == sorted(model.token_ids[t] for t in BOUNDARY_TOKENS)
    assert torch.equal(model.llm.get_output_embeddings().weight, head)
    assert torch.equal(model.llm.model.layers[0].mlp.up_proj.weight, frozen)


def test_save_load_round_trip(model: GroundingModel, tmp_path: Path) -> None:
    batch = make_batch(model)
    with torch.no_grad():
        before = model(**batch).logits
    model.save_pretrained(tmp_path / "ckpt")
    assert {p.name for p in (tmp_path / "ckpt").iterdir()} == {
        "llm",
        "adapters.safetensors",
        "grounding.json",
    }
    loaded = GroundingModel.from_pretrained(tmp_path / "ckpt").eval()
    assert loaded.config == model.config and loaded.token_ids == model.token_ids
    with torch.no_grad():
        assert torch.equal(loaded(**batch).logits, before)


def test_from_base_adds_tokens_and_generates(tmp_path: Path) -> None:
    tiny_tokenizer().save_pretrained(tmp_path / "base")
    tiny_llm().save_pretrained(tmp_path / "base")
    model, tokenizer = GroundingModel.from_base(tmp_path / "base", tiny_config())
    assert model.token_ids == {t: 60 + i for i, t in enumerate(SPECIAL_TOKENS)}
    assert tokenizer.convert_tokens_to_ids("<so_end>") == 68
    model.eval()
    batch = make_batch(model)
    new = model.generate(batch["input_ids"][:2], batch["attention_mask"][:2],
                         {"image": batch["media"]["image"], "video": batch["media"]["video"],
                          "audio": batch["media"]["audio"]}, max_new_tokens=3, do_sample=False)  # fmt: skip
    assert new.shape == (2, 3)
