"""The two prompt formats, byte for byte, and the decoding settings (greedy, or seeded sampling).

pytest tests/unit/test_eval_prompts.py
"""

from __future__ import annotations

import pytest
import torch

from ground.eval.infer import _sampling
from ground.model.template import inference_prompt, prompt_pieces

# Written out here, not imported: these are the release's bytes (groundinggpt-release.md).
SYSTEM = ("A chat between a curious human and an artificial intelligence assistant. The assistant "
          "gives helpful, detailed, and polite answers to the human's questions.")  # fmt: skip
QUESTION = "<image>\nWhere is the dog? Answer with a box."
MEDIA = "<im_start><im_patch><im_patch><im_end>"


def test_training_format_is_the_releases_training_text():
    prompt = inference_prompt(QUESTION, {"image": 2})
    assert prompt == (SYSTEM + "\n\n### Human: " + MEDIA + "\nWhere is the dog? Answer with a box."
                      "\n### Assistant: ")  # fmt: skip
    conversation = [{"from": "human", "value": QUESTION}, {"from": "gpt", "value": "[0.1, 0.2, 0.3, 0.4]"},
                    {"from": "human", "value": "And the cat?"}, {"from": "gpt", "value": "[0.5, 0.5, 0.6, 0.7]"}]  # fmt: skip
    text = "".join(t for t, _ in prompt_pieces(conversation, n_tokens={"image": 2}))
    assert text == (SYSTEM + "\n\n### Human: " + MEDIA + "\nWhere is the dog? Answer with a box.\n"
                    "### Assistant: [0.1, 0.2, 0.3, 0.4]\n### Human: And the cat?\n"
                    "### Assistant: [0.5, 0.5, 0.6, 0.7]\n###")  # fmt: skip


def test_release_format_is_the_releases_inference_prompt():
    prompt = inference_prompt(QUESTION, {"image": 2}, fmt="release")
    assert prompt == SYSTEM + "###Human: " + MEDIA + "\nWhere is the dog? Answer with a box.###Assistant:"
    assert inference_prompt("<video>\nWhen?", {"video": 1}, fmt="release").encode() == (
        SYSTEM + "###Human: <vi_start><vi_patch><vi_end>\nWhen?###Assistant:").encode()
    assert "\n\n" not in prompt and "### " not in prompt


def test_unknown_format_and_reserved_tokens_are_refused():
    with pytest.raises(ValueError, match="prompt format 'llava'"):
        inference_prompt(QUESTION, {"image": 2}, fmt="llava")
    with pytest.raises(ValueError, match="reserved"):
        inference_prompt("<im_patch> where?", {"image": 2}, fmt="release")


def test_decoding_is_greedy_by_default_and_sampling_is_seeded_per_batch():
    records = [{"id": "a"}, {"id": "b"}]
    assert _sampling({"temperature": 0.0, "seed": 0}, records) == {"do_sample": False}
    args = _sampling({"temperature": 0.2, "seed": 7}, records)
    assert args["do_sample"] is True and args["temperature"] == 0.2
    first = torch.rand(3)
    _sampling({"temperature": 0.2, "seed": 7}, records)
    assert torch.equal(torch.rand(3), first)  # same seed, same batch: the same draws
    _sampling({"temperature": 0.2, "seed": 8}, records)
    assert not torch.equal(torch.rand(3), first)
    _sampling({"temperature": 0.2, "seed": 7}, records[:1])
    assert not torch.equal(torch.rand(3), first)
