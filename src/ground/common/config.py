"""The recipe schema: one typed tree of dataclasses, used by both the Snakefile and the CLI.

    >>> from ground.common.config import load_config
    >>> cfg = load_config("config.yaml", overrides=["convert.seed=3"])
    >>> cfg["convert"]["seed"]
    3

`load_config` returns a plain dict (what Snakemake's `config` holds) checked against the dataclasses
below: unknown keys and wrong types raise `ConfigError` with the dotted key (no silent defaults).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from ground.common.formats import recipe_forms


class ConfigError(ValueError):
    """A recipe that does not match the schema; the message names the dotted key."""


@dataclass
class DemoCorpus:
    """Size and shape of the synthetic corpus the demo recipe's download step generates."""

    splits: dict[str, int] = field(default_factory=lambda: {"train": 600, "val": 60, "test": 120})
    video_seconds: float = 8.0
    video_fps: int = 8
    # appear | move | change: appearances only by default, the tiny model learns them (BENCHMARKS.md)
    video_events: list[str] = field(default_factory=lambda: ["appear"])
    audio_seconds: float = 6.0


@dataclass
class TinyModels:
    """The demo's tiny parts: sizes, and optimizer steps of pretraining each (ground.demo.pretrain)."""
    vocab_size: int = 2048
    llm_hidden: int = 128
    llm_layers: int = 4
    llm_heads: int = 4
    llm_max_positions: int = 1024
    image_size: int = 64
    frame_size: int = 32
    pretrain: dict[str, int] = field(default_factory=lambda: {"image_encoder": 500, "frame_encoder": 800, "audio_encoder": 120, "llm": 200})  # fmt: skip


@dataclass
class Download:
    source: Literal["synthetic", "hub"] = "synthetic"
    root: str = "resources/demo"
    seed: int = 0
    datasets: list[str] = field(default_factory=list)  # hub: the datasets to fetch
    pretrained: list[str] = field(default_factory=list)  # hub: base models (ground.common.catalog)
    revisions: dict[str, str] = field(default_factory=dict)  # hub repo -> pinned revision
    mirror: str = ""  # a local folder laid out like the hub, used instead of the hub
    workers: int = 8  # files downloaded in parallel
    demo: DemoCorpus = field(default_factory=DemoCorpus)
    models: TinyModels = field(default_factory=TinyModels)

    def __post_init__(self) -> None:
        if self.workers < 1:
            raise ConfigError(f"download.workers must be >= 1, got {self.workers}")
        if self.source != "hub":
            return
        from ground.common.catalog import DATASETS, MODELS, hub_repos

        for where, names, known in (("datasets", self.datasets, DATASETS), ("pretrained", self.pretrained, MODELS)):
            unknown = sorted(set(names) - set(known))
            if unknown:
                raise ConfigError(f"download.{where}: unknown {unknown}; known: {sorted(known)}")
        unpinned = [r for r in hub_repos(self.datasets, self.pretrained) if r not in self.revisions]
        if unpinned:
            raise ConfigError(f"download.revisions: no pinned revision for hub repo(s) {unpinned}")


@dataclass
class Convert:
    seed: int = 0
    datasets: list[str] = field(default_factory=lambda: ["demo_image", "demo_video", "demo_audio"])
    splits: list[str] = field(default_factory=lambda: ["train", "val", "test"])
    max_reject_fraction: float = 0.05
    authors: list[str] = field(default_factory=list)  # datasets taken from zwli/GroundingGPT's JSON
    coords: str = "float3"  # how boxes are written: float3 | float4 | bins:N (LocVLM's integer bins)
    spans: str = "float2"  # how time spans are written: float2 | float3 | bins:N


@dataclass
class Generate:
    backend: Literal["offline", "openai", "transformers"] = "offline"
    seed: int = 0
    sources: list[str] = field(default_factory=lambda: ["demo_image", "demo_video"])
    split: str = "train"
    turns: int = 3
    cache_dir: str = "cache/generate"
    model: str = "gpt-3.5-turbo"  # openai: model name; transformers: a local chat model folder
    base_url: str = ""  # openai: any OpenAI-compatible endpoint; "" = the openai client's default
    api_key_env: str = "OPENAI_API_KEY"  # NAME of the environment variable holding the key
    temperature: float = 0.2
    max_tokens: int = 1024  # per response
    max_concurrency: int = 4  # requests in flight at once
    max_retries: int = 5  # on 429, 5xx and timeouts, with exponential backoff
    timeout_s: float = 60.0
    max_requests: int = 0  # request budget per run (0: unlimited); cache hits are free
    price_in_per_1k: float = 0.0005  # USD per 1k prompt tokens, for the dry-run estimate
    price_out_per_1k: float = 0.0015
    dry_run: bool = False  # print the prompts and a token/cost estimate, send nothing


