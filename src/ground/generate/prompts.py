"""Versioned GPT prompts of the generate step (paper section 3.2.3, figures 4-6) and their answers.

    python -m ground.generate.prompts image_conversation   # print a rendered example prompt

Each task's prompt is a file `prompts/<task>.v<N>.json`: a system message, human-written
in-context examples (a sample input and its ideal answer, sent as a user and an assistant turn)
and a template for the sample. `build_messages` renders an annotation (captions or sentences
with phrase boxes `[x1, y1, x2, y2]`, objects, expressions, events with spans `{t1, t2}`) into
that chat; `parse_answer` reads the "Question: / Answer:" format the system messages ask for.

A prompt's version is its file name plus a hash of its bytes (`PROMPT_VERSIONS`), so it is part
of every cache key. `PROMPT_LOCK` repeats those hashes in code because the step's fingerprint
hashes code, not data files: editing a prompt without updating the lock fails loudly, and
updating the lock reruns the step.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Any

from ground.common.formats import format_box

PROMPT_DIR = Path(__file__).with_name("prompts")
TASKS = ("image_detail", "image_conversation", "video_dialogue", "vcr_reasoning")
# sha256[:12] of each prompt file; update together with the file (see the module docstring).
PROMPT_LOCK = {
    "image_conversation.v1.json": "540c5c037747",
    "image_detail.v1.json": "d12cbc971cbe",
    "vcr_reasoning.v1.json": "27806c1885f1",
    "video_dialogue.v1.json": "f5110c62bacf",
}


class InvalidAnswer(ValueError):
    """A completion that does not follow the "Question: / Answer:" format."""


def _load(task: str) -> tuple[str, dict[str, Any]]:
    """(version, prompt) of the newest `prompts/<task>.v<N>.json`, checked against the lock."""
    files = sorted(
        PROMPT_DIR.glob(f"{task}.v*.json"), key=lambda p: int(p.name.split(".v")[1][:-5])
    )
    if not files:
        raise FileNotFoundError(f"no prompt file {PROMPT_DIR}/{task}.v<N>.json")
    path = files[-1]
    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()[:12]
    if PROMPT_LOCK.get(path.name) != digest:
        raise ValueError(
            f"{path}: content hash {digest} differs from PROMPT_LOCK[{path.name!r}] "
            f"({PROMPT_LOCK.get(path.name)}); update the lock in {__file__} after editing a prompt"
        )
    prompt = json.loads(data)
    missing = {"system", "examples", "template"} - set(prompt)
    if missing or not prompt["examples"]:
        raise ValueError(f"{path}: needs system, examples (non-empty) and template; {missing=}")
    return f"{path.name[:-5]}-{digest}", prompt


PROMPTS: dict[str, dict[str, Any]] = {}
PROMPT_VERSIONS: dict[str, str] = {}
for _task in TASKS:
    PROMPT_VERSIONS[_task], PROMPTS[_task] = _load(_task)
# One string for backends: any prompt edit changes it.
PROMPT_VERSION = hashlib.sha256(json.dumps(PROMPT_VERSIONS, sort_keys=True).encode()).hexdigest()[
    :12
]


def choose_task(annotation: dict[str, Any], turns: int) -> str:
    """The prompt for an annotation: VCR, video, or image (a single turn is a description)."""
    kind = annotation.get("kind")
    if kind == "vcr":
        return "vcr_reasoning"
    if kind == "video":
        return "video_dialogue"
    if kind == "image":
        return "image_detail" if turns == 1 else "image_conversation"
    raise ValueError(f"no prompt for annotation kind {kind!r}")


def _span(span: list[float]) -> str:
    return "{" + f"{span[0]:.2f}, {span[1]:.2f}" + "}"


def _grounded_sentence(sentence: dict[str, Any]) -> str:
    """The sentence with each phrase's box written right after the phrase's first occurrence."""
    text, at = sentence["text"], 0
    for phrase in sentence.get("phrases", []):
        start = text.find(phrase["text"], at)
        if start < 0:
            raise ValueError(f"phrase {phrase['text']!r} is not in sentence {text!r}")
        end = start + len(phrase["text"])
        box = format_box(phrase["box"])
        text, at = text[:end] + box + text[end:], end + len(box)
    return text


def render_annotation(annotation: dict[str, Any]) -> str:
    """The sample's text: captions/sentences, objects, expressions, events, VCR question."""
    lines: list[str] = []
    if annotation.get("sentences"):
        lines += ["Captions:", *(f"- {_grounded_sentence(s)}" for s in annotation["sentences"])]
    elif annotation.get("caption"):
        lines.append(f"Caption: {annotation['caption']}")
    if annotation.get("objects"):
        lines.append("Objects:")
        for obj in annotation["objects"]:
            name = obj.get("name") or " ".join(obj.get(k, "") for k in ("size", "color", "shape"))
            lines.append(f"- {name.strip()}{format_box(obj['box'])}")
    if annotation.get("expressions"):
        lines.append("Expressions:")
        lines += [f"- {e['text']}{format_box(e['box'])}" for e in annotation["expressions"]]
    if annotation.get("events"):
        lines.append("Events:")
        lines += [f"- {e['text']} {_span(e['span'])}" for e in annotation["events"]]
    for key in ("question", "answer", "rationale"):
        if annotation.get(key):
            lines.append(f"{key.capitalize()}: {annotation[key]}")
    return "\n".join(lines)


