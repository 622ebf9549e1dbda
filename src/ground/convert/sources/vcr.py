"""VCR's published annotations -> `vcr` conversation records (question -> answer + rationale).

    >>> from ground.convert.sources.vcr import convert_vcr
    >>> records, rejected = convert_vcr(  # doctest: +SKIP
    ...     "vcr", Path("resources/groundinggpt/raw/vcr"), "train", seed=0)

Reads `{split}.jsonl` and, per image, the metadata json next to the VCR images (size and
detector boxes). Object references (index lists in the token lists) render as "name[box]",
boxes normalised to the padded square. The catalog's converter signature, as in
`image.py`; rejections name the jsonl line and the annot_id.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ground.convert.context import Context
from ground.convert.fields import RejectRecord, at, finite_number
from ground.convert.sources.image import Records, Result, detokenize, image_size, square_box
from ground.convert.sources.video import lower_first


def vcr_metadata(path: Path) -> tuple[float, float, list[list[float]]]:
    """(width, height, boxes xyxy px clipped to the image) of a VCR per-image metadata json."""
    if not path.is_file():
        raise RejectRecord(f"metadata file {path.as_posix()} is missing")
    boxes = []
    with at(f"metadata file {path.as_posix()}"):  # JSONDecodeError is a ValueError too
        data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict) or not isinstance(data.get("boxes"), list):
            raise RejectRecord("no 'boxes' list")
        width, height = image_size(data)
        for i, box in enumerate(data["boxes"]):
            # Detector boxes [x1, y1, x2, y2, score]: clipped to the image, checked when used.
            if not isinstance(box, list) or len(box) < 4:
                raise RejectRecord(f"boxes[{i}] {box!r} is not a box")
            x1, y1, x2, y2 = (finite_number(v, f"boxes[{i}] coordinate") for v in box[:4])
            boxes.append([max(0.0, x1), max(0.0, y1), min(width, x2), min(height, y2)])
    return width, height, boxes


def vcr_text(tokens: Any, names: list[str], boxes: list[list[float]], size: tuple) -> str:
    """VCR tokens as text: an index list `[0, 2]` becomes "person[box] and car[box]"."""
    if not isinstance(tokens, list) or not tokens:
        raise RejectRecord(f"expected a non-empty token list, got {tokens!r}")
    words = []
    for token in tokens:
        if isinstance(token, str):
            words.append(token)
            continue
        refs = []
        for i in token if isinstance(token, list) else [token]:
            if isinstance(i, bool) or not isinstance(i, int) or not 0 <= i < len(names):
                raise RejectRecord(f"object index {i!r} out of range 0..{len(names) - 1}")
            if i >= len(boxes) or boxes[i][2] <= boxes[i][0] or boxes[i][3] <= boxes[i][1]:
                raise RejectRecord(f"object {i} has no usable box in the metadata")
            refs.append(names[i] + square_box(boxes[i], *size))
        words.append(refs[0] if len(refs) == 1 else ", ".join(refs[:-1]) + " and " + refs[-1])
    return detokenize(" ".join(words))


def vcr_choice(raw: dict[str, Any], kind: str) -> Any:
    """The correct choice's tokens (`answer` or `rationale`); RejectRecord on a bad label."""
    choices, label = raw.get(f"{kind}_choices"), raw.get(f"{kind}_label")
    if not isinstance(choices, list) or not choices:
        raise RejectRecord(f"{kind}_choices {choices!r} is not a non-empty list")
    if isinstance(label, bool) or not isinstance(label, int) or not 0 <= label < len(choices):
        raise RejectRecord(f"{kind}_label {label!r} out of range 0..{len(choices) - 1}")
    return choices[label]


def _sentence(text: str) -> str:
    return text if text[-1] in ".!?" else text + "."


def vcr_answer(answer: str, rationale: str) -> str:
    """The reply "<answer>. Because <rationale>." (the rationale's sentence capital dropped)."""
    return f"{_sentence(answer)} Because {_sentence(lower_first(rationale))}"


def vcr_record(
    ctx: Context, raw: dict[str, Any], image_root: Path, prefix: str, cache: dict[Path, tuple]
) -> dict:
    """The `vcr` record of one question: question -> correct answer and rationale.

    `cache` holds the metadata already read: an image has several questions.
    """
    raw_id = str(raw.get("annot_id") or "").strip()
    if not raw_id:
        raise RejectRecord("missing annot_id")
    names = raw.get("objects")
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise RejectRecord(f"objects {names!r} is not a list of names")
    answer_tokens, rationale_tokens = vcr_choice(raw, "answer"), vcr_choice(raw, "rationale")
    for key in ("img_fn", "metadata_fn"):
        if not isinstance(raw.get(key), str) or not raw[key].strip() or ".." in raw[key]:
            raise RejectRecord(f"{key} {raw.get(key)!r} is not a relative file name")
    metadata_path = image_root / raw["metadata_fn"]
    if metadata_path not in cache:
        cache[metadata_path] = vcr_metadata(metadata_path)
    width, height, boxes = cache[metadata_path]
    size = (width, height)
    question = vcr_text(raw.get("question"), names, boxes, size)
    answer = vcr_text(answer_tokens, names, boxes, size)
    rationale = vcr_text(rationale_tokens, names, boxes, size)
    objects = [{"name": n, "box_px": b} for n, b in zip(names, boxes)]
    meta = {"annot_id": raw_id, "width": width, "height": height, "question": question,
            "answer": answer, "rationale": rationale, "objects_px": objects,
            "answer_label": raw["answer_label"], "rationale_label": raw["rationale_label"]}  # fmt: skip
    media = {"image": prefix + raw["img_fn"]}
    reply = vcr_answer(answer, rationale)
    return ctx.record(raw_id, "vcr", 0, media, reply, meta, question=question)


def convert_vcr(
    dataset: str, raw_dir: Path, split: str, seed: int, media_dir: Path | None = None
) -> Result:
    """A `vcr` record per line of `{split}.jsonl`: question -> "answer. Because rationale.".

    Object references render as "name[box]". The metadata json of each image (size and boxes)
    is read from `media_dir` (default `<root>/media/vcr`), in its `vcr1images/` folder when it
    has one (the layout of the VCR archive); image paths are relative to `media_dir`.
    """
    raw_dir = Path(raw_dir)
    media_dir = Path(media_dir) if media_dir is not None else raw_dir.parents[1] / "media" / "vcr"
    nested = (media_dir / "vcr1images").is_dir()
    image_root, prefix = (media_dir / "vcr1images", "vcr1images/") if nested else (media_dir, "")
    path = raw_dir / f"{split}.jsonl"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: published annotation file not found")
    ctx = Context.annotations_only(dataset, split, seed)
    records: Records = []
    rejected: list[dict[str, Any]] = []
    seen: set[str] = set()
    cache: dict[Path, tuple] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        raw_id = None
        try:
            raw = json.loads(line)
            if not isinstance(raw, dict):
                raise RejectRecord(f"expected a JSON object, got {type(raw).__name__}")
            raw_id = raw.get("annot_id")
            record = vcr_record(ctx, raw, image_root, prefix, cache)
            if record["meta"]["raw_id"] in seen:
                raise RejectRecord("duplicate annot_id")
        except (json.JSONDecodeError, RejectRecord) as err:
            reason = f"{path.name}:{number} (annot_id {raw_id}): {err}"
            rejected.append({"id": raw_id, "line": number, "reason": reason})
            continue
        seen.add(record["meta"]["raw_id"])
        records.append(record)
    return records, rejected
