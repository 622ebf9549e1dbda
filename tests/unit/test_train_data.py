"""Training data: template, label masking, media spans, truncation, collate, mixture, sampler."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from tokenizers import (
    AddedToken,
    Tokenizer,
    decoders,
    models,
    normalizers,
    pre_tokenizers,
    trainers,
)
from transformers import PreTrainedTokenizerFast

from ground.features.store import FeatureStore
from ground.model.template import (
    MEDIA_TOKENS,
    STOP,
    SYSTEM,
    expand_media,
    inference_prompt,
    prompt_pieces,
)
from ground.train.data import (
    IGNORE,
    FeatureLookup,
    SampleTooLong,
    StageDataset,
    encode_sample,
    load_records,
)
from ground.train.packing import collate
from ground.train.sampler import ResumableSampler, chunk_seed, epoch_order
from ground.train.setup import stage_statistics

# The order GroundingGPT adds them in (ids 32000..32008 there).
ADDED = ["<im_patch>", "<im_start>", "<im_end>", "<vi_patch>", "<vi_start>", "<vi_end>",
         "<so_patch>", "<so_start>", "<so_end>"]  # fmt: skip
N_TOKENS = {"image": 4, "video": 3, "audio": 2}


def turns(*texts: str) -> list[dict[str, str]]:
    return [{"from": "human" if i % 2 == 0 else "gpt", "value": t} for i, t in enumerate(texts)]


def record(rid: str, *texts: str, task: str = "rec", **media: str) -> dict:
    return {"id": rid, "dataset": "toy", "split": "train", "task": task, **media,
            "conversations": turns(*texts), "meta": {}}  # fmt: skip


RECORDS = [
    record("img", "<image>\nWhere is the dog?", "[0.123, 0.456, 0.789, 0.900]", image="img/a.jpg"),
    record(
        "loc",
        "<sound>\n<image>\nWhere is the sound?",
        "[0.1, 0.2, 0.3, 0.4]",
        task="sound_localization",
        sound="snd/a.wav",
        image="img/a.jpg",
    ),  # fmt: skip
    record(
        "vid",
        "<video>\nWhen does it happen?",
        "{0.12, 0.56}",
        task="temporal_grounding",
        video="vid/a.mp4",
    ),  # fmt: skip
    record(
        "chat",
        "<image>\nDescribe the dog.",
        "The dog sits.",
        "Where is it?",
        "[0.5, 0.5, 0.9, 0.9]",
        task="grounded_dialogue",
        image="img/b.jpg",
    ),  # fmt: skip
    record("text", "Describe the sound.", "A dog barks.", task="image_caption"),
]


def corpus() -> list[str]:
    texts = [SYSTEM, f"### Human: ### Assistant: {STOP} 0123456789 [], {{}}"]
    return texts + [t["value"] for r in RECORDS for t in r["conversations"]]


def make_tokenizer(kind: str) -> PreTrainedTokenizerFast:
    """Byte-level BPE (the demo's) or a LLaMA-like one that marks a word start on every text."""
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    if kind == "byte":
        tok.pre_tokenizer = pre_tokenizers.Sequence(
            [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False)]
        )  # fmt: skip
        tok.decoder = decoders.ByteLevel()
        alphabet = pre_tokenizers.ByteLevel.alphabet()
    else:  # the legacy LLaMA tokenizer.json: prepend "▁", spaces become "▁"
        tok.normalizer = normalizers.Sequence(
            [normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")]
        )
        tok.decoder = decoders.Sequence(
            [decoders.Replace("▁", " "), decoders.Fuse(), decoders.Strip(" ", 1, 0)]
        )
        alphabet = sorted(set("".join(corpus())) - {" "} | {"▁"})
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=["<unk>", "<s>", "</s>"],
                                  initial_alphabet=alphabet, show_progress=False)  # fmt: skip
    tok.train_from_iterator(corpus(), trainer=trainer)
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in ADDED])
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>",
                                   unk_token="<unk>", pad_token="<unk>",
                                   clean_up_tokenization_spaces=False)  # fmt: skip


