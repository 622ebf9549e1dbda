"""The feature step: run a frozen encoder once over every media file the training data references.

    python -m ground.features.extract --modality video --records results/convert/demo_video/*.jsonl \
        --index results/features/video.index.jsonl

Features land in a content-addressed store (`features.store`): the key of a file's features is
the hash of its bytes, the encoder's identity and the preprocessing parameters, so a second run
encodes only media it has not seen, and a changed encoder or frame count never reuses stale
features. The step's declared output is a small index mapping each media path to its key; the
store itself is kept across runs and never rewritten.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from ground.common.audio import preprocess_audio
from ground.common.image import load_image_padded, to_pixel_values
from ground.common.media import MediaError
from ground.common.stamps import stamp_file
from ground.features.shards import RECORD_FIELD, referenced_media, split_media
from ground.features.store import FeatureStore, feature_key
from ground.features.video import sample_frames, sample_frames_single_pass
from ground.model.encoders import Encoder, load_encoder

# Both return the same frames (tested); which is faster depends on frames per video and GOP.
SAMPLERS = {"seek": sample_frames, "single_pass": sample_frames_single_pass}
DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32}


def preprocess_params(modality: str, cfg: dict[str, Any]) -> dict[str, Any]:
    """The parameters that change what the encoder sees: part of every feature key."""
    section = dict(cfg[modality])
    section.pop("encoder")
    section.pop("sampler", None)  # how frames are found, not which: features are identical
    return {"modality": modality, **section}


def make_loader(modality: str, cfg: dict[str, Any], encoder: Encoder) -> Callable[[Path], torch.Tensor]:
    """Decode one media file into the encoder's input tensor."""
    params = cfg[modality]
    if modality == "image":
        return lambda p: to_pixel_values(
            load_image_padded(p, params["size"])[None], encoder.image_mean, encoder.image_std
        )[0]
    if modality == "video":
        sampler = SAMPLERS[params["sampler"]]
        return lambda p: to_pixel_values(
            sampler(p, params["frames"], params["size"]), encoder.image_mean, encoder.image_std
        )
    return lambda p: preprocess_audio(
        p,
        clips=params["clips"],
        clip_seconds=params["clip_seconds"],
        sample_rate=params["sample_rate"],
        mel_bins=params["mel_bins"],
        target_length=params["target_length"],
    )


def cache_features(modality: str, records: list[Path], index: Path, cfg: dict[str, Any]) -> dict:
    """Encode the media of `records` not yet in the store; write the index; return a summary."""
    return cache_media(modality, referenced_media(records, modality), index, cfg)


def cache_shard(
    modality: str, records: list[Path], index: Path, cfg: dict[str, Any], shard: int, shards: int
) -> dict:
    """`cache_media` of shard `shard` of `shards` (`ground.features.shards.shard_of`) of the
    media `records` name: one `cache_features` job of the pipeline."""
    if not 0 <= shard < shards:
        raise ValueError(f"shard {shard} is not one of 0..{shards - 1}")
    media = split_media(referenced_media(records, modality), shards)[shard]
    return {"shard": shard, "shards": shards} | cache_media(modality, media, index, cfg)


def cache_media(modality: str, media: list[Path], index: Path, cfg: dict[str, Any]) -> dict:
    """Encode those of `media` not yet in the store; write their index; return a summary (one
    shard job of the pipeline: it writes only its own store files, see store.py) with the
    stamps of the media as read under "read" (`ground.common.stamps`)."""
    started = time.perf_counter()
    if not media:  # an empty shard: no encoder to load
        _write_index(index, [])
        return {"modality": modality, "media": 0, "encoded": 0, "cached": 0, "failed": [],
                "encoder": None, "seconds": 0.0, "read": {}}  # fmt: skip
    encoder = load_encoder(modality, Path(cfg[modality]["encoder"]), device=cfg["device"])
    store = FeatureStore(Path(cfg["store"]) / modality)
    preprocess = preprocess_params(modality, cfg)
    stamps = {str(p): stamp_file(p) for p in _existing(media)}  # the key hashes the bytes
    keys = {p: feature_key(stamps[str(p)][2], encoder.identity, preprocess) for p in media}
    todo = [p for p, key in keys.items() if key not in store]
    failed = _encode_missing(todo, keys, store, encoder, make_loader(modality, cfg, encoder), cfg)
    entries = [
        {"media": str(p), "key": key} for p, key in keys.items() if p not in failed and key in store
    ]
    _write_index(index, entries)
    return {
        "modality": modality,
        "media": len(media),
        "encoded": len(todo) - len(failed),
        "cached": len(keys) - len(todo),
        "failed": [{"media": str(p), "error": reason} for p, reason in failed.items()],
        "encoder": encoder.identity,
        "seconds": round(time.perf_counter() - started, 2),
        "read": stamps,
    }


def _existing(media: list[Path]) -> list[Path]:
    missing = [str(p) for p in media if not p.is_file()]
    if missing:
        raise MediaError(f"{len(missing)} referenced media files are missing, first: {missing[:3]}")
    return media


def _encode_missing(
    todo: list[Path], keys: dict, store: FeatureStore, encoder: Encoder, load: Callable, cfg: dict
) -> dict[Path, str]:
    """Decode (threads: ffmpeg runs outside the GIL) and encode in batches; returns failures."""
    failed: dict[Path, str] = {}
    dtype = DTYPES[cfg["dtype"]]
    with store.writer(cfg["shard_size"]) as writer, ThreadPoolExecutor(4) as pool:
        bar = tqdm(total=len(todo), desc="encode", unit="file", mininterval=2.0)
        for batch in _batches(todo, cfg["batch_size"]):
            decoded = list(pool.map(lambda p: _try(load, p), batch))
            good = []
            for path, (tensor, error) in zip(batch, decoded):
                if error is None:
                    good.append((path, tensor))
                elif cfg["on_error"] == "skip":
                    failed[path] = error
                else:
                    raise MediaError(error)
            if good:
                feats = encoder.encode(torch.stack([t for _, t in good]))
                for (path, _), feat in zip(good, feats):
                    writer.add(keys[path], feat.to(dtype).contiguous())
            bar.update(len(batch))
        bar.close()
    return failed


def _try(load: Callable[[Path], torch.Tensor], path: Path) -> tuple[torch.Tensor | None, str | None]:
    try:
        return load(path), None
    except MediaError as err:
        return None, str(err)


def _batches(items: list, size: int) -> Iterator[list]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _write_index(index: Path, entries: list[dict]) -> None:
    index.parent.mkdir(parents=True, exist_ok=True)
    tmp = index.with_suffix(index.suffix + ".tmp")
    tmp.write_text("".join(json.dumps(e) + "\n" for e in entries))
    tmp.replace(index)


def main() -> None:
    from ground.common.config import load_config

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--modality", choices=sorted(RECORD_FIELD), required=True)
    parser.add_argument("--records", type=Path, nargs="+", required=True)
    parser.add_argument("--index", type=Path, required=True)
    parser.add_argument("--config", default="config.yaml")
    args = parser.parse_args()
    cfg = load_config(args.config)["features"]
    summary = cache_features(args.modality, args.records, args.index, cfg)
    print(json.dumps({k: v for k, v in summary.items() if k != "read"}, indent=2))


if __name__ == "__main__":
    main()