@dataclass
class Resources:
    """What one job of a step asks a cluster for: Snakemake resources that the SLURM plugin maps to
    sbatch options (`gpu`, `nodes`, `mem_mb`, `runtime`); a profile's `set-resources` overrides
    them per rule. GPUs define a training stage's global batch, so they belong to the recipe."""

    gpus: int = 0  # per node; 0 on a machine without GPUs
    nodes: int = 1  # a training stage may span nodes (one launcher per node); other steps use 1
    mem_mb: int = 8000
    runtime: int = 60  # minutes

    def __post_init__(self) -> None:
        if self.gpus < 0 or self.nodes < 1 or self.mem_mb < 1 or self.runtime < 1:
            raise ConfigError(f"resources: gpus >= 0, nodes, mem_mb and runtime >= 1 ({self})")


@dataclass
class ImageFeatures:
    encoder: str = "resources/demo/models/image_encoder"
    size: int = 64


@dataclass
class VideoFeatures:
    encoder: str = "resources/demo/models/frame_encoder"
    frames: int = 8
    size: int = 32
    sampler: Literal["seek", "single_pass"] = "seek"


@dataclass
class AudioFeatures:
    encoder: str = "resources/demo/models/audio_encoder"
    clips: int = 3
    clip_seconds: float = 2.0
    sample_rate: int = 16000
    mel_bins: int = 128
    target_length: int = 204


@dataclass
class Features:
    store: str = "cache/features"
    dtype: Literal["float16", "bfloat16", "float32"] = "float16"
    shard_size: int = 256
    batch_size: int = 32
    on_error: Literal["fail", "skip"] = "fail"
    device: str = "cpu"
    image: ImageFeatures = field(default_factory=ImageFeatures)
    video: VideoFeatures = field(default_factory=VideoFeatures)
    audio: AudioFeatures = field(default_factory=AudioFeatures)
    resources: Resources = field(default_factory=Resources)  # per feature job
    shards: int = 1  # jobs per modality: media go to shard sha256(path) mod shards (features.shards)

    def __post_init__(self) -> None:
        if self.shards < 1 or self.shard_size < 1 or self.batch_size < 1:
            raise ConfigError(f"features: shards, shard_size and batch_size must be >= 1 ({self})")


@dataclass
class Stage:
    """Hyper-parameters of one training stage (the paper's Table 9 for the 7B recipe)."""

    lr: float = 1e-3
    batch_size: int = 8  # per process (DeepSpeed's micro batch)
    grad_accum: int = 1
    epochs: float = 1.0
    warmup_ratio: float = 0.03
    weight_decay: float = 0.0
    alpha: float = 0.0  # share of the previous stage's data mixed in (anti-forgetting)
    save_every: int = 50  # optimizer steps between resumable checkpoints
    gradient_checkpointing: bool = False
    resources: Resources = field(default_factory=Resources)
    # Processes when resources.gpus is 0 (torchrun/deepspeed on CPU, gloo; else one per GPU): part of
    # the global batch, batch_size x grad_accum x (gpus x nodes, or this), which allocations keep.
    processes: int = 1

    def __post_init__(self) -> None:
        if self.processes < 1 or self.lr <= 0 or self.batch_size < 1 or self.grad_accum < 1 or self.epochs <= 0:
            raise ConfigError(f"train stage: processes, lr, batch_size, grad_accum and epochs must be positive ({self})")
        if not 0 <= self.warmup_ratio < 1 or self.alpha < 0:
            raise ConfigError(f"train stage: warmup_ratio must be in [0, 1) and alpha >= 0 ({self})")


