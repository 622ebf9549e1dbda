"""The pipeline's steps as users name them, and what each one depends on.

One table serves the Snakefile (rule params: the step's config section and code fingerprint),
the CLI (`--until STEP`, `ground status`) and the tracking database (the `step` of a job).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ground.common.catalog import AUTHORS_CONVERTER, DATASETS
from ground.common.config import TRAIN_SHARED
from ground.workflow.codecache import cached_fingerprint


@dataclass(frozen=True)
class Step:
    name: str
    rules: tuple[str, ...]
    section: str  # dotted config section passed to the step's rules as `params.cfg`
    modules: tuple[str, ...]  # library code whose fingerprint is passed as `params.code`
    wildcards: tuple[tuple[str, str], ...] = ()  # for steps that share a rule (stage1..3)
    until: tuple[str, ...] = ()  # Snakemake targets for --until/--forcerun; default: the rules (--until: the last)

    @property
    def targets(self) -> tuple[str, ...]:
        return self.until or self.rules

    @property
    def adapters(self) -> tuple[str, ...]:
        """The rules' `script:` adapters, relative to the workflow's root."""
        return tuple(f"rules/scripts/{rule}.py" for rule in self.rules)


# The convert step loads the catalog's converters by name (importlib), which no import shows the
# fingerprint: they are named here, so that editing a converter reruns conversion.
_NAMED = (AUTHORS_CONVERTER, *(d.converter for d in DATASETS.values()))
CONVERTERS = tuple(sorted({entry.partition(":")[0] for entry in _NAMED}))
STEPS: tuple[Step, ...] = (
    Step("download", ("download_data",), "download", ("ground.download.run",)),
    Step("import", ("import_release",), "release", ("ground.release.run",)),
    Step("convert", ("convert_dataset",), "convert", ("ground.convert.run", *CONVERTERS)),
    Step("generate", ("generate_instructions",), "generate", ("ground.generate.run",)),
    Step("mixture", ("assemble_mixture",), "mixture", ("ground.mixture.run",)),
    # One checkpoint and one gather job per modality, features.shards encoder jobs between them.
    Step("features", ("split_media", "cache_features", "gather_features"), "features",
         ("ground.features.extract",)),  # fmt: skip
    *(
        Step(f"stage{n}", ("train_stage",), "train", ("ground.train.launch",),
             wildcards=(("stage", str(n)),), until=(f"results/train/stage{n}/model",))  # fmt: skip
        for n in (1, 2, 3)
    ),
    Step("eval", ("evaluate_benchmark",), "eval", ("ground.eval.run",)),
)


def step(name: str) -> Step:
    for candidate in STEPS:
        if candidate.name == name:
            return candidate
    raise KeyError(f"unknown step {name!r} (steps: {names()})")


def names() -> str:
    return ", ".join(s.name for s in STEPS)


def until_targets(name: str, config: dict[str, Any]) -> list[str]:
    """What `ground run --until NAME` builds. `--until convert` ends with the stage mixtures
    (stage 3's holds the generated dialogues, so generation runs too) and the benchmarks'
    converted data: files, because Snakemake never starts a job downstream of an --until rule."""
    if name != "convert":
        # the step's last rule only: Snakemake starts no job downstream of an --until rule
        spec = step(name)
        return list(spec.until or spec.rules[-1:])
    from ground.common.catalog import benchmark

    # a recipe that scores the imported release trains nothing: no mixtures to build
    trains = config["eval"]["checkpoint"] != "import"
    mixtures = [f"results/mixture/stage{n}.jsonl" for n in (1, 2, 3)] if trains else []
    evaluated = {f for b in config["eval"]["benchmarks"] for f in benchmark(b).data_files()}
    return mixtures + sorted(evaluated)


def step_code(spec: Step, root: Path) -> str:
    """The fingerprint a step's jobs get as `params.code`: the library code it runs and its rules'
    adapters under the workflow's `root`. It replaces Snakemake's code trigger, which reruns a
    `script:` rule whenever the adapter's mtime changes (a checkout, a `touch`), not its code.
    Remembered under `root/.snakemake/ground/` until one of those files changes (codecache)."""
    files = [root / a for a in spec.adapters]
    return cached_fingerprint(*spec.modules, files=files, cache=root / ".snakemake" / "ground" / "fingerprints.json")


def step_of_rule(rule: str, wildcards: dict[str, str] | None = None) -> str | None:
    """The step a job belongs to; steps sharing a rule are told apart by their wildcards."""
    for candidate in STEPS:
        if rule in candidate.rules and all(
            (wildcards or {}).get(k, v) == v for k, v in candidate.wildcards
        ):
            return candidate.name
    return None


def step_config(config: dict[str, Any], name: str) -> Any:
    """The config a step's jobs get as `params.cfg`: its section; for a training stage, its own
    `train.stageN` plus the shared `train` keys, so `train.stage2.lr` reruns stages 2-3 only.
    Cluster resources are left out (what a job asks a scheduler for changes no result), except a
    stage's GPUs and nodes: they set its processes, hence its global batch."""
    spec = step(name)
    if not spec.wildcards:
        cfg = section(config, spec.section)
        return {k: v for k, v in cfg.items() if k != "resources"} if isinstance(cfg, dict) else cfg
    train = config["train"]
    stage = dict(train[name])
    stage["resources"] = {k: stage["resources"][k] for k in ("gpus", "nodes")}
    return {name: stage} | {k: train[k] for k in TRAIN_SHARED}


def section(config: dict[str, Any], dotted: str) -> Any:
    node = config
    for part in dotted.split("."):
        node = node[part]
    return node