@pytest.fixture(scope="module", params=["byte", "llama"])
def tokenizer(request: pytest.FixtureRequest) -> PreTrainedTokenizerFast:
    return make_tokenizer(request.param)


@pytest.fixture(scope="module")
def byte_tokenizer() -> PreTrainedTokenizerFast:
    return make_tokenizer("byte")


@pytest.fixture
def features(tmp_path: Path) -> FeatureLookup:
    shapes = {"image": (4, 3), "video": (2, 2, 3), "audio": (3, 5)}
    media = {"image": ["img/a.jpg", "img/b.jpg"], "video": ["vid/a.mp4"], "audio": ["snd/a.wav"]}
    index = {}
    for modality, paths in media.items():
        with FeatureStore(tmp_path / "store" / modality).writer() as writer:
            for number in range(len(paths)):
                writer.add(
                    f"{modality}{number}", torch.full(shapes[modality], number, dtype=torch.float16)
                )
        index[modality] = tmp_path / f"{modality}.index.jsonl"
        lines = [json.dumps({"media": p, "key": f"{modality}{n}"}) for n, p in enumerate(paths)]
        index[modality].write_text("".join(line + "\n" for line in lines))
    return FeatureLookup(index, tmp_path / "store")


def by_id(rid: str) -> dict:
    return next(r for r in RECORDS if r["id"] == rid)


# --- template -----------------------------------------------------------------------------


def test_pieces_concatenate_to_the_template_text() -> None:
    text = "".join(t for t, _ in prompt_pieces(by_id("chat")["conversations"]))
    assert text == (
        f"{SYSTEM}\n\n### Human: <image>\nDescribe the dog.\n### Assistant: The dog sits.\n###"
        " Human: Where is it?\n### Assistant: [0.5, 0.5, 0.9, 0.9]\n###"
    )
    trained = [t for t, flag in prompt_pieces(by_id("chat")["conversations"]) if flag]
    assert trained == ["The dog sits.\n###", "[0.5, 0.5, 0.9, 0.9]\n###"]


def test_expand_media_replaces_each_tag_by_a_span() -> None:
    text = expand_media("<sound>\n<image>\nWhere?", N_TOKENS)
    assert (
        text
        == "<so_start><so_patch><so_patch><so_end>\n<im_start>"
        + "<im_patch>" * 4
        + "<im_end>\nWhere?"
    )
    with pytest.raises(ValueError, match="video"):
        expand_media("<video>\nWhen?", {"image": 4})


@pytest.mark.parametrize(
    "conversations, problem",
    [
        ([], "non-empty"),
        (turns("Where?"), "no answer"),
        ([{"from": "gpt", "value": "x"}, {"from": "human", "value": "y"}], "human"),
        (turns("Where?", "  "), "empty"),
        (turns("Where?", "<image> here"), "media tag"),
        (turns("<im_patch> Where?", "x"), "reserved"),
    ],
)
def test_malformed_conversations_name_the_record(conversations: list, problem: str) -> None:
    with pytest.raises(ValueError, match=f"record r7.*{problem}"):
        prompt_pieces(conversations, record_id="r7")


def test_inference_prompt_is_the_first_training_piece(tokenizer: PreTrainedTokenizerFast) -> None:
    rec = by_id("chat")
    question = rec["conversations"][0]["value"]
    prompt = inference_prompt(question, N_TOKENS)
    assert prompt.endswith("\n### Assistant: ")
    assert prompt == prompt_pieces(rec["conversations"], n_tokens=N_TOKENS)[0][0]
    # Token-identical too: BOS + the prompt as generation encodes it is a prefix of the sample.
    ids = [tokenizer.bos_token_id] + tokenizer(prompt, add_special_tokens=False)["input_ids"]
    sample = encode_sample(rec, tokenizer, N_TOKENS, max_length=512)
    assert sample["input_ids"][: len(ids)] == ids
    assert all(label == IGNORE for label in sample["labels"][: len(ids)])


# --- encoding -----------------------------------------------------------------------------


