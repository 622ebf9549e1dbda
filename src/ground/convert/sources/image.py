"""Converters for the image training sources' published annotations -> conversation records.

    >>> from ground.convert.sources.image import convert_visual_genome
    >>> records, rejected = convert_visual_genome(  # doctest: +SKIP
    ...     "visual_genome", Path("resources/raw/visual_genome"), "train", seed=0)

Also `convert_flickr30k_entities` (`Sentences/`, `Annotations/`, `{split}.txt`); VCR is in
`vcr.py`. Each has the catalog's converter signature `(dataset, raw_dir, split, seed)` and
returns `(records, rejected)`: records in `ground.convert.context`'s schema, boxes `[x1, y1, x2, y2]` normalised to
the padded square image, media paths relative to the dataset's media folder, ground truth in
pixels in `meta`; and one `{"id", "reason"}` (plus `"line"` where there is one) per raw record
that could not be converted, the reason naming the file and the record.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from ground.common.formats import box_to_square, format_box, validate_box_px
from ground.common.jsonl import read_json
from ground.convert.context import Context
from ground.convert.fields import RejectRecord, at, finite_number

Records = list[dict[str, Any]]
Result = tuple[Records, list[dict[str, Any]]]

_SPACE_BEFORE_PUNCT = re.compile(r"\s+([.,!?;:]|'s\b|'re\b|'m\b|'ll\b|'ve\b|'d\b|n't\b)")


def detokenize(text: str) -> str:
    """Tokenised text ("a man ." / "is n't") with the spaces before punctuation removed."""
    return _SPACE_BEFORE_PUNCT.sub(r"\1", " ".join(text.split()))


def image_size(entry: dict[str, Any]) -> tuple[float, float]:
    """`width`, `height` as given (ints stay ints: meta keeps original units)."""
    width, height = entry.get("width"), entry.get("height")
    ok = all(isinstance(v, int | float) and not isinstance(v, bool) for v in (width, height))
    if not (ok and width > 0 and height > 0):
        raise RejectRecord(f"width/height {width!r}x{height!r} missing or not positive")
    return width, height


def square_box(box_px: list[float], width: float, height: float) -> str:
    return format_box(box_to_square(box_px, width, height))


# ---------------------------------------------------------------------------- Visual Genome


def vg_image(entry: Any) -> tuple[float, float, str]:
    """(width, height, media path) of an `image_data.json` entry; the path from its url."""
    width, height = image_size(entry)
    parts = str(entry.get("url") or "").rstrip("/").split("/")
    if len(parts) < 2 or not parts[-2].startswith("VG_100K") or not parts[-1]:
        raise RejectRecord(f"url {entry.get('url')!r} does not end in VG_100K*/<file>")
    return width, height, f"{parts[-2]}/{parts[-1]}"


def vg_region(region: Any, width: float, height: float) -> tuple[int, str, list[float], dict]:
    """(region id, phrase, box xyxy px clipped to the image, what was clipped) of one region.

    A box overhanging the image is clipped (VG has many, by a pixel or two); one that is
    degenerate or lies wholly outside the image is rejected.
    """
    if not isinstance(region, dict):
        raise RejectRecord(f"expected an object, got {type(region).__name__}")
    region_id = region.get("region_id")
    if isinstance(region_id, bool) or not isinstance(region_id, int):
        raise RejectRecord(f"region_id {region_id!r} is not an integer")
    phrase = region.get("phrase")
    if not isinstance(phrase, str) or not phrase.strip():
        raise RejectRecord(f"phrase {phrase!r} is empty")
    x, y, w, h = (finite_number(region.get(k), k) for k in ("x", "y", "width", "height"))
    if w <= 0 or h <= 0:
        raise RejectRecord(f"degenerate box x={x} y={y} width={w} height={h}")
    box = [x, y, x + w, y + h]
    clipped_box = [max(0.0, x), max(0.0, y), min(width, x + w), min(height, y + h)]
    if clipped_box[2] <= clipped_box[0] or clipped_box[3] <= clipped_box[1]:
        raise RejectRecord(f"box {box} lies outside the {width:g}x{height:g} image")
    clipped = {"box_px": box} if clipped_box != box else {}
    return region_id, " ".join(phrase.split()), clipped_box, clipped


def vg_images(path: Path) -> dict[Any, dict[str, Any]]:
    """`image_data.json` entries by image id (`image_id`, or `id` in older releases)."""
    entries = read_json(path, list, "a list of images")
    return {e.get("image_id", e.get("id")): e for e in entries if isinstance(e, dict)}


def convert_visual_genome(dataset: str, raw_dir: Path, split: str, seed: int) -> Result:
    """A `reg` (box -> phrase) and a `rec` (phrase -> box) record per region.

    Record ids are `<image id>-<task>-<region id>`. The regions of an image that
    `image_data.json` lacks, or gives no size or url, are rejected as one, the image named.
    """
    raw_dir = Path(raw_dir)
    images = vg_images(raw_dir / "image_data.json")
    groups = read_json(raw_dir / "region_descriptions.json", list, "a list of images")
    ctx = Context.annotations_only(dataset, split, seed)
    records: Records = []
    rejected: list[dict[str, Any]] = []
    seen: set[int] = set()
    for index, group in enumerate(groups):
        image_id = group.get("id", group.get("image_id")) if isinstance(group, dict) else None
        try:
            if image_id not in images:
                raise RejectRecord(f"image {image_id} is not in image_data.json")
            with at(f"image_data.json image {image_id}"):
                width, height, media = vg_image(images[image_id])
        except RejectRecord as err:
            reason = f"region_descriptions.json entry {index}: {err}"
            rejected.append({"id": image_id, "index": index, "reason": reason})
            continue
        size = {"image_id": image_id, "width": width, "height": height}
        for i, region in enumerate(group.get("regions") or []):
            try:
                region_id, phrase, box_px, clipped = vg_region(region, width, height)
                if region_id in seen:
                    raise RejectRecord("duplicate region_id")
            except RejectRecord as err:
                rid = region.get("region_id") if isinstance(region, dict) else None
                where = f"region_descriptions.json image {image_id} regions[{i}]"
                rejected.append({"id": rid, "reason": f"{where} (region_id {rid}): {err}"})
                continue
            seen.add(region_id)
            meta = {**size, "region_id": region_id, "box_px": box_px, "expression": phrase}
            meta |= {"clipped": clipped} if clipped else {}
            box, raw_id, image = square_box(box_px, width, height), str(image_id), {"image": media}
            records.append(ctx.record(raw_id, "reg", region_id, image, phrase, meta, region=box))
            records.append(ctx.record(raw_id, "rec", region_id, image, box, meta, exp=phrase))
    return records, rejected


# ---------------------------------------------------------------------------- Flickr30K Entities

# `[/EN#18/people man]`: entity id, type(s) separated by "/", the phrase.
_ENTITY = re.compile(r"\[/EN#(\d+)/(\S+) ([^\[\]]+)\]")


def _xml_number(node: ET.Element, tag: str, what: str) -> float:
    text = (node.findtext(tag) or "").strip()
    try:
        return int(text) if text.lstrip("-").isdigit() else float(text)
    except ValueError:
        raise RejectRecord(f"{what}: <{tag}> {text!r} is not a number") from None


def flickr_boxes(path: Path) -> tuple[float, float, dict[str, list[list[float]]]]:
    """(width, height, entity id -> boxes xyxy px) of an `Annotations/<id>.xml` file.

    An object may name several entities and an entity may have several boxes; objects marked
    `<nobndbox>` carry none. Coordinates are 1-based pixels: like the dataset's own
    `flickr30k_entities_utils.get_annotations`, 1 is subtracted from each.
    """
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as err:
        raise RejectRecord(f"{path.name}: malformed XML ({err})") from None
    size = root.find("size")
    if size is None:
        raise RejectRecord(f"{path.name}: no <size>")
    width = _xml_number(size, "width", f"{path.name} <size>")
    height = _xml_number(size, "height", f"{path.name} <size>")
    boxes: dict[str, list[list[float]]] = {}
    for i, obj in enumerate(root.iter("object")):
        bndbox = obj.find("bndbox")
        if bndbox is None:
            continue
        what = f"{path.name} object {i}"
        box = [_xml_number(bndbox, t, what) - 1 for t in ("xmin", "ymin", "xmax", "ymax")]
        with at(what):
            validate_box_px(box, width, height)
        for name in obj.findall("name"):
            boxes.setdefault((name.text or "").strip(), []).append(box)
    return width, height, boxes


def union(boxes: list[list[float]]) -> list[float]:
    """The smallest box holding all of `boxes`."""
    xs1, ys1, xs2, ys2 = zip(*boxes)
    return [min(xs1), min(ys1), max(xs2), max(ys2)]


def flickr_sentence(
    line: str, boxes: dict[str, list[list[float]]], width: float, height: float
) -> tuple[str, str, list[dict[str, Any]]]:
    """(plain caption, grounded caption, boxed phrases) of one `Sentences/<id>.txt` line.

    A phrase whose entity has boxes is followed by the box of their union in the grounded
    caption; a phrase without boxes (`notvisual`, scene, `<nobndbox>`) stays plain text. A
    sentence in which no phrase has a box is rejected: it grounds nothing.
    """
    phrases: list[dict[str, Any]] = []

    def ground(match: re.Match[str]) -> str:
        entity, types, phrase = match.group(1), match.group(2), match.group(3).strip()
        if entity not in boxes:
            return phrase
        box_px = union(boxes[entity])
        phrases.append({"phrase": phrase, "entity": entity, "type": types,
                        "boxes_px": boxes[entity], "union_px": box_px})  # fmt: skip
        return phrase + square_box(box_px, width, height)

    plain = " ".join(_ENTITY.sub(lambda m: m.group(3).strip(), line).split())
    if any(c in plain for c in "[]") or "/EN#" in plain:
        raise RejectRecord(f"malformed entity markup in {line.strip()!r}")
    grounded = detokenize(_ENTITY.sub(ground, line))
    if not phrases:
        raise RejectRecord(f"no phrase has a box in {line.strip()!r}")
    return plain, grounded, phrases


def flickr_image(ctx: Context, raw_dir: Path, image_id: str) -> Result:
    """The grounded captions of one image (one per sentence) and its rejected sentences."""
    xml_path = raw_dir / "Annotations" / f"{image_id}.xml"
    txt_path = raw_dir / "Sentences" / f"{image_id}.txt"
    for path in (xml_path, txt_path):
        if not path.is_file():
            raise RejectRecord(f"{path.parent.name}/{path.name} is missing")
    width, height, boxes = flickr_boxes(xml_path)
    records: Records = []
    rejected: list[dict[str, Any]] = []
    lines = txt_path.read_text(encoding="utf-8").splitlines()
    for k, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            plain, grounded, phrases = flickr_sentence(line, boxes, width, height)
        except RejectRecord as err:
            reason = f"Sentences/{image_id}.txt:{k + 1}: {err}"
            rejected.append({"id": f"{image_id}#{k}", "line": k + 1, "reason": reason})
            continue
        meta = {"image_id": image_id, "width": width, "height": height, "caption": plain,
                "sentence_index": k, "phrases": phrases}  # fmt: skip
        media = {"image": f"{image_id}.jpg"}
        records.append(ctx.record(image_id, "grounded_caption", k, media, grounded, meta))
    return records, rejected


def convert_flickr30k_entities(dataset: str, raw_dir: Path, split: str, seed: int) -> Result:
    """A `grounded_caption` record per sentence of each image listed in `{split}.txt`.

    `meta` keeps the size, the plain caption and each boxed phrase with its boxes in pixels:
    the input of the GPT generation step. An image whose XML is missing or malformed is
    rejected whole; a sentence without any boxed phrase alone.
    """
    raw_dir = Path(raw_dir)
    split_file = raw_dir / f"{split}.txt"
    if not split_file.is_file():
        raise FileNotFoundError(f"{split_file}: split list of flickr30k_entities not found")
    ctx = Context.annotations_only(dataset, split, seed)
    records: Records = []
    rejected: list[dict[str, Any]] = []
    for number, line in enumerate(split_file.read_text(encoding="utf-8").splitlines(), 1):
        image_id = line.strip()
        if not image_id:
            continue
        try:
            converted, bad = flickr_image(ctx, raw_dir, image_id)
        except RejectRecord as err:
            reason = f"{split_file.name}:{number}: image {image_id}: {err}"
            rejected.append({"id": image_id, "line": number, "reason": reason})
            continue
        records += converted
        rejected += bad
    return records, rejected
