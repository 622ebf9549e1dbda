"""The "openai" instruction backend: GPT (or any OpenAI-compatible server) writes the dialogues.

    OPENAI_API_KEY=... ground run --until generate --set generate.backend=openai \
        --set generate.base_url=http://127.0.0.1:8000/v1 --set generate.model=my-model

Works against OpenAI, vLLM, llama.cpp server and anything else that serves
`POST /v1/chat/completions`. The key is read from the environment variable NAMED by
`generate.api_key_env` and lives only inside the client: it is never stored on this object,
printed, cached or put in an error message (server messages are redacted before they are shown).
The client's own retries are off: `with_retries` retries 429, 5xx, timeouts and connection
errors with exponential backoff and jitter, so the policy is ours and testable.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable
from typing import Any, TypeVar

import openai

from ground.generate.prompts import PromptedBackend

T = TypeVar("T")
# Seconds before the first retry; doubled each time. Module-level so tests can make it tiny.
BACKOFF_BASE_S = 0.5
BACKOFF_MAX_S = 30.0
RETRYABLE = (openai.RateLimitError, openai.InternalServerError, openai.APIConnectionError)


class BackendError(RuntimeError):
    """A request that failed for good (non-retryable, or out of retries); the key is redacted."""


def api_key(env_name: str) -> str:
    """The key from the environment; the error names the variable, never a value."""
    key = os.environ.get(env_name, "")
    if not key:
        raise BackendError(
            f"openai backend: environment variable {env_name} is not set "
            f"(generate.api_key_env names the variable that holds the API key)"
        )
    return key


def _redact(text: str, secret: str) -> str:
    return text.replace(secret, "***") if secret else text


def with_retries(
    call: Callable[[], T],
    max_retries: int,
    *,
    secret: str = "",
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """`call()`, retried on transient errors with exponential backoff plus jitter."""
    for attempt in range(max_retries + 1):
        try:
            return call()
        except RETRYABLE as err:
            # 5xx that are not "internal server error" (502, 503, 504) are APIStatusError too.
            if attempt == max_retries:
                raise BackendError(
                    f"openai backend: gave up after {attempt + 1} attempt(s): "
                    f"{type(err).__name__}: {_redact(str(err), secret)}"
                ) from None
            delay = min(BACKOFF_MAX_S, BACKOFF_BASE_S * 2**attempt)
            sleep(delay * (1 + random.random() / 2))
        except openai.APIStatusError as err:
            raise BackendError(
                f"openai backend: HTTP {err.status_code} is not retryable: "
                f"{_redact(str(err), secret)}"
            ) from None
    raise AssertionError("unreachable")


class OpenAIBackend(PromptedBackend):
    """Chat completions from an OpenAI-compatible endpoint; responses are raw text + usage."""

    name = "openai"

    def __init__(self, cfg: dict[str, Any]) -> None:
        super().__init__(cfg)
        self.max_retries = int(cfg["max_retries"])
        self._key_env = str(cfg["api_key_env"])
        self._base_url = cfg["base_url"] or None
        self._timeout = float(cfg["timeout_s"])
        self._client: openai.OpenAI | None = None

    def _connect(self) -> openai.OpenAI:
        # Lazily: a dry run or an all-cached run needs no key at all.
        if self._client is None:
            self._client = openai.OpenAI(
                base_url=self._base_url,
                api_key=api_key(self._key_env),
                max_retries=0,
                timeout=self._timeout,
            )
        return self._client

    def complete(self, request: dict[str, Any], sampling: dict[str, Any]) -> dict[str, Any]:
        """`{"text", "usage": {"tokens_in", "tokens_out"}, "model"}`; parsed by the validator."""
        client = self._connect()

        def call() -> Any:
            return client.chat.completions.create(
                model=self.model, messages=request["messages"], **sampling
            )

        completion = with_retries(call, self.max_retries, secret=client.api_key)
        usage = completion.usage
        text = completion.choices[0].message.content if completion.choices else None
        return {
            "text": text or "",
            "model": completion.model,
            "usage": {
                "tokens_in": usage.prompt_tokens if usage else 0,
                "tokens_out": usage.completion_tokens if usage else 0,
            },
        }
