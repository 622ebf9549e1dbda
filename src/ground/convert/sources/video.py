"""Converters for the video training sources' published annotations -> conversation records.

    >>> from ground.convert.sources.video import convert_didemo
    >>> records, rejected = convert_didemo(  # doctest: +SKIP
    ...     "didemo", Path("resources/raw/didemo"), "train", seed=0)

Also `convert_hirest` (`all_data_{split}.json`) and `convert_activitynet_captions`
(`{split}.json`). Each has the catalog's converter signature `(dataset, raw_dir, split, seed)`,
reads annotation files only (it works before the videos are downloaded) and returns
`(records, rejected)`: `temporal_grounding` (event -> `{t1, t2}`) and `dense_caption`
(`{t1, t2}` -> event) records in `ground.convert.context`'s schema, spans relative to the video's
duration, media paths relative to the dataset's media folder; and one `{"id", "reason"}` per raw
record (or part of one) that could not be converted, the reason naming the file and the record.
`meta` keeps the segment in seconds (`segment_s`), the duration, and, where an end past the
duration was clipped, the original end in `meta["clipped"]["end_s"]`.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from ground.common.formats import format_span
from ground.common.jsonl import read_json
from ground.convert.context import Context
from ground.convert.fields import RejectRecord, finite_number, plain_text
from ground.convert.sources.evalsets import charades_segment

Records = list[dict[str, Any]]
Result = tuple[Records, list[dict[str, Any]]]

DIDEMO_SEGMENT_S = 5.0  # DiDeMo annotates moments as runs of 5-second segments
DIDEMO_DEFAULT_SEGMENTS = 6  # videos are cut at 30 s when `num_segments` is absent


def segment(bounds: Any, duration: float, what: str) -> tuple[list[float], dict[str, float]]:
    """`[start, end]` seconds clipped to `[0, duration]` and what was clipped (see evalsets)."""
    if not isinstance(bounds, list | tuple) or len(bounds) != 2:
        raise RejectRecord(f"{what} {bounds!r} is not [start, end]")
    start, end = (finite_number(v, what) for v in bounds)
    return charades_segment(start, end, duration)


def lower_first(text: str) -> str:
    """`text` with a sentence capital dropped ("A man" -> "a man"; "I", "I'm", "TV" stay)."""
    first = text.split(" ", 1)[0]
    rest = first[1:]
    if first.split("'")[0] == "I" or not first[:1].isupper() or (rest and not rest.islower()):
        return text
    return text[0].lower() + text[1:]


def event_slot(text: str) -> str:
    """An event description as it reads inside a question: no final period, no sentence capital.

    "A man opens the door." -> "a man opens the door" (fits "When did <event> occur ...?").
    """
    return lower_first(text.rstrip(" ."))


def event_records(
    ctx: Context,
    raw_id: str,
    k: int,
    video: str,
    text: str,
    span_s: list[float],
    meta: dict[str, Any],
    tasks: tuple[str, ...] = ("temporal_grounding", "dense_caption"),
) -> Records:
    """`temporal_grounding` (event -> span) and/or `dense_caption` (span -> event) records."""
    span = format_span(span_s[0], span_s[1], meta["duration"])
    media = {"video": video}
    base = {**meta, "segment_s": span_s}
    records = []
    if "temporal_grounding" in tasks:
        tg_meta = base | {"query": text}
        slot = event_slot(text)
        records.append(
            ctx.record(raw_id, "temporal_grounding", k, media, span, tg_meta, event=slot)
        )
    if "dense_caption" in tasks:
        dc_meta = base | {"event": text}
        records.append(ctx.record(raw_id, "dense_caption", k, media, text, dc_meta, time=span))
    return records


# ---------------------------------------------------------------------------- DiDeMo


def didemo_consensus(times: Any, num_segments: int) -> tuple[int, int]:
    """The `[s, e]` most annotators chose; ties go to the earliest (smallest start, then end).

    Every annotator's pair must be valid (`0 <= s <= e < num_segments`): a bad one is a sign of
    a corrupt record, so the whole annotation is rejected rather than outvoted.
    """
    if not isinstance(times, list) or not times:
        raise RejectRecord(f"times {times!r} is not a non-empty list of [s, e]")
    pairs = []
    for i, pair in enumerate(times):
        ok = isinstance(pair, list | tuple) and len(pair) == 2
        ok = ok and all(isinstance(v, int) and not isinstance(v, bool) for v in pair)
        if not ok or not 0 <= pair[0] <= pair[1] < num_segments:
            raise RejectRecord(
                f"times[{i}]={pair!r} is not [s, e] with 0 <= s <= e <= {num_segments - 1}"
            )
        pairs.append((pair[0], pair[1]))
    counts = Counter(pairs)
    return min(counts, key=lambda p: (-counts[p], p))


def didemo_event(entry: Any) -> tuple[str, str, str, list[float], dict[str, Any]]:
    """(annotation id, video, description, consensus seconds, meta) of one DiDeMo entry."""
    if not isinstance(entry, dict):
        raise RejectRecord(f"expected an object, got {type(entry).__name__}")
    raw_id = entry.get("annotation_id")
    if isinstance(raw_id, bool) or not isinstance(raw_id, int | str) or not str(raw_id).strip():
        raise RejectRecord(f"annotation_id {raw_id!r} is missing or not an id")
    video = plain_text(entry.get("video"), "video")
    description = plain_text(entry.get("description"), "description")
    num_segments = entry.get("num_segments", DIDEMO_DEFAULT_SEGMENTS)
    if isinstance(num_segments, bool) or not isinstance(num_segments, int) or num_segments < 1:
        raise RejectRecord(f"num_segments {num_segments!r} is not a positive integer")
    start, end = didemo_consensus(entry.get("times"), num_segments)
    seconds = [DIDEMO_SEGMENT_S * start, DIDEMO_SEGMENT_S * (end + 1)]
    meta = {
        "video": video,
        "duration": DIDEMO_SEGMENT_S * num_segments,
        "times": entry["times"],
        "consensus": [start, end],
    }
    return str(raw_id), video, description, seconds, meta


def convert_didemo(dataset: str, raw_dir: Path, split: str, seed: int) -> Result:
    """Temporal grounding + dense captioning per annotation of `{split}_data.json`.

    The moment is the annotators' consensus segment `[s, e]`: seconds `[5 s, 5 (e + 1)]`, span
    relative to `5 * num_segments` seconds (the length DiDeMo's segments cover).
    """
    path = Path(raw_dir) / f"{split}_data.json"
    entries = read_json(path, list, "a list of annotations")
    ctx = Context.annotations_only(dataset, split, seed)
    records: Records = []
    rejected: list[dict[str, Any]] = []
    for index, entry in enumerate(entries):
        try:
            raw_id, video, text, seconds, meta = didemo_event(entry)
        except RejectRecord as err:
            raw_id = entry.get("annotation_id") if isinstance(entry, dict) else None
            reason = f"{path.name}: entry {index} (annotation_id {raw_id}): {err}"
            rejected.append({"id": raw_id, "index": index, "reason": reason})
            continue
        records += event_records(ctx, raw_id, 0, video, text, seconds, meta)
    return records, rejected


# ---------------------------------------------------------------------------- HiREST


def hirest_video(
    ctx: Context, query: str, video: str, entry: dict[str, Any], seen: Counter[str], where: str
) -> tuple[Records, list[dict[str, Any]]]:
    """Records of one relevant (query, video) entry: the query's moment, then each step's."""
    duration = finite_number(entry.get("v_duration"), "v_duration")
    if duration <= 0:
        raise RejectRecord(f"v_duration {duration} is not positive")
    bounds, clipped = segment(entry["bounds"], duration, "bounds")
    vid = video.removesuffix(".mp4")
    meta: dict[str, Any] = {"video": video, "duration": duration}
    k = seen[vid]
    seen[vid] += 1
    query_meta = meta | _clipped(clipped)
    records = event_records(ctx, vid, k, video, query, bounds, query_meta, ("temporal_grounding",))
    rejected: list[dict[str, Any]] = []
    for i, step in enumerate(entry.get("steps") or []):
        try:
            if not isinstance(step, dict):
                raise RejectRecord(f"expected an object, got {type(step).__name__}")
            heading = plain_text(step.get("heading"), "heading")
            span_s, clipped = segment(step.get("absolute_bounds"), duration, "absolute_bounds")
        except RejectRecord as err:
            rejected.append({"id": f"{vid}/step{i}", "reason": f"{where} steps[{i}]: {err}"})
            continue
        k = seen[vid]
        seen[vid] += 1
        step_meta = meta | {"step_index": step.get("index", i), "parent_query": query}
        step_meta |= _clipped(clipped)
        records += event_records(ctx, vid, k, video, heading, span_s, step_meta, ("dense_caption",))
    return records, rejected


def _clipped(clipped: dict[str, float]) -> dict[str, Any]:
    return {"clipped": clipped} if clipped else {}


def convert_hirest(dataset: str, raw_dir: Path, split: str, seed: int) -> Result:
    """Temporal grounding of each query to its `bounds`, dense captioning of each step.

    Only entries with `"relevant": true` and `bounds` carry a moment; the others are skipped
    (not errors). Record `k` counts a video's events in file order, so ids are stable.
    """
    path = Path(raw_dir) / f"all_data_{split}.json"
    data = read_json(path, dict, "an object {query: {video: entry}}")
    ctx = Context.annotations_only(dataset, split, seed)
    records: Records = []
    rejected: list[dict[str, Any]] = []
    seen: Counter[str] = Counter()
    for query, videos in data.items():
        if not isinstance(videos, dict):
            reason = f"{path.name}: query {query!r}: expected an object of videos"
            rejected.append({"id": query, "reason": reason})
            continue
        for video, entry in videos.items():
            if not (isinstance(entry, dict) and entry.get("relevant") and entry.get("bounds")):
                continue
            where = f"{path.name}: query {query!r} video {video!r}"
            try:
                text = plain_text(query, "query")
                converted, bad = hirest_video(ctx, text, video, entry, seen, where)
            except RejectRecord as err:
                rejected.append({"id": f"{query}/{video}", "reason": f"{where}: {err}"})
                continue
            records += converted
            rejected += bad
    return records, rejected


# ---------------------------------------------------------------------------- ActivityNet


def activitynet_pairs(entry: Any) -> tuple[float, list[tuple[Any, Any]]]:
    """(duration, [(timestamp, sentence)]) of one video; RejectRecord if the lists differ."""
    if not isinstance(entry, dict):
        raise RejectRecord(f"expected an object, got {type(entry).__name__}")
    duration = finite_number(entry.get("duration"), "duration")
    if duration <= 0:
        raise RejectRecord(f"duration {duration} is not positive")
    timestamps, sentences = entry.get("timestamps"), entry.get("sentences")
    if not isinstance(timestamps, list) or not isinstance(sentences, list):
        raise RejectRecord("timestamps and sentences must both be lists")
    if len(timestamps) != len(sentences):
        raise RejectRecord(f"{len(timestamps)} timestamps but {len(sentences)} sentences")
    return duration, list(zip(timestamps, sentences))


def convert_activitynet_captions(dataset: str, raw_dir: Path, split: str, seed: int) -> Result:
    """Temporal grounding + dense captioning per (timestamp, sentence) pair of `{split}.json`.

    A video whose lists differ in length is rejected; a pair whose span is empty (after
    clipping its end to the duration) is rejected alone, its index named.
    """
    path = Path(raw_dir) / f"{split}.json"
    data = read_json(path, dict, "an object {video id: annotation}")
    ctx = Context.annotations_only(dataset, split, seed)
    records: Records = []
    rejected: list[dict[str, Any]] = []
    for vid, entry in data.items():
        try:
            duration, pairs = activitynet_pairs(entry)
        except RejectRecord as err:
            rejected.append({"id": vid, "reason": f"{path.name}: video {vid}: {err}"})
            continue
        for k, (stamp, sentence) in enumerate(pairs):
            try:
                text = plain_text(sentence, "sentence")
                span_s, clipped = segment(stamp, duration, "timestamp")
            except RejectRecord as err:
                reason = f"{path.name}: video {vid} pair {k}: {err}"
                rejected.append({"id": f"{vid}/{k}", "reason": reason})
                continue
            meta = {"video": vid, "duration": duration} | _clipped(clipped)
            records += event_records(ctx, vid, k, f"{vid}.mp4", text, span_s, meta)
    return records, rejected
