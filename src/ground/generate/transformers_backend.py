"""The "transformers" instruction backend: a local chat model writes the dialogues, no network.

    ground run --until generate --set generate.backend=transformers \
        --set generate.model=/models/Qwen2.5-7B-Instruct --set generate.max_concurrency=1

`generate.model` is a local folder (or hub id already in the cache) of a chat model whose
tokenizer has a chat template. Prompts and the answer format are those of the openai backend,
so the validator and the cache are shared. Generation is greedy when temperature is 0, sampled
otherwise with `torch.manual_seed(seed)`; keep max_concurrency at 1 (one model, one device).
"""

from __future__ import annotations

import threading
from typing import Any

from ground.generate.prompts import PromptedBackend


class TransformersBackend(PromptedBackend):
    """`AutoTokenizer.apply_chat_template` + `AutoModelForCausalLM.generate` on a local model."""

    name = "transformers"

    def __init__(self, cfg: dict[str, Any]) -> None:
        super().__init__(cfg)
        self._loaded: tuple[Any, Any] | None = None
        # generate() on one model from several threads is not safe.
        self._lock = threading.Lock()

    def _load(self) -> tuple[Any, Any]:
        if self._loaded is None:
            # Imported here: the offline and openai paths need neither torch nor transformers.
            from transformers import AutoModelForCausalLM, AutoTokenizer

            tokenizer = AutoTokenizer.from_pretrained(self.model)
            self._loaded = tokenizer, AutoModelForCausalLM.from_pretrained(self.model).eval()
        return self._loaded

    def complete(self, request: dict[str, Any], sampling: dict[str, Any]) -> dict[str, Any]:
        import torch

        with self._lock:
            tokenizer, model = self._load()
            # transformers 5 returns a dict (ids and attention mask) from the chat template.
            encoded = tokenizer.apply_chat_template(
                request["messages"], add_generation_prompt=True, return_tensors="pt", return_dict=True
            )
            ids = encoded["input_ids"]
            torch.manual_seed(sampling["seed"])
            sample = sampling["temperature"] > 0
            options = {"do_sample": sample} | (
                {"temperature": sampling["temperature"]} if sample else {}
            )
            with torch.no_grad():
                out = model.generate(
                    **encoded, max_new_tokens=sampling["max_tokens"], **options
                )
        new = out[0, ids.shape[1] :]
        return {
            "text": tokenizer.decode(new, skip_special_tokens=True),
            "model": self.model,
            "usage": {"tokens_in": int(ids.shape[1]), "tokens_out": int(new.shape[0])},
        }
