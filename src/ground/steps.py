"""The pipeline's steps as users name them, and what each one depends on.

One table serves the Snakefile (rule params: the step's config section and code fingerprint),
the CLI (`--until STEP`, `ground status`) and the tracking database (the `step` of a job).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Step:
    name: str
    rules: tuple[str, ...]
    section: str  # dotted config section passed to the step's rules as `params.cfg`
    modules: tuple[str, ...]  # library code whose fingerprint is passed as `params.code`


STEPS: tuple[Step, ...] = (
    Step("download", ("download_data",), "download", ("ground.data.download",)),
    Step("convert", ("convert_dataset",), "convert", ("ground.data.convert",)),
    Step("generate", ("generate_instructions",), "generate", ("ground.instruct.generate",)),
    Step("features", ("cache_features",), "features", ("ground.features.extract",)),
)
# Names users may type that later parts of the pipeline will own.
PLANNED = ("stage1", "stage2", "stage3", "eval")


def step(name: str) -> Step:
    for candidate in STEPS:
        if candidate.name == name:
            return candidate
    if name in PLANNED:
        raise KeyError(f"step {name!r} has no rules in this version yet (available: {names()})")
    raise KeyError(f"unknown step {name!r} (steps: {names()})")


def names() -> str:
    return ", ".join(s.name for s in STEPS)


def step_of_rule(rule: str) -> str | None:
    return next((s.name for s in STEPS if rule in s.rules), None)


def section(config: dict[str, Any], dotted: str) -> Any:
    node = config
    for part in dotted.split("."):
        node = node[part]
    return node
