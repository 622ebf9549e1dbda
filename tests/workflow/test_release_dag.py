"""Dry-run plan of the release recipe at full size: download -> import -> features -> eval, no training."""

from __future__ import annotations

import shutil
from collections import Counter

import pytest
from test_dag import REPO, ground


@pytest.fixture
def project(tmp_path):
    for name in ("Snakefile", "config.yaml"):
        shutil.copy(REPO / name, tmp_path / name)
    for name in ("rules", "configs"):
        shutil.copytree(REPO / name, tmp_path / name)
    return tmp_path


def planned(proc) -> Counter:
    lines = [line for line in proc.stderr.splitlines() if line.startswith("would run")]
    return Counter(line.split()[2].split("[")[0].rstrip(":") for line in lines)


def test_release_recipe_plans_import_features_and_eval_without_training(project):
    proc = ground(project, "run", "--config", "configs/groundinggpt-7b-release.yaml", "--dry-run")
    assert proc.returncode == 0, proc.stderr
    rules = planned(proc)
    assert rules["download_data"] == rules["import_release"] == 1
    assert rules["evaluate_benchmark"] == 5  # charades, refcoco, refcoco+, refcocog, vggss
    assert rules["convert_dataset"] == 10  # their evaluation splits only
    assert rules["gather_features"] == 3
    assert "train_stage" not in rules and "assemble_mixture" not in rules
    # the features of video and audio wait for the imported encoders; the image's for none
    text = proc.stderr.replace("\n", " ")
    assert "cache_features[modality=video" in text and "results/import/release" in text
    assert not (project / "results").exists()


def test_until_import_stops_after_the_import(project):
    proc = ground(project, "run", "--config", "configs/groundinggpt-7b-release.yaml", "--until", "import",
                  "--dry-run")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert set(planned(proc)) == {"download_data", "import_release"}


def test_the_7b_recipe_still_scores_stage_3(project):
    proc = ground(project, "run", "--config", "configs/groundinggpt-7b.yaml", "--dry-run")
    assert proc.returncode == 0, proc.stderr
    rules = planned(proc)
    assert "import_release" not in rules and rules["train_stage"] == 3