@pytest.mark.parametrize("rid", [r["id"] for r in RECORDS])
def test_only_answers_and_stop_strings_are_trained(
    tokenizer: PreTrainedTokenizerFast, rid: str
) -> None:
    rec = by_id(rid)
    sample = encode_sample(rec, tokenizer, N_TOKENS, max_length=512)
    ids, labels = sample["input_ids"], sample["labels"]
    assert ids[0] == tokenizer.bos_token_id and len(ids) == len(labels)
    assert all(label in (IGNORE, i) for i, label in zip(ids, labels))
    trained = [i for i, label in zip(ids, labels) if label != IGNORE]
    answers = "".join(t["value"] + "\n" + STOP for t in rec["conversations"][1::2])
    assert tokenizer.decode(trained) == answers


@pytest.mark.parametrize("rid", ["img", "loc", "vid", "chat"])
def test_media_spans_hold_n_tokens_patches(
    byte_tokenizer: PreTrainedTokenizerFast, rid: str
) -> None:
    rec = by_id(rid)
    ids = encode_sample(rec, byte_tokenizer, N_TOKENS, max_length=512)["input_ids"]
    tokens = byte_tokenizer.convert_ids_to_tokens(ids)
    for modality, (start, patch, end) in MEDIA_TOKENS.items():
        field = {"audio": "sound"}.get(modality, modality)
        expected = N_TOKENS[modality] if field in rec else 0
        assert tokens.count(patch) == expected
        if expected:
            at = tokens.index(start)
            assert tokens[at : at + expected + 2] == [start] + [patch] * expected + [end]
    # Audio before image in the sound-localisation prompt, as the reference orders a turn.
    if rid == "loc":
        assert tokens.index("<so_start>") < tokens.index("<im_start>")


def test_truncation_cuts_text_but_never_media(byte_tokenizer: PreTrainedTokenizerFast) -> None:
    rec = by_id("img")
    full = encode_sample(rec, byte_tokenizer, N_TOKENS, max_length=512)
    first_answer = next(i for i, label in enumerate(full["labels"]) if label != IGNORE)
    cut = encode_sample(rec, byte_tokenizer, N_TOKENS, max_length=first_answer + 2)
    assert cut["input_ids"] == full["input_ids"][: first_answer + 2]
    assert cut["labels"] == full["labels"][: first_answer + 2]
    with pytest.raises(SampleTooLong, match="record img: no answer"):
        encode_sample(rec, byte_tokenizer, N_TOKENS, max_length=first_answer)
    media_end = full["input_ids"].index(byte_tokenizer.convert_tokens_to_ids("<im_end>"))
    with pytest.raises(SampleTooLong, match="record img: a media span"):
        encode_sample(rec, byte_tokenizer, N_TOKENS, max_length=media_end)


def test_record_media_must_match_the_tags(byte_tokenizer: PreTrainedTokenizerFast) -> None:
    untagged = record("bad", "Where is the dog?", "[0.1, 0.2, 0.3, 0.4]", image="img/a.jpg")
    with pytest.raises(ValueError, match="record bad: 0 <image> tags"):
        encode_sample(untagged, byte_tokenizer, N_TOKENS, max_length=512)
    orphan = record("bad2", "<video>\nWhen?", "{0.1, 0.2}")
    with pytest.raises(ValueError, match="record bad2: 1 <video> tags for no 'video'"):
        encode_sample(orphan, byte_tokenizer, N_TOKENS, max_length=512)


# --- dataset, features, collate ----------------------------------------------------------


def test_feature_lookup_names_missing_media(features: FeatureLookup) -> None:
    assert features.load("image", "img/b.jpg").shape == (4, 3)
    assert features.load("image", "./img/a.jpg").sum() == 0  # same path, spelled differently
    with pytest.raises(KeyError, match="image features for img/none.jpg"):
        features.load("image", "img/none.jpg")


