"""Dry-run plans of the real Snakefile: which jobs exist, what `--until` cuts, lint is clean."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def project(tmp_path) -> Path:
    for name in ("Snakefile", "config.yaml"):
        shutil.copy(REPO / name, tmp_path / name)
    shutil.copytree(REPO / "rules", tmp_path / "rules")
    return tmp_path


def ground(project: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ground_cli.main", *args],
        cwd=project, env=os.environ | {"COLUMNS": "200"}, capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def test_fresh_project_plans_every_job_with_missing_outputs(project):
    proc = ground(project, "status", "--json")
    assert proc.returncode == 0, proc.stderr
    jobs = json.loads(proc.stdout)["steps"]
    counts: dict[str, int] = {}
    for job in jobs:
        counts[job["step"]] = counts.get(job["step"], 0) + 1
        assert job["state"] == "will-run"
        assert job["reasons"][0]["kind"] == "missing-output"
    # features: per modality one split checkpoint, features.shards (2) encoder jobs, one gather
    assert counts == {"download": 1, "convert": 9, "generate": 1, "mixture": 3, "features": 12,
                      "stage1": 1, "stage2": 1, "stage3": 1, "eval": 3}  # fmt: skip
    order = ["download", "convert", "generate", "mixture", "features", "stage1", "stage2", "stage3",
             "eval"]  # fmt: skip
    assert [j["step"] for j in jobs] == sorted((j["step"] for j in jobs), key=order.index)


def test_until_convert_ends_with_the_stage_mixtures(project):
    proc = ground(project, "run", "--until", "convert", "--dry-run")
    assert proc.returncode == 0, proc.stderr
    planned = [line for line in proc.stderr.splitlines() if line.startswith("would run")]
    rules = {line.split()[2].split("[")[0].rstrip(":") for line in planned}
    # stage 3's mixture holds the generated dialogues, so generation runs; features do not
    assert rules == {"download_data", "convert_dataset", "generate_instructions", "assemble_mixture"}
    assert not (project / "results").exists() and not (project / "resources").exists()


def test_convert_datasets_limit_the_plan(project):
    only_video = ["--set", "convert.datasets=[demo_video]", "--set", "generate.sources=[demo_video]",
                  "--set", "mixture.stage1={demo_video/video_caption: 1}",
                  "--set", "mixture.stage2={demo_video/temporal_grounding: 1}",
                  "--set", "eval.benchmarks=[demo_tg]"]  # fmt: skip
    proc = ground(project, "status", "--json", *only_video)
    jobs = json.loads(proc.stdout)["steps"]
    converted = {j["wildcards"]["dataset"] for j in jobs if j["step"] == "convert"}
    assert converted == {"demo_video"}
    # a benchmark brings in the data it scores, even when training does not use that dataset
    proc = ground(project, "status", "--json", *only_video[:8], "--set", "eval.benchmarks=[demo_rec]")
    jobs = json.loads(proc.stdout)["steps"]
    converted = {(j["wildcards"]["dataset"], j["wildcards"]["split"]) for j in jobs if j["step"] == "convert"}
    assert ("demo_image", "test") in converted and ("demo_image", "train") not in converted


def test_snakemake_lint_is_clean():
    proc = subprocess.run(
        [sys.executable, "-m", "snakemake", "--lint", "--cores", "1"],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_profile_is_read_and_unknown_profile_keys_are_refused(project, tmp_path_factory):
    profile = tmp_path_factory.mktemp("profile")
    (profile / "config.v8+.yaml").write_text("jobs: 3\ndefault-resources: [mem_mb=1000]\nretries: 1\n")
    proc = ground(project, "run", "--dry-run", "--until", "download", "--profile", str(profile))
    assert proc.returncode == 0, proc.stderr
    assert "would run download_data" in proc.stderr
    (profile / "config.v8+.yaml").write_text("jobs: 3\nslurm-account: x\n")
    proc = ground(project, "run", "--dry-run", "--profile", str(profile))
    assert proc.returncode == 2
    assert "unknown profile key 'slurm-account'" in proc.stderr
    assert str(profile / "config.v8+.yaml") in proc.stderr


def test_7b_recipe_plans_the_complete_dag(project):
    shutil.copytree(REPO / "configs", project / "configs")
    proc = ground(project, "run", "--config", "configs/groundinggpt-7b.yaml", "--dry-run")
    assert proc.returncode == 0, proc.stderr
    planned = [line.split()[2].rstrip(":") for line in proc.stderr.splitlines() if line.startswith("would run")]
    rules = [p.split("[")[0] for p in planned]
    # 18 training sources, plus the evaluation splits: Charades-STA test, RefCOCO/+ val/testA/testB,
    # RefCOCOg val/test, VGGSS test (their train splits are among the 18)
    assert rules.count("convert_dataset") == 18 + 1 + 3 + 3 + 2 + 1
    assert rules.count("assemble_mixture") == 3
    assert {p for p in planned if p.startswith("evaluate_benchmark")} == {
        f"evaluate_benchmark[benchmark={b}]" for b in ("charades", "refcoco", "refcoco+", "refcocog", "vggss")
    }
    assert {p for p in planned if p.startswith("train_stage")} == {
        f"train_stage[stage={n}]" for n in (1, 2, 3)
    }
    assert {"download_data", "generate_instructions", "cache_features"} <= set(rules)
    # features.shards: 64 encoder jobs per modality, each with its own slice of the media
    assert rules.count("cache_features") == 3 * 64
    assert rules.count("split_media") == rules.count("gather_features") == 3


def test_until_features_ends_with_the_gathered_indexes(project):
    proc = ground(project, "status", "--json", "--until", "features")
    assert proc.returncode == 0, proc.stderr
    jobs = json.loads(proc.stdout)["steps"]
    features = {j["job"] for j in jobs if j["step"] == "features"}
    assert features == {
        *(f"split_media[modality={m}]" for m in ("audio", "image", "video")),
        *(f"cache_features[modality={m},shard={n}]" for m in ("audio", "image", "video") for n in (0, 1)),
        *(f"gather_features[modality={m}]" for m in ("audio", "image", "video")),
    }
    assert not {j["step"] for j in jobs} & {"stage1", "stage2", "stage3", "eval"}
    one = ground(project, "status", "--json", "--until", "features", "--set", "features.shards=1")
    assert sum(j["rule"] == "cache_features" for j in json.loads(one.stdout)["steps"]) == 3
