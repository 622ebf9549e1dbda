"""Converters for the evaluation sets' published annotation files -> conversation records.

    >>> from ground.convert.sources.evalsets import convert_charades_sta
    >>> records, rejected = convert_charades_sta(  # doctest: +SKIP
    ...     Path("raw/charades_sta_test.txt"), Path("raw/Charades_v1_test.csv"), "test", seed=0)

Also `convert_refcoco(refs_pickle, instances_json, dataset, split, seed)`,
`convert_vggss(vggss_json, seed=0)`, and `convert_raw_dir(dataset, raw_dir, split, seed)` which
finds the upstream file names for every dataset of `EVALSETS` (what `ground data convert` needs). Each reads annotation files only (it works before the media
are downloaded), writes media paths as `DIR/NAME` relative to the dataset's media root, and
returns `(records, rejected)`: records in `ground.convert.context`'s schema (ids stable across runs,
questions drawn from the task's template pool with a generator seeded per record) and one
`{"line" or "id", "reason"}` per raw record that could not be converted. Every record's `meta`
keeps the ground truth in original units for scoring; values changed by clipping are recorded in
`meta["clipped"]`, which `clipping_report` collects for a manifest.
"""

from __future__ import annotations

import csv
import math
from collections import Counter
from pathlib import Path
from typing import Any

from ground.common.formats import box_to_square, format_box, format_span
from ground.common.jsonl import read_json
from ground.convert.context import Context
from ground.convert.fields import RejectRecord
from ground.convert.safe_pickle import load_plain_pickle

Records = list[dict[str, Any]]
Result = tuple[Records, list[dict[str, Any]]]

REFCOCO_DATASETS = ("refcoco", "refcoco+", "refcocog")


