"""The download step: bring raw annotations, media and base models under `download.root`.

    python -m ground.download.run --config config.yaml
    python -m ground.download.run --config configs/groundinggpt-7b.yaml --set download.mirror=/m

For the demo recipe (`download.source: synthetic`) nothing is fetched: the corpus is generated
(seeded, deterministic) and the tiny "pretrained" parts are created with fixed seeds, saved in
the same Hugging Face format the 7B recipe's downloads have.

For `download.source: hub` (`ground.download.hub`: the hub or `download.mirror`, pinned, checksummed,
recorded in `<root>/download.lock.json`) the layout under the root is:

    raw/<dataset>/<path in repo>    every file of the dataset's repo matching its patterns
    raw/<dataset>/<annotation>      an annotation file (`Dataset.annotations`) found in a
                                    sub-folder of the repo is linked here, by its base name,
                                    where the converter reads it (WavCaps'
                                    json_files/AudioSet_SL/as_final.json -> raw/wavcaps/as_final.json)
    media/<Dataset.media>/          archives matching `HubFiles.archives`, extracted (safely,
                                    once: ground.download.archive); the archives stay in raw/<dataset>/
    raw/authors/<path in repo>      the authors' files asked for (convert.authors)
    models/<model>/                 base models

What the hub does not carry is not an error here: the summary lists it with the catalog's
`manual` instructions. A promised annotation file (`promised`: what the Snakefile expects) that
is neither fetched nor placed by hand stops the step with the same fix `ground data check` gives.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from collections.abc import Sequence
from pathlib import Path, PurePosixPath
from typing import Any

from ground.demo.corpus import generate_demo_corpus
from ground.demo.encoders import create_tiny_encoders
from ground.demo.llm import create_language_parts
from ground.demo.pretrain import pretrain_parts


def download(
    cfg: dict[str, Any], *, promised: Sequence[str] | None = None,
    authors_files: Sequence[str] = (),
) -> dict[str, Any]:  # fmt: skip
    """Run the download step for the `download` config section; returns a summary.

    `promised`: the annotation files the convert step will read (`layout.raw_files`);
    `authors_files`: files of the authors' repo to fetch (`catalog.authors_files(convert.authors)`).
    Both only matter for `source: hub`."""
    if cfg["source"] == "synthetic":
        return download_demo(Path(cfg["root"]), seed=cfg["seed"], corpus=cfg["demo"],
                             models=cfg["models"])  # fmt: skip
    return download_hub(cfg, promised=promised, authors_files=authors_files)


def download_hub(
    cfg: dict[str, Any], *, promised: Sequence[str] | None = None,
    authors_files: Sequence[str] = (), endpoint: str | None = None,
) -> dict[str, Any]:  # fmt: skip
    """Fetch the recipe's hub files, link annotation files, extract archives, check promises."""
    from ground.download.hub import fetch, requests_for

    started = time.perf_counter()
    root = Path(cfg["root"])
    for folder in ("raw", "media", "models"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    results = fetch(requests_for(cfg, authors_files), root, mirror=cfg["mirror"],
                    workers=cfg["workers"], endpoint=endpoint)  # fmt: skip
    files = {r.repo: list(r.files) for r in results}
    linked = place_annotations(root, cfg["datasets"], files)
    archives = extract_archives(root, cfg["datasets"], files)
    check_promised(root, promised or [], cfg["datasets"])
    repos = {r.repo: r.summary() for r in results}
    return {
        "source": f"mirror {cfg['mirror']}" if cfg["mirror"] else "hub",
        "files_fetched": sum(r["fetched"] for r in repos.values()),
        "files_skipped": sum(r["skipped"] for r in repos.values()),
        "bytes_fetched": sum(r["bytes"] for r in repos.values()),
        "repos": repos,
        "linked": linked,
        "archives": archives,
        "manual": pending_manual(root, cfg, promised),
        "seconds": round(time.perf_counter() - started, 2),
    }


def place_annotations(root: Path, datasets: list[str], files: dict[str, list[str]]) -> list[str]:
    """Link each annotation file found in a sub-folder of its repo to raw/<dataset>/<name>;
    the links made (or refreshed). Two repo files with the same name are an error."""
    from ground.common.catalog import dataset

    linked = []
    for name in datasets:
        ds = dataset(name)
        if ds.hub is None:
            continue
        wanted = {f for s in ds.splits for f in ds.files(s)}
        for annotation in sorted(wanted):
            found = [p for p in files.get(ds.hub.repo, []) if PurePosixPath(p).name == annotation]
            if len(found) > 1:
                raise ValueError(f"{ds.hub.repo}: {found} all hold {annotation}; "
                                 f"raw/{name}/{annotation} would be ambiguous")  # fmt: skip
            if found and found[0] != annotation:
                raw = root / "raw" / name
                if _link(raw / found[0], raw / annotation):
                    linked.append(f"raw/{name}/{annotation}")
    return linked


def _link(src: Path, dest: Path) -> bool:
    """Hard-link `src` at `dest` (a copy where links are refused); False if already so."""
    if dest.exists() and os.path.samefile(src, dest):
        return False
    tmp = dest.with_name(f".{dest.name}.link")
    tmp.unlink(missing_ok=True)
    try:
        os.link(src, tmp)
    except OSError:
        shutil.copy2(src, tmp)
    os.replace(tmp, dest)
    return True


def extract_archives(
    root: Path, datasets: list[str], files: dict[str, list[str]]
) -> dict[str, Any]:
    """Extract each fetched archive of a dataset into media/<media>/: files written per archive
    (0 when its marker says it was extracted before)."""
    from huggingface_hub.utils import filter_repo_objects

    from ground.common.catalog import dataset
    from ground.download.archive import extract

    done = {}
    for name in datasets:
        ds = dataset(name)
        if ds.hub is None or not ds.hub.archives:
            continue
        fetched = files.get(ds.hub.repo, [])
        for path in filter_repo_objects(fetched, allow_patterns=list(ds.hub.archives)):
            written = extract(root / "raw" / name / path, root / "media" / ds.media)
            done[f"raw/{name}/{path}"] = len(written)
    return done


def check_promised(root: Path, promised: Sequence[str], listed: Sequence[str] = ()) -> None:
    """FileNotFoundError naming every promised file that is missing, with its fix; `listed`:
    the datasets the download fetches (download.datasets)."""
    from ground.common.catalog import AUTHORS_DIR, AUTHORS_REPO, DATASETS, dataset
    from ground.download.check import manual_text

    missing = [p for p in promised if not Path(p).exists()]
    if not missing:
        return
    lines = [f"download: {len(missing)} promised annotation file(s) missing "
             f"(`ground data check` lists all the recipe needs):"]  # fmt: skip
    by_dataset: dict[str, list[str]] = {}
    for path in missing:
        rel = Path(path).relative_to(root / "raw") if Path(path).is_relative_to(root / "raw") else None
        by_dataset.setdefault(rel.parts[0] if rel else "", []).append(path)
    for name, paths in by_dataset.items():
        lines.append(f"  {name or 'elsewhere'}: {', '.join(paths)}")
        if name == AUTHORS_DIR:
            fix = f"{AUTHORS_REPO} holds no such file (catalog.Dataset.authors)"
        elif name not in DATASETS:
            continue
        elif (ds := dataset(name)).hub is None:
            fix = manual_text(ds, root, _splits_of(ds, root, paths))
        elif name in listed:
            fix = f"its hub repo {ds.hub.repo} holds no such file: check its HubFiles.patterns"
        else:
            fix = f"add {name} to download.datasets (it is on the hub: {ds.hub.repo})"
        lines.append(f"    fix: {fix}")
    raise FileNotFoundError("\n".join(lines))


def _splits_of(ds: Any, root: Path, paths: Sequence[str]) -> list[str]:
    """The splits of `ds` that have one of their annotation files among `paths`."""
    named = {Path(p) for p in paths}
    return [s for s in ds.splits if any(root / "raw" / ds.name / f in named for f in ds.files(s))]


def pending_manual(
    root: Path, cfg: dict[str, Any], promised: Sequence[str] | None
) -> list[dict[str, Any]]:
    """Datasets and models of the `download` section not (fully) there yet that only a person
    can place: each with its state and the catalog's instructions."""
    from ground.common.catalog import MODELS, dataset
    from ground.download.check import dataset_row, model_row

    pending = []
    for name in cfg["datasets"]:
        ds = dataset(name)
        splits = list(ds.splits) if promised is None else _splits_of(ds, root, promised)
        row = dataset_row(root, name, splits or list(ds.splits), count_media=False)
        if row.status != "present" and ds.manual:
            pending.append({"dataset": name, "status": row.status, "missing": row.missing,
                            "media_present": row.media_files > 0, "manual": row.fix})  # fmt: skip
    for name in cfg["pretrained"]:
        row = model_row(root, name)
        if row.status != "present" and MODELS[name].hub is None:
            pending.append({"model": name, "status": row.status, "missing": row.missing,
                            "manual": row.fix})  # fmt: skip
    return pending


def download_demo(root: Path, *, seed: int, corpus: dict, models: dict) -> dict[str, Any]:
    """Generate the synthetic corpus and the tiny models under `root`."""
    started = time.perf_counter()
    summary = generate_demo_corpus(
        root,
        seed=seed,
        splits=corpus["splits"],
        video_seconds=corpus["video_seconds"],
        video_fps=corpus["video_fps"],
        audio_seconds=corpus["audio_seconds"],
        video_events=tuple(corpus["video_events"]),
    )
    model_dir = root / "models"
    parts = create_language_parts(root / "raw", model_dir, seed=seed, sizes=models)
    parts |= create_tiny_encoders(
        model_dir, seed=seed, image_size=models["image_size"], frame_size=models["frame_size"]
    )
    pretrained = pretrain_parts(root, model_dir, seed=seed, steps=models["pretrain"])
    return {
        "corpus": summary,
        "models": {name: str(path) for name, path in parts.items()},
        "pretrained": pretrained,
        "seconds": round(time.perf_counter() - started, 2),
    }


def main() -> None:
    from ground.common.config import load_config

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="config.yaml")
    parser.add_argument("--set", action="append", default=[], dest="overrides")
    args = parser.parse_args()
    cfg = load_config(args.config, args.overrides)
    print(json.dumps(download(cfg["download"], **hub_arguments(cfg)), indent=2))


def hub_arguments(cfg: dict[str, Any]) -> dict[str, Any]:
    """`promised` and `authors_files` of a whole recipe (`python -m`), as the Snakefile derives
    them: the convert step's raw inputs (`layout.raw_files`) and the authors' files."""
    from ground.common.catalog import authors_files
    from ground.download.layout import recipe_raw_files

    if cfg["download"]["source"] != "hub":
        return {}
    authors = authors_files(cfg["convert"]["authors"])
    return {"promised": recipe_raw_files(cfg), "authors_files": authors}


if __name__ == "__main__":
    main()
