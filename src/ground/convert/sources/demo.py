"""Converters of the demo's synthetic corpus (`ground.demo.corpus`): one raw JSON record of
`raw/demo_<modality>/<split>.jsonl` -> caption, grounding and description records.

    >>> from ground.convert.sources.demo import CONVERTERS
    >>> CONVERTERS["demo_image"](raw, ctx)   # image_caption, then rec + reg per expression
"""

from __future__ import annotations

from typing import Any

from ground.common.formats import (
    box_to_square,
    format_box,
    format_span,
    validate_box_px,
    validate_span_s,
)
from ground.convert.context import Context, Converter
from ground.convert.fields import (
    RejectRecord,
    at,
    field,
    index_field,
    list_field,
    positive_field,
    text_field,
)


def image_objects(raw: dict[str, Any], width: float, height: float) -> list[dict[str, Any]]:
    """The `objects` list with every attribute present and every box inside the image."""
    objects = []
    for i, obj in enumerate(list_field(raw, "objects")):
        with at(f"objects[{i}]"):
            if not isinstance(obj, dict):
                raise RejectRecord(f"must be an object, got {obj!r}")
            for attr in ("shape", "color", "size"):
                text_field(obj, attr)
            validate_box_px(field(obj, "box"), width, height)
        objects.append({**obj, "box": list(obj["box"])})
    return objects


def convert_demo_image(raw: dict[str, Any], ctx: Context) -> list[dict[str, Any]]:
    """Caption (stage 1), plus REC and REG records for every referring expression (stage 2)."""
    raw_id = text_field(raw, "id")
    width, height = positive_field(raw, "width"), positive_field(raw, "height")
    objects = image_objects(raw, width, height)
    caption = text_field(raw, "caption")
    media = {"image": ctx.media(raw, "image")}
    size = {"width": width, "height": height}
    caption_meta = {**size, "caption": caption, "objects": objects}
    records = [ctx.record(raw_id, "image_caption", 0, media, caption, caption_meta)]
    for k, expr in enumerate(list_field(raw, "expressions")):
        with at(f"expressions[{k}]"):
            if not isinstance(expr, dict):
                raise RejectRecord(f"must be an object, got {expr!r}")
            text = text_field(expr, "text")
            index = index_field(expr, "object", len(objects), "objects")
        box_px = objects[index]["box"]
        box = format_box(box_to_square(box_px, width, height))
        meta = {**size, "box_px": box_px, "expression": text, "object": index}
        records.append(ctx.record(raw_id, "rec", k, media, box, meta, exp=text))
        records.append(ctx.record(raw_id, "reg", k, media, text, meta, region=box))
    return records


def video_events(raw: dict[str, Any], duration: float) -> list[dict[str, Any]]:
    events = []
    for k, event in enumerate(list_field(raw, "events")):
        with at(f"events[{k}]"):
            if not isinstance(event, dict):
                raise RejectRecord(f"must be an object, got {event!r}")
            text = text_field(event, "text")
            validate_span_s(field(event, "start"), field(event, "end"), duration)
        events.append({**event, "text": text})
    return events


def convert_demo_video(raw: dict[str, Any], ctx: Context) -> list[dict[str, Any]]:
    """Caption (stage 1), plus temporal grounding and dense captioning per event (stage 2)."""
    raw_id = text_field(raw, "id")
    duration = positive_field(raw, "duration")
    events = video_events(raw, duration)
    caption = text_field(raw, "caption")
    media = {"video": ctx.media(raw, "video")}
    extra = {key: raw[key] for key in ("fps", "width", "height") if key in raw}
    caption_meta = {"duration": duration, **extra, "caption": caption, "events": events}
    records = [ctx.record(raw_id, "video_caption", 0, media, caption, caption_meta)]
    for k, event in enumerate(events):
        text, segment = event["text"], [event["start"], event["end"]]
        span = format_span(event["start"], event["end"], duration)
        tg_meta = {"duration": duration, "segment_s": segment, "query": text}
        dc_meta = {"duration": duration, "segment_s": segment, "event": text}
        records.append(
            ctx.record(raw_id, "temporal_grounding", k, media, span, tg_meta, event=text)
        )
        records.append(ctx.record(raw_id, "dense_caption", k, media, text, dc_meta, time=span))
    return records


def sound_source_box(raw: dict[str, Any], width: float, height: float) -> list[float]:
    """The sounding object's box; when `objects`/`source` are given they must agree with it."""
    with at("box"):
        validate_box_px(field(raw, "box"), width, height)
    box = list(raw["box"])
    if "objects" in raw and "source" in raw:
        objects = image_objects(raw, width, height)
        source = index_field(raw, "source", len(objects), "objects")
        if any(abs(a - b) > 0.5 for a, b in zip(box, objects[source]["box"], strict=True)):
            expected = objects[source]["box"]
            raise RejectRecord(f"box {box} differs from objects[{source}].box {expected}")
    return box


def convert_demo_audio(raw: dict[str, Any], ctx: Context) -> list[dict[str, Any]]:
    """Audio caption (sound only, stage 1) and sound localisation (sound + image, stage 2)."""
    raw_id = text_field(raw, "id")
    duration = positive_field(raw, "duration")
    width, height = positive_field(raw, "width"), positive_field(raw, "height")
    box_px = sound_source_box(raw, width, height)
    caption = text_field(raw, "caption")
    sound = ctx.media(raw, "audio")
    image = ctx.media(raw, "image")
    loc_meta: dict[str, Any] = {"width": width, "height": height, "box_px": box_px}
    loc_meta |= {key: raw[key] for key in ("source", "objects") if key in raw}
    box = format_box(box_to_square(box_px, width, height))
    caption_meta = {"duration": duration, "caption": caption}
    return [
        ctx.record(raw_id, "audio_caption", 0, {"sound": sound}, caption, caption_meta),
        ctx.record(
            raw_id, "sound_localization", 0, {"sound": sound, "image": image}, box, loc_meta
        ),
    ]


CONVERTERS: dict[str, Converter] = {
    "demo_image": convert_demo_image,
    "demo_video": convert_demo_video,
    "demo_audio": convert_demo_audio,
}