def _number(text: str, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise RejectRecord(f"{what} {text!r} is not a number") from None
    if not math.isfinite(value):
        raise RejectRecord(f"{what} {text!r} is not finite")
    return value


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def clipping_report(records: Records) -> list[dict[str, Any]]:
    """`{"id", "clipped"}` of every record whose ground truth was clipped or had boxes dropped."""
    return [
        {"id": r["id"], "clipped": r["meta"]["clipped"]} for r in records if "clipped" in r["meta"]
    ]


# ---------------------------------------------------------------------------- Charades-STA


def read_charades_durations(durations_csv: Path) -> dict[str, float | None]:
    """Video id -> `length` in seconds from `Charades_v1_{split}.csv` (None when unusable)."""
    with Path(durations_csv).open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        missing = {"id", "length"} - set(reader.fieldnames or ())
        if missing:
            raise ValueError(f"{durations_csv}: header lacks column(s) {sorted(missing)}")
        durations: dict[str, float | None] = {}
        for row in reader:
            try:
                length: float | None = float(row["length"])
            except (TypeError, ValueError):
                length = None
            usable = length is not None and math.isfinite(length) and length > 0
            durations[row["id"].strip()] = length if usable else None
    return durations


def parse_charades_line(line: str) -> tuple[str, float, float, str]:
    """`VID start end##sentence` -> (video id, start s, end s, sentence)."""
    head, sep, query = line.partition("##")
    parts = head.split()
    if not sep or len(parts) != 3 or not query.strip():
        raise RejectRecord(f"expected 'VID start end##sentence', got {line.strip()!r}")
    vid, start, end = parts
    return vid, _number(start, "start"), _number(end, "end"), query.strip()


def charades_segment(
    start: float, end: float, duration: float
) -> tuple[list[float], dict[str, float]]:
    """The segment clipped to [0, duration] and what was clipped; RejectRecord if it is empty."""
    clipped: dict[str, float] = {}
    if end > duration:
        clipped["end_s"] = end
        end = duration
    if start < 0:
        clipped["start_s"] = start
        start = 0.0
    if start >= end:
        note = f" (clipped to the duration {duration} s)" if clipped else ""
        raise RejectRecord(f"start {start} s is not before end {end} s{note}")
    return [start, end], clipped


def convert_charades_sta(
    sta_txt: Path,
    durations_csv: Path,
    split: str,
    seed: int,
    media_dir: str = "Charades_v1_480",
) -> Result:
    """Temporal grounding records of `charades_sta_{split}.txt`, durations from the csv.

    Ends past the duration are clipped (the original end is in `meta["clipped"]["end_s"]`);
    a malformed line, an unknown video or an empty segment is rejected with its line number.
    """
    ctx = Context.annotations_only("charades_sta", split, seed)
    durations = read_charades_durations(durations_csv)
    records: Records = []
    rejected: list[dict[str, Any]] = []
    seen: Counter[str] = Counter()
    lines = Path(sta_txt).read_text(encoding="utf-8").splitlines()
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            vid, start, end, query = parse_charades_line(line)
            if vid not in durations:
                raise RejectRecord(f"video {vid!r} is not in {Path(durations_csv).name}")
            duration = durations[vid]
            if duration is None:
                raise RejectRecord(f"video {vid!r} has no positive length in the csv")
            segment, clipped = charades_segment(start, end, duration)
        except RejectRecord as err:
            rejected.append({"line": number, "reason": f"{Path(sta_txt).name}:{number}: {err}"})
            continue
        meta: dict[str, Any] = {
            "video_id": vid,
            "query": query,
            "segment_s": segment,
            "duration": duration,
            "line": number,
        }
        if clipped:
            meta["clipped"] = clipped
        span = format_span(segment[0], segment[1], duration)
        media = {"video": f"{media_dir}/{vid}.mp4"}
        # k counts this video's queries in file order: stable across runs of the same file.
        k = seen[vid]
        seen[vid] += 1
        records.append(ctx.record(vid, "temporal_grounding", k, media, span, meta, event=query))
    return records, rejected


# ---------------------------------------------------------------------------- RefCOCO family


def read_coco_instances(instances_json: Path) -> tuple[dict[int, dict], dict[int, dict]]:
    """(images by id, annotations by id) of a COCO `instances.json`."""
    data = read_json(instances_json)
    if not isinstance(data, dict) or not {"images", "annotations"} <= set(data):
        raise ValueError(f"{instances_json}: expected a COCO object with images and annotations")
    images = {image["id"]: image for image in data["images"]}
    annotations = {ann["id"]: ann for ann in data["annotations"]}
    return images, annotations


def refcoco_target(
    ref: dict[str, Any], images: dict[int, dict], annotations: dict[int, dict]
) -> tuple[dict[str, Any], list[float]]:
    """The ref's image and its annotation's `[x, y, w, h]` box; RejectRecord if they are missing."""
    ann = annotations.get(ref.get("ann_id"))  # type: ignore[arg-type]
    if ann is None:
        raise RejectRecord(f"ann_id {ref.get('ann_id')!r} is not in instances.json")
    if ann.get("image_id") != ref.get("image_id"):
        raise RejectRecord(
            f"ann_id {ref['ann_id']} belongs to image {ann.get('image_id')}, "
            f"the ref to image {ref.get('image_id')!r}"
        )
    image = images.get(ann["image_id"])
    if image is None:
        raise RejectRecord(f"image_id {ann['image_id']} is not in instances.json")
    bbox = ann.get("bbox")
    numeric = isinstance(bbox, list) and len(bbox) == 4 and all(_is_number(v) for v in bbox)
    if not (numeric and bbox[2] > 0 and bbox[3] > 0):
        raise RejectRecord(f"ann_id {ref['ann_id']}: bbox {bbox!r} is not [x, y, w, h], w, h > 0")
    if not (image.get("width", 0) > 0 and image.get("height", 0) > 0):
        raise RejectRecord(f"image_id {image['id']}: width/height missing or not positive")
    return image, [float(v) for v in bbox]


def refcoco_records(
    ref: dict[str, Any], image: dict[str, Any], bbox: list[float], ctx: Context, image_dir: str
) -> Records:
    """One REC record per sentence of `ref`."""
    width, height = image["width"], image["height"]
    x, y, w, h = bbox
    answer = format_box(box_to_square([x, y, x + w, y + h], width, height))
    media = {"image": f"{image_dir}/{image['file_name']}"}
    records = []
    for k, sentence in enumerate(ref.get("sentences") or []):
        text = str(sentence.get("sent") or sentence.get("raw") or "").strip()
        if not text:
            continue
        meta = {
            "image_id": image["id"],
            "ann_id": ref["ann_id"],
            "bbox_xywh": bbox,
            "width": width,
            "height": height,
            "expression": text,
            "ref_id": ref["ref_id"],
            "sent_id": sentence.get("sent_id"),
        }
        records.append(ctx.record(str(ref["ref_id"]), "rec", k, media, answer, meta, exp=text))
    return records


def convert_refcoco(
    refs_pickle: Path,
    instances_json: Path,
    dataset: str,
    split: str,
    seed: int,
    image_dir: str = "train2014",
) -> Result:
    """REC records (one per sentence) of the refs in `split`, boxes from `instances.json`.

    The refs pickle is loaded with `safe_pickle` (plain data only). A ref whose annotation or
    image is missing, or that has no sentence, is rejected with its `ref_id`.
    """
    if dataset not in REFCOCO_DATASETS:
        raise ValueError(f"dataset must be one of {REFCOCO_DATASETS}, got {dataset!r}")
    refs = load_plain_pickle(refs_pickle)
    if not isinstance(refs, list) or not all(isinstance(ref, dict) for ref in refs):
        raise ValueError(f"{refs_pickle}: expected a list of ref dicts")
    chosen = [ref for ref in refs if ref.get("split") == split]
    if not chosen:
        known = sorted({str(ref.get("split")) for ref in refs})
        raise ValueError(f"{refs_pickle}: no refs in split {split!r}; splits: {known}")
    images, annotations = read_coco_instances(instances_json)
    ctx = Context.annotations_only(dataset, split, seed)
    records: Records = []
    rejected: list[dict[str, Any]] = []
    for ref in chosen:
        try:
            image, bbox = refcoco_target(ref, images, annotations)
            converted = refcoco_records(ref, image, bbox, ctx, image_dir)
            if not converted:
                raise RejectRecord("no non-empty sentence")
        except RejectRecord as err:
            rejected.append(
                {"id": ref.get("ref_id"), "reason": f"ref_id {ref.get('ref_id')}: {err}"}
            )
            continue
        records.extend(converted)
    return records, rejected


# ---------------------------------------------------------------------------- VGGSS


def clean_vggss_boxes(boxes: Any) -> tuple[list[list[float]], dict[str, int]]:
    """Boxes clipped to 0..1 with degenerate or malformed ones dropped, and the counts of each."""
    if not isinstance(boxes, list):
        raise RejectRecord(f"field 'bbox' must be a list of boxes, got {boxes!r}")
    kept: list[list[float]] = []
    counts = {"clipped": 0, "degenerate": 0, "malformed": 0}
    for box in boxes:
        if not (isinstance(box, list) and len(box) == 4 and all(_is_number(v) for v in box)):
            counts["malformed"] += 1
            continue
        clipped = [min(1.0, max(0.0, float(v))) for v in box]
        x1, y1, x2, y2 = clipped
        if x2 <= x1 or y2 <= y1:
            counts["degenerate"] += 1
            continue
        counts["clipped"] += clipped != [float(v) for v in box]
        kept.append(clipped)
    return kept, {name: n for name, n in counts.items() if n}


def convert_vggss(
    vggss_json: Path,
    split: str = "test",
    seed: int = 0,
    audio_dir: str = "audio",
    image_dir: str = "frames",
) -> Result:
    """Sound localisation records (sound + image) of `vggss.json`.

    Boxes are normalised to the frame, not to the padded square: the annotations carry no frame
    size, so mapping a prediction back to the frame is the scorer's job. Out-of-range values are
    clipped, degenerate boxes dropped (counts in `meta["clipped"]`); no valid box -> rejected.
    """
    entries = read_json(vggss_json, list, "a list of entries")
    ctx = Context.annotations_only("vggss", split, seed)
    records: Records = []
    rejected: list[dict[str, Any]] = []
    for index, entry in enumerate(entries):
        name = entry.get("file") if isinstance(entry, dict) else None
        try:
            if not isinstance(name, str) or not name.strip():
                raise RejectRecord(f"entry {index}: missing 'file'")
            boxes, counts = clean_vggss_boxes(entry.get("bbox"))
            if not boxes:
                raise RejectRecord(f"file {name}: no valid box ({counts or 'none given'})")
        except RejectRecord as err:
            rejected.append({"id": name, "index": index, "reason": str(err)})
            continue
        meta: dict[str, Any] = {"file": name, "boxes": boxes, "class": entry.get("class")}
        if counts:
            meta["clipped"] = counts
        media = {"sound": f"{audio_dir}/{name}.wav", "image": f"{image_dir}/{name}.jpg"}
        answer = ", ".join(format_box(box) for box in boxes)
        records.append(ctx.record(name, "sound_localization", 0, media, answer, meta))
    return records, rejected


# ---------------------------------------------------------------------------- by dataset name


def convert_raw_dir(dataset: str, raw_dir: Path, split: str, seed: int) -> Result:
    """Convert `dataset` (`EVALSETS`) from its published files, as named upstream, in `raw_dir`."""
    raw_dir = Path(raw_dir)
    if dataset == "charades_sta":
        txt, csv_path = raw_dir / f"charades_sta_{split}.txt", raw_dir / f"Charades_v1_{split}.csv"
        return convert_charades_sta(txt, csv_path, split, seed)
    if dataset in REFCOCO_PICKLES:
        refs = raw_dir / REFCOCO_PICKLES[dataset]
        return convert_refcoco(refs, raw_dir / "instances.json", dataset, split, seed)
    if dataset == "vggss":
        return convert_vggss(raw_dir / "vggss.json", split, seed)
    raise ValueError(f"no evaluation-set converter for {dataset!r}; known: {list(EVALSETS)}")


# The refer toolkit's split-by names: UNC for RefCOCO and RefCOCO+, UMD for RefCOCOg.
REFCOCO_PICKLES = {"refcoco": "refs(unc).p", "refcoco+": "refs(unc).p", "refcocog": "refs(umd).p"}
EVALSETS = ("charades_sta", *REFCOCO_PICKLES, "vggss")
