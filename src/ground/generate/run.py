"""The generate step: grounded multi-turn dialogues (stage-3 instruction data) from converted data.

    python -m ground.generate.run --sources results/convert/demo_image/train.jsonl \
        results/convert/demo_video/train.jsonl --out results/generate/dialogues.jsonl \
        --manifest results/generate/dialogues.manifest.json --set seed=0 --set backend=offline

Converted records are grouped per media file; each group's annotations (objects and boxes,
expressions, timed events, in the model's normalised units) become one request to a backend
(`BACKENDS`: "offline", the deterministic composer of `ground.generate.offline`; "openai", any
OpenAI-compatible endpoint with the prompts of `ground.generate.prompts`; "transformers", a local
chat model). Every response goes through a cache keyed by the sha256 of the backend, model,
prompt version, request and sampling parameters, so a rerun never pays twice (and two media files
with identical annotations share one response: the request never names the file). Cache misses
are sent `max_concurrency` at a time, at most `max_requests` per run; `dry_run` prints the
prompts and a token/cost estimate and sends nothing. Each dialogue is validated
(`ground.generate.validate`); rejections are counted by reason in the manifest.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from ground.common.formats import FLOAT2, FLOAT3, Coords, rewrite
from ground.common.jsonl import brief_summary, write_outputs
from ground.generate.cache import ResponseCache, cache_key
from ground.generate.groups import MediaGroup, load_groups
from ground.generate.offline import OfflineComposer
from ground.generate.openai_backend import OpenAIBackend
from ground.generate.transformers_backend import TransformersBackend
from ground.generate.validate import InvalidDialogue, validate_dialogue

__all__ = ["BACKENDS", "InvalidDialogue", "generate_instructions", "validate_dialogue"]
TASK = "grounded_dialogue"
# The usual rule of thumb for English BPE vocabularies (tiktoken is not a dependency).
CHARS_PER_TOKEN = 4


class Backend(Protocol):
    """What a dialogue backend provides; `complete` is the only call that may cost money."""

    name: str
    model: str
    prompt_version: str

    def request(self, annotation: dict[str, Any], turns: int) -> dict[str, Any]: ...

    def sampling(self, seed: int) -> dict[str, Any]: ...

    def complete(self, request: dict[str, Any], sampling: dict[str, Any]) -> dict[str, Any]: ...


BACKENDS: dict[str, Callable[[dict[str, Any]], Backend]] = {
    "offline": lambda cfg: OfflineComposer(),
    "openai": OpenAIBackend,
    "transformers": TransformersBackend,
}


def make_backend(name: str, cfg: dict[str, Any]) -> Backend:
    if name not in BACKENDS:
        raise ValueError(f"unknown instruction backend {name!r}; known: {sorted(BACKENDS)}")
    return BACKENDS[name](cfg)


@dataclass
class Job:
    """One media group's request: its cache key and, once known, the response."""

    group: MediaGroup
    annotation: dict[str, Any]
    material: dict[str, Any]
    key: str
    response: dict[str, Any] | None = None
    cached: bool = False


def dialogue_record(
    group: MediaGroup, turns: list[dict[str, str]], backend: Backend, key: str
) -> dict[str, Any]:
    first = {"from": "human", "value": f"<{group.kind}>\n" + turns[0]["value"]}
    if group.kind == "image":
        ground_truth = {"objects": group.objects, "expressions": group.expressions}
    else:
        ground_truth = {"events": group.events or group.queries}
    return {
        "id": f"{group.dataset}-{group.split}-{group.raw_id}-{TASK}-0",
        "dataset": group.dataset,
        "split": group.split,
        "task": TASK,
        group.kind: group.media,
        "conversations": [first, *turns[1:]],
        "meta": {
            "raw_id": group.raw_id,
            **group.meta,
            **ground_truth,
            "backend": backend.name,
            "model": backend.model,
            "prompt_version": backend.prompt_version,
            "cache_key": key,
        },
    }


def plan_jobs(
    engine: Backend, cache: ResponseCache, groups: list[MediaGroup], cfg: dict[str, Any]
) -> tuple[list[Job], list[dict[str, str]]]:
    """A job per group with annotations (cached responses filled in), and the groups skipped."""
    jobs, skipped = [], []
    for group in groups:
        annotation = group.annotation()
        # Nothing to ground a dialogue in: not worth a (possibly paid) request.
        if not any(annotation.get(k) for k in ("objects", "expressions", "events", "sentences")):
            skipped.append({"media": group.media, "reason": "no annotations", "detail": ""})
            continue
        material = {
            "backend": engine.name,
            "model": engine.model,
            "prompt_version": engine.prompt_version,
            "request": engine.request(annotation, cfg["turns"]),
            "sampling": engine.sampling(cfg["seed"]),
        }
        key = cache_key(material)
        response = cache.get(key)
        jobs.append(Job(group, annotation, material, key, response, response is not None))
    return jobs, skipped


def estimate(misses: list[Job], cfg: dict[str, Any]) -> dict[str, Any]:
    """Tokens and USD for sending `misses`: prompt length / 4 in, at most `max_tokens` out."""
    chars = sum(len(json.dumps(j.material["request"], ensure_ascii=False)) for j in misses)
    tokens_in = chars // CHARS_PER_TOKEN
    tokens_out = len(misses) * int(cfg["max_tokens"])
    cost = tokens_in / 1000 * cfg["price_in_per_1k"] + tokens_out / 1000 * cfg["price_out_per_1k"]
    return {
        "requests": len(misses),
        "tokens_in": tokens_in,
        "tokens_out_max": tokens_out,
        "cost_usd_max": round(cost, 6),
    }


