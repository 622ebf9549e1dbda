"""The eval step: answer a benchmark's questions with a checkpoint (or read answers) and score them.

    python -m ground.eval.run --benchmark demo_tg --checkpoint results/train/stage3/model \
        --data results/convert/demo_video/test.jsonl --features results/features \
        --out results/eval/demo_tg

    >>> evaluate(benchmark("demo_tg"), [Path("results/convert/demo_video/test.jsonl")],
    ...          Path("results/eval/demo_tg"), checkpoint=Path("results/train/stage3/model"),
    ...          features={"video": Path("results/features/video.index.jsonl")},
    ...          store=Path("cache/features"), cfg={"batch_size": 16, ...})

Writes `out/predictions.jsonl` (`{"id", "answer"}` per scored record, the format `ground eval
--predictions` reads back) and `out/scores.json` (split -> metric -> value, counts, baselines,
and the sha256 of the checkpoint and of the data). Decoding resumes from
`cache/eval/<benchmark>-<hash of checkpoint, data and decoding settings>.partial.jsonl`, so a
killed evaluation continues where it stopped; the declared outputs are written last.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ground.common.catalog import Benchmark, benchmark
from ground.common.formats import FLOAT2, FLOAT3, Coords, checkpoint_forms, writing
from ground.common.jsonl import read_jsonl, write_jsonl_atomic, write_text_atomic
from ground.eval.infer import pick_device, predict
from ground.eval.scoring import flatten, score_answers, select
from ground.tracking.record import artifact_entries, sha256_file, write_job_record
from ground.train.data import FeatureLookup, load_records

DECODING = ("batch_size", "max_new_tokens", "precision", "limit", "prompt_format", "temperature", "seed")
SAMPLING = {"prompt_format": "training", "temperature": 0.0, "seed": 0}  # greedy, training prompt


def checkpoint_sha256(checkpoint: Path, memo_dir: Path | None = None) -> str:
    """One hash over every file of a checkpoint folder (relative names and contents).

    With `memo_dir`, the result is kept under the files' names, sizes and mtimes: every benchmark
    of a run scores the same checkpoint (13 GB for the 7B), which is then read once, not per job.
    """
    files = sorted(p for p in Path(checkpoint).rglob("*") if p.is_file())
    if not files:
        raise FileNotFoundError(f"{checkpoint}: not a checkpoint folder (no files)")
    names = [p.relative_to(checkpoint).as_posix() for p in files]
    stamp = json.dumps([[n, p.stat().st_size, p.stat().st_mtime_ns] for n, p in zip(names, files)])
    memo = Path(memo_dir) / f"{hashlib.sha256(stamp.encode()).hexdigest()[:32]}.sha256" if memo_dir else None
    if memo is not None and memo.is_file():
        return memo.read_text().strip()
    digest = hashlib.sha256()
    for name, path in zip(names, files):
        digest.update(f"{name}\0{sha256_file(path)}\n".encode())
    if memo is not None:
        write_text_atomic(memo, digest.hexdigest() + "\n")
    return digest.hexdigest()


def data_sha256(paths: list[Path]) -> str:
    digest = hashlib.sha256()
    for path in paths:
        digest.update(f"{Path(path).name}\0{sha256_file(Path(path))}\n".encode())
    return digest.hexdigest()


def read_predictions(path: Path) -> dict[str, str]:
    """`{"id", "answer"}` JSONL -> answers by id; ValueError naming the line of a bad entry."""
    answers: dict[str, str] = {}
    for number, entry in read_jsonl(path):
        if not isinstance(entry, dict) or "id" not in entry or not isinstance(entry.get("answer"), str):
            raise ValueError(f'{path}:{number}: expected {{"id": ..., "answer": "..."}}')
        key = str(entry["id"])
        if key in answers:
            raise ValueError(f"{path}:{number}: duplicate id {key!r}")
        answers[key] = entry["answer"]
    return answers


def check_ids(answers: Mapping[str, str], records: list[dict[str, Any]], source: Path) -> None:
    """Predictions must answer records of the data: an unknown id means the wrong data file."""
    known = {str(r["id"]) for r in records}
    unknown = [k for k in answers if k not in known]
    if unknown:
        raise ValueError(
            f"{source}: {len(unknown)} ids are not records of the evaluation data, "
            f"e.g. {unknown[0]!r} (ids are those of the converted data, see --data)"
        )


def evaluate(
    bench: Benchmark,
    data: list[Path],
    out: Path,
    *,
    cfg: Mapping[str, Any],
    checkpoint: Path | None = None,
    features: Mapping[str, Path] | None = None,
    store: Path | None = None,
    predictions: Path | None = None,
    cache: Path = Path("cache/eval"),
    forms: tuple[Coords, Coords] = (FLOAT3, FLOAT2),
) -> dict[str, Any]:
    """Score `bench` on `data` with answers from `predictions` or decoded by `checkpoint`. Boxes
    and spans are read in the forms the checkpoint trained on (`formats.checkpoint_forms`), else
    `forms` (those the predictions were written in)."""
    records = select(bench, load_records([Path(p) for p in data]))
    if cfg.get("limit"):
        records = records[: int(cfg["limit"])]
    data_hash = data_sha256(data)
    if predictions is not None:
        answers = read_predictions(predictions)
        check_ids(answers, records, predictions)
        source: dict[str, Any] = {"predictions": str(predictions), "predictions_sha256": sha256_file(predictions)}
    else:
        if checkpoint is None or features is None or store is None:
            raise ValueError("give either predictions, or a checkpoint with features and a store")
        ckpt_hash = checkpoint_sha256(checkpoint, cache / "checkpoints")
        forms = checkpoint_forms(checkpoint)
        settings = json.dumps([ckpt_hash, data_hash, {k: cfg.get(k) for k in DECODING}])
        partial = cache / f"{bench.name}-{hashlib.sha256(settings.encode()).hexdigest()[:12]}.partial.jsonl"
        lookup = FeatureLookup(features, store)
        answers = predict(
            checkpoint, records, lookup, partial,
            batch_size=int(cfg.get("batch_size", 16)), max_new_tokens=int(cfg.get("max_new_tokens", 32)),
            device=pick_device(str(cfg.get("device", "auto"))), precision=str(cfg.get("precision", "auto")),
            decoding={k: cfg.get(k, v) for k, v in SAMPLING.items()},
        )  # fmt: skip
        source = {"checkpoint": str(checkpoint), "checkpoint_sha256": ckpt_hash,
                  "decoding": {k: cfg.get(k, v) for k, v in SAMPLING.items()}}  # fmt: skip
    with writing(*forms):
        scores = score_answers(bench, records, answers)
    out.mkdir(parents=True, exist_ok=True)
    write_jsonl_atomic(
        out / "predictions.jsonl",
        [{"id": r["id"], "answer": answers[str(r["id"])]} for r in records if str(r["id"]) in answers],
    )
    summary = {
        "benchmark": bench.name,
        "headline": bench.headline,
        "data": [str(p) for p in data],
        "data_sha256": data_hash,
        **source,
        "forms": {"coords": forms[0].name, "spans": forms[1].name},
        "scores": scores,
    }
    write_text_atomic(out / "scores.json", json.dumps(summary, indent=2) + "\n")
    return summary


def metric_rows(summary: dict[str, Any]) -> list[dict[str, Any]]:
    """The summary's scores as `JobRecorder.metric` keyword sets (counts included), each tagged
    with the checkpoint's (or predictions file's) and the data's sha256."""
    source = summary.get("checkpoint_sha256") or summary.get("predictions_sha256")
    return [
        {"name": name, "value": value, "benchmark": summary["benchmark"], "split": split,
         "checkpoint": source, "data": summary["data_sha256"]}  # fmt: skip
        for split, scores in summary["scores"].items()
        for name, value in scores.items()
    ]


