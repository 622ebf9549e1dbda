"""The conversation template GroundingGPT trains with, shared by training and generation.

    >>> pieces = prompt_pieces(record["conversations"], n_tokens={"image": 576}, record_id=record["id"])
    >>> [(text, trained), ...]                    # trained = the answer plus the stop string
    >>> prompt = inference_prompt("<image>\\nWhere is the dog?", n_tokens={"image": 576})
    >>> prompt == pieces[0][0]                    # byte-identical to the first training piece
    True

Text of a conversation (the "###" separator style the reference trains with):

    {SYSTEM}\\n\\n### Human: {human 1}\\n### Assistant: {answer 1}\\n### Human: {human 2}\\n### ...

(the system text, a blank line, then `### Human: ` / `### Assistant: ` turns each ending in a
newline: the release's training text). Only `{answer}\\n###` is trained, so the model learns to
emit the stop string `###` itself. Generation builds its prompt with `inference_prompt`, which
returns exactly the first untrained piece (`fmt="training"`, the default). The release's own
inference code built another prompt, `{SYSTEM}###Human: {human}###Assistant:` (no spaces after
`###`, no newlines): `fmt="release"` reproduces it byte for byte, to score the authors' weights
as their demo ran them.

Media tags (`<image>`, `<video>`, `<sound>`) in human turns become START + PATCH * n + END token
strings; the model replaces the PATCH embeddings by adapter outputs of the cached features.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

SYSTEM = (
    "A chat between a curious human and an artificial intelligence assistant. The assistant gives "
    "helpful, detailed, and polite answers to the human's questions."
)
STOP = "###"
HUMAN = " Human: "
ASSISTANT = "\n### Assistant: "
HEADER = SYSTEM + "\n\n"  # the training text's system header: a blank line before the turns
# The release's inference code (CLI and web demo): no space after "###", no newlines.
RELEASE_HUMAN = "###Human: "
RELEASE_ASSISTANT = "###Assistant:"
PROMPT_FORMATS = ("training", "release")

# Modality names are those of the feature store and the model; records name audio "sound".
MEDIA_TAGS = {"image": "<image>", "video": "<video>", "audio": "<sound>"}
RECORD_FIELD = {"image": "image", "video": "video", "audio": "sound"}
MEDIA_TOKENS = {
    "image": ("<im_start>", "<im_patch>", "<im_end>"),
    "video": ("<vi_start>", "<vi_patch>", "<vi_end>"),
    "audio": ("<so_start>", "<so_patch>", "<so_end>"),
}
RESERVED = tuple(token for triple in MEDIA_TOKENS.values() for token in triple)


def expand_media(text: str, n_tokens: Mapping[str, int]) -> str:
    """Replace each media tag by START + PATCH * n_tokens[modality] + END."""
    for modality, tag in MEDIA_TAGS.items():
        if tag not in text:
            continue
        if modality not in n_tokens or n_tokens[modality] < 1:
            raise ValueError(f"{tag} in the text but no token count for {modality!r}: {n_tokens}")
        start, patch, end = MEDIA_TOKENS[modality]
        text = text.replace(tag, start + patch * n_tokens[modality] + end)
    return text


def validate_turns(conversations: Any, record_id: str = "?") -> list[tuple[str, str]]:
    """(human, answer) pairs of a conversation; ValueError naming the record if it is malformed.

    Malformed: not a non-empty list of {"from", "value"} turns alternating human/gpt from a
    human turn to a gpt turn, an empty value, a media tag in an answer, or a reserved media token
    string written literally (it would splice features where no media is).
    """
    if not isinstance(conversations, list) or not conversations:
        raise ValueError(f"record {record_id}: conversations must be a non-empty list")
    if len(conversations) % 2:
        raise ValueError(f"record {record_id}: {len(conversations)} turns; the last has no answer")
    pairs = []
    for number, turn in enumerate(conversations):
        expected = "human" if number % 2 == 0 else "gpt"
        if not isinstance(turn, dict) or turn.get("from") != expected:
            raise ValueError(f"record {record_id}: turn {number} must come from {expected!r}")
        value = turn.get("value")
        if not isinstance(value, str) or not value.strip():
            raise ValueError(f"record {record_id}: turn {number} has an empty value")
        reserved = [t for t in RESERVED if t in value]
        if reserved:
            raise ValueError(f"record {record_id}: turn {number} contains reserved {reserved[0]}")
        if expected == "gpt":
            tags = [t for t in MEDIA_TAGS.values() if t in value]
            if tags:
                raise ValueError(
                    f"record {record_id}: answer {number} contains media tag {tags[0]}"
                )
            pairs.append((conversations[number - 1]["value"], value))
    return pairs


def prompt_pieces(
    conversations: Sequence[dict[str, Any]],
    *,
    n_tokens: Mapping[str, int] | None = None,
    record_id: str = "?",
) -> list[tuple[str, bool]]:
    """The conversation as (text, trained) pieces whose concatenation is the training text.

    With `n_tokens`, media tags are expanded (see `expand_media`); without, they stay as tags.
    """
    pieces: list[tuple[str, bool]] = []
    for number, (human, answer) in enumerate(validate_turns(conversations, record_id)):
        if n_tokens is not None:
            human = expand_media(human, n_tokens)
        head = HEADER + STOP if number == 0 else ""
        pieces.append((head + HUMAN + human + ASSISTANT, False))
        pieces.append((answer + "\n" + STOP, True))
    return pieces


def inference_prompt(
    question: str, n_tokens: Mapping[str, int] | None = None, fmt: str = "training"
) -> str:
    """The generation prompt for one question: the training text up to and including
    "### Assistant: " of a conversation whose first human turn is `question`, or (`fmt="release"`)
    the release's inference prompt `{SYSTEM}###Human: {question}###Assistant:`."""
    if fmt not in PROMPT_FORMATS:
        raise ValueError(f"prompt format {fmt!r} is not one of {PROMPT_FORMATS}")
    if fmt == "release":
        validate_turns([{"from": "human", "value": question}, {"from": "gpt", "value": STOP}])
        text = expand_media(question, n_tokens) if n_tokens is not None else question
        return SYSTEM + RELEASE_HUMAN + text + RELEASE_ASSISTANT
    # Built by the training code path itself (with a placeholder answer, never returned) so the
    # two prompts cannot drift apart.
    conversation = [{"from": "human", "value": question}, {"from": "gpt", "value": STOP}]
    return prompt_pieces(conversation, n_tokens=n_tokens, record_id="<inference>")[0][0]