def build_messages(
    task: str | None, annotation: dict[str, Any], turns: int = 3
) -> list[dict[str, str]]:
    """System message, then each in-context example (user, assistant), then the sample."""
    task = task or choose_task(annotation, turns)
    prompt = PROMPTS[task]
    messages = [{"role": "system", "content": prompt["system"]}]
    for example in prompt["examples"]:
        messages.append({"role": "user", "content": example["input"]})
        messages.append({"role": "assistant", "content": example["output"]})
    sample = prompt["template"].format(annotation=render_annotation(annotation), turns=turns)
    messages.append({"role": "user", "content": sample})
    return messages


def parse_answer(text: str) -> list[dict[str, str]]:
    """Lines "Question: ..." / "Answer: ..." -> alternating human/gpt turns; else InvalidAnswer."""
    turns: list[dict[str, str]] = []
    for number, line in enumerate(text.strip().splitlines(), 1):
        line = line.strip()
        if not line:
            continue
        head, _, rest = line.partition(":")
        speaker = {"question": "human", "answer": "gpt"}.get(head.strip().lower())
        if speaker is None:
            # A continuation line of the current turn (answers may span paragraphs).
            if not turns:
                raise InvalidAnswer(f"line {number}: text before the first 'Question:'")
            turns[-1]["value"] += "\n" + line
            continue
        expected = "human" if len(turns) % 2 == 0 else "gpt"
        if speaker != expected:
            raise InvalidAnswer(
                f"line {number}: expected {'Question' if expected == 'human' else 'Answer'}"
            )
        turns.append({"from": speaker, "value": rest.strip()})
    if not turns or len(turns) % 2:
        raise InvalidAnswer("expected one or more Question/Answer pairs")
    return turns


def main() -> None:
    task = sys.argv[1] if len(sys.argv) > 1 else "image_conversation"
    example = PROMPTS[task]["examples"][0]
    for message in build_messages(task, {"kind": "image"}, 2)[:-1]:
        print(f"--- {message['role']}\n{message['content']}")
    print(f"--- version {PROMPT_VERSIONS[task]}; sample input as in:\n{example['input']}")


if __name__ == "__main__":
    main()


class PromptedBackend:
    """What the GPT-style backends share: these prompt files, the sampling settings of the
    `generate` config section; subclasses add `complete`."""

    name = ""

    def __init__(self, cfg: dict[str, Any]) -> None:
        self.model = str(cfg["model"])
        self.prompt_version = PROMPT_VERSION
        self.temperature = float(cfg["temperature"])
        self.max_tokens = int(cfg["max_tokens"])

    def request(self, annotation: dict[str, Any], turns: int) -> dict[str, Any]:
        task = choose_task(annotation, turns)
        return {"task": task, "messages": build_messages(task, annotation, turns)}

    def sampling(self, seed: int) -> dict[str, Any]:
        return {"temperature": self.temperature, "max_tokens": self.max_tokens, "seed": seed}
