"""Named experiments: one working folder each, sharing what their recipes have in common.

    folder = workdir(project, "ivb")          # experiments/ivb (the default one: the project)
    mirror(workdir(project, "default"), folder)  # its finished outputs, before the first run

An experiment is the pipeline run in its own folder (`experiments/<name>/`, with its own
`results/`, `logs/` and `.snakemake/`), so two experiments never write over each other's files and
never lock each other out. Before its first run the folder gets every finished output of the
experiment it starts from, as hard links, with Snakemake's record of the job that made it (its
params, code fingerprint, input list). Snakemake then reruns only the jobs whose params, code or
inputs differ in the new recipe, exactly as it would after a `--set` in the same folder; every
other output is the very bytes the first experiment made. A rerun job first removes its outputs,
which removes the links and leaves the other experiment's files untouched. The feature store and
the generation cache stay shared (content-addressed).
"""

from __future__ import annotations

import errno
import os
import re
import shutil
from pathlib import Path
from typing import Any

from ground.workflow import persistence

DEFAULT = "default"
FOLDER = "experiments"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,79}")


def check_name(name: str) -> str:
    if not _NAME.fullmatch(name):
        raise ValueError(
            f"experiment name {name!r}: use letters, digits, '_', '.' and '-' (at most 80, not starting with a dot or dash)"
        )
    return name


def workdir(project: Path, name: str) -> Path:
    """Where an experiment's pipeline runs: the project itself for the default experiment."""
    return project if name == DEFAULT else project / FOLDER / check_name(name)


def names(project: Path) -> list[str]:
    """The default experiment and every experiment folder that has run."""
    folder = project / FOLDER
    found = sorted(p.name for p in folder.iterdir() if (p / ".snakemake").is_dir()) if folder.is_dir() else []
    return [DEFAULT, *found]


def mirror(source: Path, target: Path) -> int:
    """Link every finished output of the pipeline in `source` into `target` (which has none of its
    own yet), with Snakemake's metadata record of each; the number of outputs linked.

    Outputs are taken from Snakemake's records, not by walking folders: the run store, logs
    and anything else in `source` stay its own. An output already in `target`, or one whose job
    Snakemake marks incomplete, is left alone. Outputs at absolute paths, or inside a store the
    folders share (`share_stores`), are the same files for both; only their record is copied.
    """
    metadata = source / ".snakemake" / "metadata"
    incomplete = set(persistence.records(source / ".snakemake" / "incomplete"))
    linked = 0
    for name, record in sorted(persistence.records(metadata).items()):
        if name in incomplete:
            continue
        output = Path(name)
        there, here = (output, output) if output.is_absolute() else (source / output, target / output)
        if not os.path.lexists(there):
            continue
        if not os.path.lexists(here):
            _link(there, here)
            linked += 1
        elif not os.path.samefile(here, there):  # the target's own (a shared store's are the same)
            continue
        copy = target / ".snakemake" / "metadata" / record.relative_to(metadata)
        if not copy.exists():
            copy.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(record, copy)
    return linked


def _link(there: Path, here: Path) -> None:
    """A hard link of a file, or a tree of hard links of a directory (a directory output)."""
    here.parent.mkdir(parents=True, exist_ok=True)
    if there.is_dir() and not there.is_symlink():
        shutil.copytree(there, here, copy_function=_hard_link, symlinks=True)
        shutil.copystat(there, here)
    else:
        _hard_link(there, here)


def _hard_link(there: str | Path, here: str | Path) -> None:
    """A copy where hard links cannot go (another file system): never a symbolic link, which
    would follow the other folder's file when its job reruns."""
    try:
        os.link(there, here, follow_symlinks=False)
    except OSError as err:
        if err.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK):
            raise
        shutil.copy2(there, here, follow_symlinks=False)


def stores(cfg: dict[str, Any]) -> list[str]:
    """The recipe's folders every experiment shares: the feature store, the generation cache and a
    hub download's folder (datasets kept across runs, not outputs)."""
    shared = [cfg["features"]["store"], cfg["generate"]["cache_dir"]]
    return shared + ([cfg["download"]["root"]] if cfg["download"]["source"] == "hub" else [])


def share_stores(project: Path, target: Path, stores: list[str]) -> None:
    """Point an experiment's relative store folders (the feature store, the generation cache)
    at the project's, so experiments share them."""
    for store in stores:
        if Path(store).is_absolute():
            continue
        link, real = target / store, project / store
        if os.path.lexists(link):
            continue
        real.mkdir(parents=True, exist_ok=True)
        link.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(real.resolve(), link)