@dataclass
class Train:
    llm: str = "resources/demo/models/llm"  # base LLM + tokenizer (HF folder) that stage 1 starts from
    launcher: Literal["python", "torchrun", "deepspeed"] = "python"
    precision: Literal["auto", "bf16", "fp32"] = "auto"  # auto: bf16 + tf32 on GPU, fp32 on CPU
    zero_stage: int = 2
    max_length: int = 2048
    seed: int = 0
    attn_implementation: str = "sdpa"
    standardize_features: bool = False  # adapters standardise features with stage-1 statistics
    packing: bool = False  # several samples per row of at most max_length (ground.train.packing)
    group_by_length: bool = False  # batches of similar lengths (ground.train.sampler)
    workers: int = 0  # data-loader processes reading the next batches while the model computes
    stage1: Stage = field(default_factory=Stage)
    stage2: Stage = field(default_factory=lambda: Stage(lr=2e-5, alpha=0.1))
    stage3: Stage = field(default_factory=lambda: Stage(lr=2e-5, alpha=0.1))


# train.* keys every stage depends on (besides its own train.stageN section).
TRAIN_SHARED = ("llm", "launcher", "precision", "zero_stage", "max_length", "seed",
                "attn_implementation", "standardize_features", "packing", "group_by_length", "workers")


@dataclass
class Mixture:
    """What each training stage learns from: selector -> weight. A selector is a converted
    dataset (`refcoco`: all its train records), one task of it (`demo_image/rec`) or
    `generated` (the generated dialogues); weight w takes round(w * n) of its n records (w < 1
    samples, w > 1 replays). `train.stageN.alpha` adds that share of the previous stage's data."""

    stage1: dict[str, float] = field(default_factory=lambda: {
        "demo_image/image_caption": 1.0, "demo_video/video_caption": 1.0,
        "demo_audio/audio_caption": 1.0})  # fmt: skip
    stage2: dict[str, float] = field(default_factory=lambda: {
        "demo_image/rec": 1.0, "demo_image/reg": 1.0, "demo_video/temporal_grounding": 1.0,
        "demo_video/dense_caption": 1.0, "demo_audio/sound_localization": 1.0})  # fmt: skip
    stage3: dict[str, float] = field(default_factory=lambda: {"generated": 1.0})

    def __post_init__(self) -> None:
        for stage in ("stage1", "stage2", "stage3"):
            weights = getattr(self, stage)
            if not weights:
                raise ConfigError(f"mixture.{stage}: no sources")
            bad = {k: w for k, w in weights.items() if not w >= 0 or k.count("/") > 1}
            if bad:
                raise ConfigError(f"mixture.{stage}: bad selector or negative weight {bad}")


@dataclass
class Eval:
    benchmarks: list[str] = field(default_factory=list)  # scored after stage 3 (ground.eval.scoring)
    batch_size: int = 16  # questions decoded together
    max_new_tokens: int = 48  # longest answer
    device: str = "auto"  # auto: cuda when visible, else cpu
    precision: Literal["auto", "bf16", "fp32"] = "auto"  # auto: bf16 on GPU, fp32 on CPU
    limit: int = 0  # score only the first N questions of each benchmark (0: all)
    checkpoint: Literal["stage3", "import"] = "stage3"  # stage 3's model, or the imported release
    prompt_format: Literal["training", "release"] = "training"  # or the release's prompt (template.py)
    temperature: float = 0.0  # 0: greedy; the release's demo sampled at 0.2
    seed: int = 0  # sampling seed (each batch is seeded from it and its record ids)
    resources: Resources = field(default_factory=Resources)  # per benchmark job

    def __post_init__(self) -> None:
        from ground.common.catalog import BENCHMARKS

        unknown = [b for b in self.benchmarks if b not in BENCHMARKS]
        if unknown:
            raise ConfigError(f"eval.benchmarks: unknown {unknown}; known: {list(BENCHMARKS)}")
        if self.batch_size < 1 or self.max_new_tokens < 1 or self.limit < 0:
            raise ConfigError("eval: batch_size and max_new_tokens must be >= 1, limit >= 0")
        if self.temperature < 0:
            raise ConfigError(f"eval.temperature must be >= 0, got {self.temperature}")


@dataclass
class Release:
    """The `import` step: the authors' released checkpoint (zwli/GroundingGPT) in our layout."""

    source: str = ""  # release folder; "" = <download.root>/models/groundinggpt-release
    compare_frame_encoder: str = ""  # a BLIP-2 folder whose tensors import.json compares by hash