def index_features(data: list[Path], features_cfg: Mapping[str, Any], folder: Path) -> dict[str, Path]:
    """Feature indexes for the media of `data` (what `ground eval --checkpoint` decodes from):
    media already in the content-addressed store are not encoded again."""
    from ground.features.extract import cache_features, referenced_media

    indexes = {}
    for modality in ("image", "video", "audio"):
        if not referenced_media(list(data), modality):
            continue
        index = Path(folder) / f"{modality}-{data_sha256(data)[:12]}.index.jsonl"
        summary = cache_features(modality, list(data), index, dict(features_cfg))
        if summary["failed"]:
            first = summary["failed"][0]
            raise ValueError(f"{first['media']}: cannot encode {modality} ({first['error']})")
        indexes[modality] = index
    return indexes


def record_evaluation(summary: dict[str, Any], out: Path, run_id: str) -> Path:
    """A job record (as the pipeline's eval jobs write) of an evaluation made outside it."""
    now = datetime.now(UTC).isoformat()
    artifacts = [a for name in ("scores.json", "predictions.jsonl") for a in artifact_entries(out / name)]
    return write_job_record(
        out / "eval.job.json", run_id=run_id, rule="evaluate_benchmark",
        wildcards={"benchmark": summary["benchmark"]}, params={}, started=now, finished=now,
        artifacts=artifacts, metrics=metric_rows(summary),
        notes={"summary": {k: v for k, v in summary.items() if k != "scores"}},
    )  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--benchmark", required=True)
    parser.add_argument("--data", required=True, nargs="+", type=Path)
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--checkpoint", type=Path)
    parser.add_argument("--features", type=Path, help="folder with <modality>.index.jsonl")
    parser.add_argument("--store", type=Path, default=Path("cache/features"))
    parser.add_argument("--predictions", type=Path)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    features = None
    if args.features is not None:
        features = {m: args.features / f"{m}.index.jsonl" for m in ("image", "video", "audio")}
        features = {m: p for m, p in features.items() if p.is_file()}
    cfg = {"batch_size": args.batch_size, "max_new_tokens": args.max_new_tokens, "device": args.device}
    summary = evaluate(
        benchmark(args.benchmark), args.data, args.out, cfg=cfg, checkpoint=args.checkpoint,
        features=features, store=args.store, predictions=args.predictions,
    )  # fmt: skip
    print(json.dumps(flatten(summary["scores"]), indent=2))


if __name__ == "__main__":
    main()