def sweep(name: str, spec: str) -> list[tuple[str, str]]:
    """`key=v1,v2,...` -> one (experiment name, `key=value` override) per value; commas inside
    brackets or braces belong to the value (`--sweep 'x={a: 1, b: 2},{a: 3, b: 4}'`)."""
    key, sep, values = spec.partition("=")
    if not sep or not key.strip():
        raise ValueError(f"--sweep {spec!r}: expected dotted.key=value1,value2,...")
    parts, depth, current = [], 0, ""
    for char in values:
        depth += (char in "[{") - (char in "]}")
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    parts.append(current)
    parts = [p.strip() for p in parts]
    if len(parts) < 2 or not all(parts):
        raise ValueError(f"--sweep {spec!r}: give at least two non-empty values separated by commas")
    variants = [(check_name(f"{name}-{re.sub(r'[^A-Za-z0-9_.-]+', '_', v).strip('_.-')}"), f"{key.strip()}={v}") for v in parts]
    if len({n for n, _ in variants}) != len(variants):
        raise ValueError(f"--sweep {spec!r}: two values give the same experiment name")
    return variants


def flatten(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """A recipe as {dotted.key: value} (lists and empty mappings are values)."""
    flat: dict[str, Any] = {}
    for key, value in config.items():
        if isinstance(value, dict) and value:
            flat |= flatten(value, f"{prefix}{key}.")
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def differing(configs: list[dict[str, Any]]) -> list[str]:
    """The dotted keys whose values are not the same in every recipe (missing counts as a value)."""
    flats = [flatten(c) for c in configs]
    keys = sorted({k for f in flats for k in f})
    missing = object()
    return [k for k in keys if len({repr(f.get(k, missing)) for f in flats}) > 1]


def _newest(db: Path, chosen: list[str]) -> dict[str, dict[str, Any]]:
    """Every experiment's newest run (`ground.tracking.queries.latest_runs`); each chosen one must have one."""
    from ground.tracking.queries import latest_runs

    runs = latest_runs(db)
    unknown = [n for n in chosen if n not in runs]
    if unknown:
        raise ValueError(f"no recorded run of experiment(s) {', '.join(unknown)} (ground exp list shows them)")
    return runs


def scores(project: Path, db: Path, name: str) -> dict[str, float]:
    """The scores the experiment's current evaluation jobs recorded in the run store, each
    beside its baseline: `demo_rec Acc@0.5`, `demo_rec baseline/Acc@0.5` (`bench.split ...` for
    a split other than test)."""
    from ground.tracking.queries import job_scores
    from ground.tracking.record import find_records, read_job_record

    evals = find_records(workdir(project, name) / "results" / "eval")
    found = {}
    for score in sorted(job_scores(db, [read_job_record(p)[0] for p in evals]), key=_beside_its_baseline):
        split = "" if score["split"] in (None, "", "test") else f".{score['split']}"
        found[f"{score['benchmark']}{split} {score['name']}"] = score["value"]
    return found


def _beside_its_baseline(score: dict[str, Any]) -> tuple:
    name = score["name"]
    return score["benchmark"] or "", score["split"] or "", name.removeprefix("baseline/"), name.startswith("baseline/")


def compare(project: Path, db: Path, chosen: list[str] = ()) -> tuple[list[dict[str, Any]], list[str]]:
    """One row per experiment (the chosen ones, else every one that has run): its newest run's
    status and commit, the recipe keys whose values differ between the rows, and its `scores`;
    and the differing keys."""
    runs = _newest(db, list(chosen))
    chosen = list(chosen) or [n for n in names(project) if n in runs]
    keys = differing([runs[n]["config"] for n in chosen])
    rows = []
    for name in chosen:
        run, flat = runs[name], flatten(runs[name]["config"])
        row = {"experiment": name, "status": run["status"], "runs": run["runs"], "commit": run["git_commit"]}
        rows.append(row | {key: flat.get(key) for key in keys} | scores(project, db, name))
    return rows, keys


def recipe_diff(db: Path, a: str, b: str) -> list[dict[str, Any]]:
    """The resolved recipes of two experiments' newest runs, key by key where they differ."""
    runs = _newest(db, [a, b])
    flat_a, flat_b = flatten(runs[a]["config"]), flatten(runs[b]["config"])
    keys = differing([runs[a]["config"], runs[b]["config"]])
    return [{"key": k, a: flat_a.get(k), b: flat_b.get(k)} for k in keys]


def compare_scores(project: Path, db: Path, a: str, b: str) -> list[dict[str, Any]]:
    """Two experiments' scores side by side with B - A (`ground metrics --compare A B`)."""
    _newest(db, [a, b])
    score_a, score_b = scores(project, db, a), scores(project, db, b)
    out = []
    for score in sorted(score_a.keys() | score_b.keys()):
        va, vb = score_a.get(score), score_b.get(score)
        benchmark, _, name = score.partition(" ")
        out.append({"benchmark": benchmark, "name": name, "a": va, "b": vb}
                   | ({"b - a": vb - va} if va is not None and vb is not None else {}))  # fmt: skip
    if not out:
        raise ValueError(f"neither {a!r} nor {b!r} has scores (run their eval step)")
    return out
