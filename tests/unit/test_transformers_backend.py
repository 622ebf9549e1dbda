"""The local-model instruction backend on a tiny random chat model: prompts go through the
tokenizer's chat template, generation runs, usage is counted, and the (random) answer meets the
same validator as a GPT answer. No network: the model is built in the test."""

from __future__ import annotations

import json
from pathlib import Path

from ground.demo.llm import create_language_parts
from ground.generate.transformers_backend import TransformersBackend

TEMPLATE = (
    "{% for m in messages %}### {{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}### assistant: {% endif %}"
)


def tiny_chat_model(tmp_path: Path) -> Path:
    raw = tmp_path / "raw" / "x"
    raw.mkdir(parents=True)
    (raw / "train.jsonl").write_text(json.dumps({"caption": "a small red circle left of a blue square"}) + "\n")
    llm = create_language_parts(tmp_path / "raw", tmp_path / "models", seed=0, sizes={
        "vocab_size": 300, "llm_hidden": 32, "llm_layers": 1, "llm_heads": 2, "llm_max_positions": 4096,
    })["llm"]  # fmt: skip
    config = json.loads((llm / "tokenizer_config.json").read_text())
    (llm / "tokenizer_config.json").write_text(json.dumps(config | {"chat_template": TEMPLATE}))
    return llm


def test_local_chat_model_answers_through_the_chat_template(tmp_path):
    model = tiny_chat_model(tmp_path)
    backend = TransformersBackend({"model": str(model), "temperature": 0.0, "max_tokens": 12})
    annotation = {
        "kind": "image",
        "objects": [{"name": "small red circle", "box": [0.1, 0.2, 0.3, 0.4]}],
        "expressions": [],
        "caption": "a small red circle",
    }
    request = backend.request(annotation, turns=2)
    assert request["messages"][0]["role"] == "system"
    answer = backend.complete(request, backend.sampling(seed=0))
    assert isinstance(answer["text"], str)
    assert 0 < answer["usage"]["tokens_out"] <= 12
    assert answer["usage"]["tokens_in"] > 50  # system message + example + sample
    again = backend.complete(request, backend.sampling(seed=0))
    assert again["text"] == answer["text"]  # greedy: deterministic
