"""What a recipe's data needs under `download.root`, what is there, and how to get the rest.

    ground data check --config configs/groundinggpt-7b.yaml          # table; exit 1 if missing
    ground data check --json

    >>> from ground.common.config import load_config
    >>> rows = check_data(load_config("configs/groundinggpt-7b.yaml"))
    >>> [(r.name, r.status, r.missing, r.fix) for r in rows if r.status != "present"]

One row per dataset the recipe converts or evaluates on (`convert.datasets`, the datasets of
`eval.benchmarks`) and per base model (`download.pretrained`). A dataset needs its published
annotation files for each split it is used with (`layout.raw_input`: `catalog.Dataset.files`,
or for the train split of a dataset in `convert.authors` the authors' file under raw/authors/)
and a non-empty media folder `media/<media>/`. The fix is the download command for what the hub carries, else the catalog's
`manual` text with the root, name and split filled in. Light to import: no hub client, no torch.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ground.common.catalog import AUTHORS_DIR, DATASETS, MODELS, Dataset, benchmark
from ground.download.layout import raw_input

DOWNLOAD = "ground run --until download"
DEMO_MEDIA = {"demo_image": "images", "demo_video": "videos", "demo_audio": "audio"}  # synthetic
WEIGHTS = (".safetensors", ".bin", ".pth")


@dataclass
class Row:
    kind: str  # dataset | model
    name: str
    status: str  # present | partial | missing
    files_present: int  # annotation files (a model: its config.json and weights)
    files_expected: int
    missing: list[str] = field(default_factory=list)  # exact paths, root included
    media: str = ""  # the media folder (a model: its folder)
    media_files: int = 0
    fix: str = ""  # what to run or do; "" when present

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def check_data(cfg: dict[str, Any], command: str = DOWNLOAD) -> list[Row]:
    """One row per dataset and base model of the validated recipe `cfg` (`load_config`);
    `command` is the download command the fixes name (with the caller's --config / --set)."""
    download = cfg["download"]
    root = Path(download["root"])
    authors = set(cfg["convert"]["authors"])
    rows = []
    for name, splits in needed_splits(cfg).items():
        if name in DEMO_MEDIA:
            rows.append(demo_row(root, name, list(download["demo"]["splits"]), command))
        else:
            rows.append(dataset_row(root, name, splits, command, authors=name in authors,
                                    listed=name in download["datasets"]))  # fmt: skip
    if download["source"] == "hub":
        rows += [model_row(root, name, command, listed=True) for name in download["pretrained"]]
    return rows


def needed_splits(cfg: dict[str, Any]) -> dict[str, list[str]]:
    """dataset -> the splits the recipe converts (those the dataset has; all of them if it has
    none of convert.splits) or evaluates. Split names are the pipeline's (`train`)."""
    needs: dict[str, list[str]] = {}
    for name in cfg["convert"]["datasets"]:
        ds = DATASETS.get(name)
        splits = cfg["convert"]["splits"]
        needs[name] = (
            splits if ds is None else [s for s in splits if ds.has(s)] or list(ds.splits)
        )
    for name in cfg["eval"]["benchmarks"]:
        bench = benchmark(name)
        needs[bench.dataset] = list(
            dict.fromkeys(needs.get(bench.dataset, []) + list(bench.splits))
        )
    return needs


def dataset_row(
    root: Path, name: str, splits: list[str], command: str = DOWNLOAD, *, authors: bool = False,
    listed: bool = True, count_media: bool = True,
) -> Row:  # fmt: skip
    """The state of one catalog dataset for `splits`; `authors`: it comes from the authors'
    JSON; `listed`: it is in download.datasets (else the fix says to add it); without
    `count_media` the media folder is only checked for being non-empty."""
    ds = DATASETS.get(name)
    if ds is None:
        return Row("dataset", name, "missing", 0, 0,
                   fix=f"{name!r} is not in ground.common.catalog: known {sorted(DATASETS)}")  # fmt: skip
    mine = [name] if authors else []
    per_split = {s: raw_input(str(root), name, s, mine) for s in splits}
    expected = list(dict.fromkeys(f for files in per_split.values() for f in files))
    missing = [f for f in expected if not Path(f).exists()]
    from_authors = f"{root}/raw/{AUTHORS_DIR}/"
    fixes = [command] if any(f.startswith(from_authors) for f in missing) else []
    lacking = [s for s, files in per_split.items()
               if any(f in missing and not f.startswith(from_authors) for f in files)]  # fmt: skip
    if lacking:
        fixes.append(download_fix(ds, command, listed) if ds.hub else manual_text(ds, root, lacking))
    media = root / "media" / ds.media
    media_files = count_files(media, None if count_media else 1)
    if media_files == 0:
        fetched = ds.hub is not None and ds.hub.archives
        fixes.append(
            download_fix(ds, command, listed) if fetched else manual_text(ds, root, splits)
        )
    status = _status(len(missing), len(expected), media_files)
    return Row("dataset", name, status, len(expected) - len(missing), len(expected), missing,
               str(media), media_files, "\n".join(dict.fromkeys(f for f in fixes if f)))  # fmt: skip


def demo_row(root: Path, name: str, splits: list[str], command: str = DOWNLOAD) -> Row:
    """A synthetic dataset of the demo recipe: raw/<name>/<split>.jsonl and its media folder."""
    expected = [f"raw/{name}/{s}.jsonl" for s in splits]
    missing = [f"{root}/{rel}" for rel in expected if not (root / rel).is_file()]
    media = root / "media" / DEMO_MEDIA[name]
    media_files = count_files(media)
    status = _status(len(missing), len(expected), media_files)
    fix = "" if status == "present" else f"{command}  (generates the synthetic corpus)"
    return Row("dataset", name, status, len(expected) - len(missing), len(expected), missing,
               str(media), media_files, fix)  # fmt: skip


def model_row(root: Path, name: str, command: str = DOWNLOAD, *, listed: bool = True) -> Row:
    """A base model folder models/<name>/: a config.json and at least one weight file."""
    folder = root / "models" / name
    files = [p for p in folder.rglob("*") if p.is_file()] if folder.is_dir() else []
    missing = [] if (folder / "config.json").is_file() else [f"{folder}/config.json"]
    if not any(p.name.endswith(WEIGHTS) for p in files):
        missing.append(f"{folder}/*{{{','.join(WEIGHTS)}}}")
    model = MODELS.get(name)
    if not missing or model is None:
        fix = (
            "" if not missing else f"{name!r} is not in ground.common.catalog: known {sorted(MODELS)}"
        )
    elif model.hub is not None:
        fix = command if listed else f"add {name} to download.pretrained, then: {command}"
    else:
        fix = model.manual.format(root=root, name=name)
    status = "present" if not missing else "missing" if not files else "partial"
    return Row("model", name, status, 2 - len(missing), 2, missing, str(folder), len(files), fix)


def download_fix(ds: Dataset, command: str, listed: bool) -> str:
    """The download command, after adding the dataset to the recipe if it is not listed."""
    if listed:
        return command
    pin = f" (and pin download.revisions[{ds.hub.repo!r}])" if ds.hub is not None else ""
    return f"add {ds.name} to download.datasets{pin}, then: {command}"


def manual_text(ds: Dataset, root: Path, splits: list[str]) -> str:
    """The dataset's `manual` instructions for each split, by its upstream name (identical ones
    once)."""
    published = [ds.published(s) for s in splits] or ["{split}"]
    texts = [ds.manual.format(root=root, name=ds.name, split=s) for s in published]
    return "\n".join(dict.fromkeys(texts))


def count_files(folder: Path, stop_at: int | None = None) -> int:
    """Files under `folder` (0 if it does not exist), not counting extraction markers; the
    walk stops once `stop_at` are found (a media folder may hold millions)."""
    count = 0
    for _, _, files in os.walk(folder):
        count += sum(1 for f in files if not f.startswith(".extracted-"))
        if stop_at is not None and count >= stop_at:
            break
    return count


def _status(missing: int, expected: int, media_files: int) -> str:
    if missing == 0 and media_files > 0:
        return "present"
    if missing == expected and media_files == 0:
        return "missing"
    return "partial"