@dataclass
class Tracking:
    database: str = "results/ground.duckdb"


@dataclass
class Recipe:
    recipe: str = "demo"
    download: Download = field(default_factory=Download)
    convert: Convert = field(default_factory=Convert)
    generate: Generate = field(default_factory=Generate)
    features: Features = field(default_factory=Features)
    train: Train = field(default_factory=Train)
    mixture: Mixture = field(default_factory=Mixture)
    eval: Eval = field(default_factory=Eval)
    release: Release = field(default_factory=Release)
    tracking: Tracking = field(default_factory=Tracking)


def load_config(path: str | Path, overrides: list[str] = ()) -> dict[str, Any]:
    """Read a recipe file, apply `dotted.key=value` overrides, validate, return the full dict."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as err:
        raise ConfigError(f"{path}: cannot read recipe ({err})") from err
    for item in overrides:
        apply_override(raw, item)
    return validate(raw)


def apply_override(raw: dict, item: str) -> None:
    """Set `a.b.c=value` in a nested dict; the value is parsed as YAML (`3`, `1e-4`, `[a, b]`)."""
    key, sep, text = item.partition("=")
    if not sep or not key:
        raise ConfigError(f"--set {item!r}: expected dotted.key=value")
    node = raw
    *parents, leaf = key.split(".")
    for part in parents:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"--set {item!r}: {part} is not a section")
    node[leaf] = yaml.safe_load(text) if text else ""


def validate(raw: dict[str, Any]) -> dict[str, Any]:
    """Check `raw` against the schema; returns it with defaults filled in."""
    recipe = _build(Recipe, raw, "")
    if recipe.train.workers < 0:
        raise ConfigError(f"train.workers must be >= 0, got {recipe.train.workers}")
    try:
        recipe_forms(dataclasses.asdict(recipe.convert))  # its error names the key
    except ValueError as err:
        raise ConfigError(str(err)) from None
    converted = set(recipe.convert.datasets) | {"generated"}
    for stage in ("stage1", "stage2", "stage3"):
        unknown = sorted({k.split("/")[0] for k in getattr(recipe.mixture, stage)} - converted)
        if unknown:
            raise ConfigError(f"mixture.{stage}: {unknown} not in convert.datasets")
    return dataclasses.asdict(recipe)


def _build(cls: type, raw: Any, where: str) -> Any:
    if not isinstance(raw, dict):
        raise ConfigError(f"{where or 'recipe'}: expected a section (mapping), got {raw!r}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - names)
    if unknown:
        raise ConfigError(f"unknown config key {_join(where, unknown[0])!r} (known: {sorted(names)})")
    values = {name: _coerce(hints[name], value, _join(where, name)) for name, value in raw.items()}
    return cls(**values)


def _coerce(hint: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(hint)
    if dataclasses.is_dataclass(hint):
        return _build(hint, value, where)
    if origin is Literal:
        if value not in typing.get_args(hint):
            raise ConfigError(f"{where}: {value!r} is not one of {list(typing.get_args(hint))}")
        return value
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        (item,) = typing.get_args(hint)
        return [_coerce(item, v, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        _, item = typing.get_args(hint)
        return {str(k): _coerce(item, v, f"{where}.{k}") for k, v in value.items()}
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in typing.get_args(hint):
            return None
        hint = next(a for a in typing.get_args(hint) if a is not type(None))
    return _scalar(hint, value, where)


def _scalar(hint: type, value: Any, where: str) -> Any:
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint is float and isinstance(value, str):  # PyYAML reads `1e-4` (no dot) as a string
        try:
            return float(value)
        except ValueError:
            raise ConfigError(f"{where}: expected float, got {value!r}") from None
    if hint is bool and not isinstance(value, bool):
        raise ConfigError(f"{where}: expected true/false, got {value!r}")
    if hint is int and (isinstance(value, bool) or not isinstance(value, int)):
        raise ConfigError(f"{where}: expected an integer, got {value!r}")
    if not isinstance(value, hint):
        raise ConfigError(f"{where}: expected {hint.__name__}, got {value!r}")
    return value


def _join(where: str, name: str) -> str:
    return f"{where}.{name}" if where else name