def test_dataset_items_hold_ids_labels_and_cached_media(
    byte_tokenizer: PreTrainedTokenizerFast, features: FeatureLookup
) -> None:
    dataset = StageDataset(RECORDS, byte_tokenizer, N_TOKENS, 512, features)
    assert len(dataset) == len(RECORDS) and dataset.rejected == []
    for item, rec in zip(dataset, RECORDS):
        expected = encode_sample(rec, byte_tokenizer, N_TOKENS, max_length=512)
        assert item["id"] == rec["id"]
        assert item["input_ids"].dtype == torch.long
        assert item["input_ids"].tolist() == expected["input_ids"]
        assert item["labels"].tolist() == expected["labels"]
    loc = dataset[1]["media"]
    assert set(loc) == {"image", "audio"} and loc["audio"].shape == (3, 5)
    assert dataset[4]["media"] == {}
    assert dataset.lengths == [len(item["input_ids"]) for item in dataset]


def test_dataset_reports_rejects_and_stops_when_too_many(
    byte_tokenizer: PreTrainedTokenizerFast, features: FeatureLookup
) -> None:
    bad = [
        record("nofeat", "<image>\nWhere is the dog?", "[0.1, 0.2, 0.3, 0.4]", image="img/x.jpg"),
        record("broken", "Where is the dog?", "<image>"),
    ]
    dataset = StageDataset(RECORDS + bad, byte_tokenizer, N_TOKENS, 512, features, max_rejected=0.5)
    assert len(dataset) == len(RECORDS)
    reasons = {r["id"]: r["reason"] for r in dataset.rejected}
    assert set(reasons) == {"nofeat", "broken"}
    assert reasons["nofeat"].startswith("missing features") and "img/x.jpg" in reasons["nofeat"]
    assert reasons["broken"].startswith("malformed")
    with pytest.raises(ValueError, match="2 of 7 records rejected"):
        StageDataset(RECORDS + bad, byte_tokenizer, N_TOKENS, 512, features)


def test_collate_pads_right_and_stacks_media_with_owners(
    byte_tokenizer: PreTrainedTokenizerFast, features: FeatureLookup
) -> None:
    dataset = StageDataset(RECORDS, byte_tokenizer, N_TOKENS, 512, features)
    items = [dataset[i] for i in range(len(dataset))]
    pad = byte_tokenizer.pad_token_id
    batch = collate(items, pad)
    longest = max(len(item["input_ids"]) for item in items)
    assert batch["input_ids"].shape == batch["labels"].shape == (5, longest)
    assert batch["ids"] == [r["id"] for r in RECORDS]
    for row, item in enumerate(items):
        n = len(item["input_ids"])
        assert batch["attention_mask"][row].tolist() == [1] * n + [0] * (longest - n)
        assert torch.equal(batch["input_ids"][row, :n], item["input_ids"])
        assert (batch["input_ids"][row, n:] == pad).all() and (
            batch["labels"][row, n:] == IGNORE
        ).all()
    images, owners = batch["media"]["image"]
    assert images.shape == (3, 4, 3) and owners.tolist() == [0, 1, 3]
    assert batch["media"]["image"][0][2].sum() == 12  # row 3 is img/b.jpg, filled with ones
    assert batch["media"]["audio"][1].tolist() == [1]
    assert batch["media"]["video"][0].shape == (1, 2, 2, 3) and batch["media"]["video"][
        1
    ].tolist() == [2]
    assert set(collate(items[4:], pad)["media"]) == set()


def test_stage_statistics_cover_the_stages_cached_media(features: FeatureLookup) -> None:
    """The adapters' feature statistics come from the media of the stage's records that have
    cached features (uncached ones, e.g. skipped by the feature step, are left out)."""
    records = [
        record("a", "<image>\nq", "x", image="img/a.jpg"),
        record("b", "<image>\nq", "x", image="img/b.jpg"),
        record("c", "<image>\nq", "x", image="img/uncached.jpg"),
        record("v", "<video>\nq", "x", video="vid/a.mp4"),
    ]
    stats = stage_statistics(records, features)
    assert sorted(stats) == ["image", "video"]  # no record has a sound
    mean, std = stats["image"]  # img/a.jpg holds 0s, img/b.jpg 1s: [4, 3] each
    assert torch.allclose(mean, torch.full((3,), 0.5))
    assert torch.allclose(std, torch.tensor([0.0] * 4 + [1.0] * 4).std().expand(3))
    mean, std = stats["video"]  # one all-zero video: per (token, dim), std falls back to 1
    assert mean.shape == (2, 3) and torch.equal(std, torch.ones(2, 3))


