"""Tiny "pretrained" language parts for the demo recipe: a tokenizer trained on the corpus and a
randomly initialised LLaMA-architecture causal LM, both saved in Hugging Face format.

    python -m ground.demo.llm --corpus resources/demo/raw --out resources/demo/models

The 7B recipe downloads Vicuna-7B instead; both load through the same `from_pretrained` calls.
The tokenizer splits every digit into its own token, as LLaMA's does: boxes and time spans are
written as decimals, and a tokenizer that merged "0.123" into one token would make coordinates
an arbitrary vocabulary instead of something the model can compose.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

SPECIAL = ["<unk>", "<s>", "</s>"]
# Text the model will meet that the raw annotations do not contain (conversation template,
# box/time punctuation); the corpus supplies the words.
EXTRA_TEXT = [
    "A chat between a curious human and an artificial intelligence assistant. The assistant gives "
    "helpful, detailed, and polite answers to the human's questions.",
    "### Human: ### Assistant: [0.123, 0.456, 0.789, 0.900] {0.12, 0.56} 0123456789",
]


def corpus_text(raw_dir: Path) -> Iterator[str]:
    """Every caption, expression and event text of the raw annotation files under `raw_dir`."""
    for path in sorted(raw_dir.rglob("*.jsonl")):
        for line in path.read_text().splitlines():
            record = json.loads(line)
            yield record.get("caption", "")
            yield from (e["text"] for e in record.get("expressions", []))
            yield from (e["text"] for e in record.get("events", []))
    yield from EXTRA_TEXT


def train_tokenizer(texts: Iterator[str], vocab_size: int) -> PreTrainedTokenizerFast:
    """Byte-level BPE with single-digit pre-tokenisation; any text stays encodable."""
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False)]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>", pad_token="<unk>"
    )


def create_tiny_llm(
    out: Path, *, vocab_size: int, hidden: int, layers: int, heads: int, max_positions: int, seed: int
) -> LlamaForCausalLM:
    """A randomly initialised LLaMA with the given size, saved as safetensors under `out`."""
    config = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=hidden,
        intermediate_size=hidden * 8 // 3 // 8 * 8,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=heads,
        max_position_embeddings=max_positions,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=0,
        tie_word_embeddings=False,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    model.save_pretrained(out)
    return model


def create_language_parts(raw_dir: Path, out: Path, *, seed: int, sizes: dict) -> dict[str, Path]:
    """Train the tokenizer on the corpus under `raw_dir`, then create the LLM sized to it."""
    tokenizer = train_tokenizer(corpus_text(raw_dir), sizes["vocab_size"])
    llm_dir = out / "llm"
    tokenizer.save_pretrained(llm_dir)
    create_tiny_llm(
        llm_dir,
        vocab_size=len(tokenizer),
        hidden=sizes["llm_hidden"],
        layers=sizes["llm_layers"],
        heads=sizes["llm_heads"],
        max_positions=sizes["llm_max_positions"],
        seed=seed,
    )
    return {"llm": llm_dir}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, required=True, help="raw annotation folder")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    sizes = dict(vocab_size=2048, llm_hidden=128, llm_layers=4, llm_heads=4, llm_max_positions=1024)
    print(create_language_parts(args.corpus, args.out, seed=args.seed, sizes=sizes))


if __name__ == "__main__":
    main()