def print_prompts(misses: list[Job]) -> None:
    for job in misses:
        print(f"=== {job.group.media} (cache key {job.key[:12]})")
        for message in job.material["request"].get("messages", []):
            print(f"--- {message['role']}\n{message['content']}")
        if "messages" not in job.material["request"]:
            print(json.dumps(job.material["request"], indent=1, ensure_ascii=False))


def fetch(engine: Backend, cache: ResponseCache, misses: list[Job], concurrency: int) -> int:
    """Send the distinct requests of `misses`, `concurrency` at a time; returns requests sent.

    Each response is cached as soon as it arrives, so a run that fails half way (a non-retryable
    error, retries exhausted) has paid for nothing it will pay for again.
    """
    by_key: dict[str, list[Job]] = {}
    for job in misses:
        by_key.setdefault(job.key, []).append(job)

    def send(key: str) -> None:
        material = by_key[key][0].material
        response = engine.complete(material["request"], material["sampling"])
        cache.put(key, material, response)
        for job in by_key[key]:
            job.response = response

    with ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
        for future in [pool.submit(send, key) for key in by_key]:
            future.result()
    return len(by_key)


def select_misses(jobs: list[Job], budget: int) -> tuple[list[Job], list[Job]]:
    """(to send, over budget): distinct keys count once; `budget` 0 means no limit."""
    keys: list[str] = []
    send, over = [], []
    for job in (j for j in jobs if not j.cached):
        if job.key not in keys and budget and len(keys) >= budget:
            over.append(job)
            continue
        if job.key not in keys:
            keys.append(job.key)
        send.append(job)
    return send, over


def generate_instructions(
    sources: list[Path], out: Path, manifest: Path, cfg: dict[str, Any],
    forms: tuple[Coords, Coords] = (FLOAT3, FLOAT2),
) -> dict[str, Any]:  # fmt: skip
    """Write one validated grounded dialogue per media file of `sources`; returns the manifest.

    `cfg` is the recipe's `generate` section (`ground.common.config.Generate`). `turns` counts
    question/answer pairs per dialogue, the first being the grounded overview. Prompts, answers and
    their checks use GroundingGPT's decimals; the dialogues written re-write their boxes and spans
    in `forms` (`convert.coords`, `convert.spans`: those of the converted data), from that text:
    a generated span is as precise as its 2 decimals, a box as its 3.
    """
    if cfg["turns"] < 1:
        raise ValueError(f"turns must be at least 1, got {cfg['turns']}")
    engine = make_backend(cfg["backend"], cfg)
    cache = ResponseCache(Path(cfg["cache_dir"]))
    groups, records_in, skipped = load_groups(sources)
    jobs, rejected = plan_jobs(engine, cache, groups, cfg)
    misses, over_budget = select_misses(jobs, int(cfg["max_requests"]))
    summary: dict[str, Any] = {
        "backend": engine.name,
        "model": engine.model,
        "prompt_version": engine.prompt_version,
        "sources": [Path(s).as_posix() for s in sources],
        "seed": cfg["seed"],
        "turns": cfg["turns"],
        "records_in": records_in,
        "records_skipped": skipped,
        "media": len(groups),
        "cache_hits": sum(j.cached for j in jobs),
    }
    if cfg["dry_run"]:
        print_prompts(misses)
        summary |= {"dry_run": True, "estimate": estimate(misses, cfg), "requests": 0}
        print(f"dry run, nothing sent: {json.dumps(summary['estimate'])}")
        return finish(out, manifest, summary, [], rejected)
    summary["requests"] = fetch(engine, cache, misses, int(cfg["max_concurrency"]))
    fresh = {j.key: j.response for j in misses if j.response is not None}
    summary["tokens_in"] = sum(r.get("usage", {}).get("tokens_in", 0) for r in fresh.values())
    summary["tokens_out"] = sum(r.get("usage", {}).get("tokens_out", 0) for r in fresh.values())
    for job in over_budget:
        rejected.append({"media": job.group.media, "reason": "budget exhausted", "detail": ""})
    summary["budget_exhausted"] = bool(over_budget)
    records = []
    for job in (j for j in jobs if j.response is not None):
        try:
            dialogue = validate_dialogue(job.response, job.annotation, cfg["turns"])
        except InvalidDialogue as err:
            rejected.append({"media": job.group.media, "reason": err.reason, "detail": err.detail})
            continue
        dialogue = [{**turn, "value": rewrite(turn["value"], *forms)} for turn in dialogue]
        records.append(dialogue_record(job.group, dialogue, engine, job.key))
    return finish(out, manifest, summary, records, rejected)


def finish(
    out: Path,
    manifest: Path,
    summary: dict[str, Any],
    records: list[dict[str, Any]],
    rejected: list[dict[str, str]],
) -> dict[str, Any]:
    summary.setdefault("tokens_in", 0)
    summary.setdefault("tokens_out", 0)
    summary["records_out"] = len(records)
    summary["rejected_by_reason"] = dict(sorted(Counter(r["reason"] for r in rejected).items()))
    summary["rejected"] = rejected
    write_outputs(out, records, manifest, summary)
    return summary


def main() -> None:
    from dataclasses import asdict

    import yaml

    from ground.common.config import Generate

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sources", required=True, nargs="+", type=Path)
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--manifest", required=True, type=Path)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a key of the recipe's generate section (YAML value)")  # fmt: skip
    args = parser.parse_args()
    cfg = asdict(Generate())
    for item in args.set:
        key, _, value = item.partition("=")
        if key not in cfg:
            parser.error(f"unknown generate key {key!r}; known: {sorted(cfg)}")
        cfg[key] = yaml.safe_load(value)
    print(brief_summary(generate_instructions(args.sources, args.out, args.manifest, cfg)))


if __name__ == "__main__":
    main()
