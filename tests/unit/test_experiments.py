"""Experiments' working folders (ground.workflow.experiments): what a new one shares, sweeps,
and which recipe keys tell experiments apart. Real files and links; nothing is stubbed."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import pytest

from ground.workflow import experiments


def record(root: Path, output: str, incomplete: bool = False) -> Path:
    """A Snakemake metadata record for `output` (its file name is the path in urlsafe base64,
    cut into `@`-prefixed folders of 254 characters when longer than a file name)."""
    encoded = base64.urlsafe_b64encode(output.encode()).decode()
    chunks = [encoded[i : i + 254] for i in range(0, len(encoded), 254)]
    parts = ["@" + c for c in chunks[:-1]] + [chunks[-1]]
    path = root.joinpath(".snakemake", "metadata", *parts)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text('{"params": "x"}')
    if incomplete:
        marker = root.joinpath(".snakemake", "incomplete", *parts)
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.touch()
    return path


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_mirror_links_finished_outputs_with_their_records_and_nothing_else(tmp_path):
    source, target = tmp_path / "project", tmp_path / "project/experiments/b"
    converted = write(source / "results/convert/a/train.jsonl", "records")
    model = write(source / "results/train/stage1/model/weights.bin", "weights")
    (model.parent / ".snakemake_timestamp").touch()
    write(source / "results/ground.duckdb", "the run store")  # not an output: stays the project's
    write(source / "results/train/stage2/model/partial.bin", "half")
    long_name = "results/" + "/".join(["d" * 60] * 5) + "/f.json"  # its record name is cut in two
    write(source / long_name, "long")
    for output in ("results/convert/a/train.jsonl", "results/train/stage1/model", long_name):
        record(source, output)
    record(source, "results/train/stage2/model", incomplete=True)
    record(source, "results/gone.json")  # recorded, since deleted
    outside = write(tmp_path / "shared/lock.json", "{}")
    record(source, str(outside))
    write(target / "results/convert/a/train.jsonl.keep", "")

    assert experiments.mirror(source, target) == 3
    here = target / "results/convert/a/train.jsonl"
    assert here.stat().st_ino == converted.stat().st_ino and not here.is_symlink()
    assert (target / "results/train/stage1/model/weights.bin").stat().st_ino == model.stat().st_ino
    assert (target / "results/train/stage1/model/.snakemake_timestamp").is_file()
    assert (target / long_name).read_text() == "long"
    assert not (target / "results/ground.duckdb").exists()
    assert not (target / "results/train/stage2").exists() and not (target / "results/gone.json").exists()
    copied = sorted(p.name for p in (target / ".snakemake/metadata").rglob("*") if p.is_file())
    assert len(copied) == 4  # the three linked outputs and the absolute one
    # a rerun job removes its outputs first: that removes the link, not the other folder's file
    here.unlink()
    assert converted.read_text() == "records"


def test_mirror_keeps_what_the_target_already_has(tmp_path):
    source, target = tmp_path / "a", tmp_path / "b"
    write(source / "results/x.json", "theirs")
    record(source, "results/x.json")
    write(target / "results/x.json", "mine")
    assert experiments.mirror(source, target) == 0
    assert (target / "results/x.json").read_text() == "mine"


def test_share_stores_points_relative_stores_at_the_project(tmp_path):
    project, target = tmp_path, tmp_path / "experiments/b"
    experiments.share_stores(project, target, ["cache/features", "/abs/store"])
    assert os.path.realpath(target / "cache/features") == str((project / "cache/features").resolve())
    assert not Path("/abs/store").exists()


def test_workdir_and_names(tmp_path):
    assert experiments.workdir(tmp_path, "default") == tmp_path
    assert experiments.workdir(tmp_path, "lr-5e-5") == tmp_path / "experiments/lr-5e-5"
    for bad in ("../x", "a/b", "", ".hidden", "-x"):
        with pytest.raises(ValueError, match="experiment name"):
            experiments.workdir(tmp_path, bad)
    (tmp_path / "experiments/b/.snakemake").mkdir(parents=True)
    (tmp_path / "experiments/not-run").mkdir()
    assert experiments.names(tmp_path) == ["default", "b"]


def test_sweep_names_one_experiment_per_value():
    assert experiments.sweep("lr", "train.stage2.lr=1e-5, 2e-5,5e-5") == [
        ("lr-1e-5", "train.stage2.lr=1e-5"), ("lr-2e-5", "train.stage2.lr=2e-5"),
        ("lr-5e-5", "train.stage2.lr=5e-5"),
    ]  # fmt: skip
    coords = experiments.sweep("c", "convert.coords=float3,bins:100")
    assert coords == [("c-float3", "convert.coords=float3"), ("c-bins_100", "convert.coords=bins:100")]
    nested = experiments.sweep("s", "download.demo.splits={train: 6, val: 2},{train: 8, val: 2}")
    assert [o for _, o in nested] == ["download.demo.splits={train: 6, val: 2}", "download.demo.splits={train: 8, val: 2}"]
    for bad in ("train.lr", "=1,2", "train.lr=1", "train.lr=1,,2", "x=a b,a_b"):
        with pytest.raises(ValueError, match="--sweep"):
            experiments.sweep("n", bad)


def test_differing_keys_of_recipes():
    a = {"convert": {"coords": "float3", "seed": 0}, "train": {"stage2": {"lr": 2e-5}}, "tags": [1]}
    b = {"convert": {"coords": "bins:100", "seed": 0}, "train": {"stage2": {"lr": 2e-5}}, "tags": [1]}
    c = {"convert": {"coords": "float3", "seed": 0}, "train": {"stage2": {"lr": 5e-5}}, "tags": [1, 2]}
    assert experiments.flatten(a) == {"convert.coords": "float3", "convert.seed": 0, "train.stage2.lr": 2e-5, "tags": [1]}
    assert experiments.differing([a, b]) == ["convert.coords"]
    assert experiments.differing([a, b, c]) == ["convert.coords", "tags", "train.stage2.lr"]
    assert experiments.differing([a, {**a, "new": {"key": 1}}]) == ["new.key"]


def test_a_shared_store_keeps_its_files_and_gets_the_records(tmp_path):
    """A hub download's folder is shared, not linked file by file: its lock (the download
    job's output) is the project's own file, and Snakemake's record of it is copied."""
    project, target = tmp_path / "p", tmp_path / "p/experiments/b"
    lock = write(project / "resources/hub/download.lock.json", "{}")
    record(project, "resources/hub/download.lock.json")
    experiments.share_stores(project, target, ["resources/hub"])
    assert experiments.mirror(project, target) == 0
    assert os.path.samefile(target / "resources/hub/download.lock.json", lock)
    assert len([p for p in (target / ".snakemake/metadata").rglob("*") if p.is_file()]) == 1