def test_load_records_filters_tasks_and_names_bad_lines(tmp_path: Path) -> None:
    path = tmp_path / "records.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in RECORDS) + "\n")
    assert [r["id"] for r in load_records([path], tasks=None)] == [r["id"] for r in RECORDS]
    assert [r["id"] for r in load_records([path], tasks={"rec", "image_caption"})] == [
        "img",
        "text",
    ]
    path.write_text(json.dumps(RECORDS[0]) + "\n{not json\n")
    with pytest.raises(ValueError, match=f"{path}:2"):
        load_records([path], tasks=None)


# --- order --------------------------------------------------------------------------


def test_epoch_order_is_a_deterministic_permutation() -> None:
    order = epoch_order(50, seed=1, epoch=0)
    assert sorted(order) == list(range(50)) and order == epoch_order(50, 1, 0)
    assert order != epoch_order(50, 1, 1) and order != epoch_order(50, 2, 0)


@pytest.mark.parametrize("world", [1, 3])
def test_resumed_sampler_continues_the_uninterrupted_order(world: int) -> None:
    n, batch, killed_after = 47, 4, 2
    for rank in range(world):
        full = list(ResumableSampler(n, batch, seed=5, world_size=world, rank=rank))
        resumed = ResumableSampler(
            n, batch, seed=5, world_size=world, rank=rank, start_batch=killed_after
        )
        assert list(resumed) == full[killed_after * batch :] and len(resumed) == len(list(resumed))


def test_ranks_get_disjoint_slices_covering_the_epoch() -> None:
    n, batch, world = 48, 4, 3
    per_rank = [
        list(ResumableSampler(n, batch, seed=0, world_size=world, rank=r)) for r in range(world)
    ]
    assert sorted(i for indices in per_rank for i in indices) == list(range(n))
    # Not divisible: every rank still runs the same number of full batches.
    uneven = [
        list(ResumableSampler(50, batch, seed=0, world_size=world, rank=r)) for r in range(world)
    ]
    assert {len(indices) for indices in uneven} == {20} and set().union(*uneven) == set(range(50))


@pytest.mark.parametrize("n", [16, 18, 5])
def test_optimizer_steps_see_the_same_records_for_any_world_and_accumulation(n: int) -> None:
    """1 process x accumulation 4, 2 x 2 and 4 x 1 (batch 2, global batch 8): step s gets the
    same micro batches (as chunk number -> records), whichever rank and slot runs them."""
    batch, global_batch = 2, 8
    layouts = {}
    for world in (1, 2, 4):
        accum = global_batch // (batch * world)
        steps: dict[int, dict[int, list[int]]] = {}
        for rank in range(world):
            sampler = ResumableSampler(n, batch, seed=3, world_size=world, rank=rank, accum=accum)
            indices = list(sampler)
            assert len(indices) == sampler.batches * batch and sampler.batches % accum == 0
            for b in range(sampler.batches):
                chunk = sampler.chunk(b)
                steps.setdefault(b // accum, {})[chunk] = indices[b * batch : (b + 1) * batch]
        layouts[world] = steps
    assert layouts[1] == layouts[2] == layouts[4]
    assert len(layouts[1]) == -(-n // global_batch)  # whole global batches, the last one wrapped
    assert chunk_seed(3, 5) == chunk_seed(3, 5) != chunk_seed(3, 6)


def test_record_fields_agree_with_the_feature_step() -> None:
    from ground.features.extract import RECORD_FIELD as FEATURE_FIELDS
    from ground.model.template import RECORD_FIELD

    assert RECORD_FIELD == FEATURE_FIELDS
