"""`ground data check`: what a recipe needs under download.root, what is missing, how to get it.

.venv/bin/pytest -q tests/unit/test_data_check.py

Layouts are built by hand in tmp_path; nothing is downloaded.
"""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from ground_cli.main import app
from typer.testing import CliRunner

from ground.common.config import validate
from ground.download.check import check_data

runner = CliRunner()
PINS = {"liuhaotian/LLaVA-Pretrain": "0" * 40, "lmsys/vicuna-7b-v1.5": "1" * 40,
        "zwli/GroundingGPT": "2" * 40}  # fmt: skip


def hub_recipe(root: Path) -> dict:
    return {
        "download": {"source": "hub", "root": str(root), "datasets": ["llava_pretrain", "refcoco"],
                     "pretrained": ["vicuna-7b-v1.5", "imagebind-huge-audio"], "revisions": PINS},
        "convert": {"datasets": ["llava_pretrain", "refcoco", "didemo", "clotho"],
                    "splits": ["train"], "authors": ["didemo"]},
        "mixture": {"stage1": {"llava_pretrain": 1.0}, "stage2": {"refcoco": 1.0, "didemo": 1.0},
                    "stage3": {"clotho": 1.0}},
        "eval": {"benchmarks": ["charades"]},
    }  # fmt: skip


def touch(path: Path, text: str = "x") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def partial_layout(root: Path) -> None:
    touch(root / "raw/llava_pretrain/blip_laion_cc_sbu_558k.json", "[]")  # media not extracted
    touch(root / "raw/refcoco/refs(unc).p")  # instances.json missing
    touch(root / "media/coco/train2014/COCO_train2014_000000581857.jpg")
    touch(root / "media/didemo/v1.mp4")  # the authors' JSON missing
    touch(root / "raw/clotho/clotho_captions_development.csv")
    touch(root / "media/clotho/development/a.wav")  # complete
    touch(root / "models/vicuna-7b-v1.5/config.json", "{}")
    touch(root / "models/vicuna-7b-v1.5/model.safetensors")


def test_partial_layout_names_exactly_what_is_missing_and_the_fix(tmp_path):
    partial_layout(tmp_path)
    rows = {row.name: row for row in check_data(validate(hub_recipe(tmp_path)), "DL")}
    assert list(rows) == ["llava_pretrain", "refcoco", "didemo", "clotho", "charades_sta",
                          "vicuna-7b-v1.5", "imagebind-huge-audio"]  # fmt: skip

    llava = rows["llava_pretrain"]
    assert (llava.status, llava.missing, llava.media_files) == ("partial", [], 0)
    assert llava.fix == "DL"  # images.zip comes with the download

    refcoco = rows["refcoco"]
    assert refcoco.status == "partial" and (refcoco.files_present, refcoco.files_expected) == (1, 2)
    assert refcoco.missing == [f"{tmp_path}/raw/refcoco/instances.json"]
    assert f"put refs(unc).p / refs(umd).p and instances.json of the dataset in {tmp_path}/raw/refcoco/" in refcoco.fix

    didemo = rows["didemo"]  # convert.authors: the train split comes from the authors' JSON
    assert didemo.missing == [f"{tmp_path}/raw/authors/Stage2/didemo.json"] and didemo.fix == "DL"

    assert rows["clotho"].status == "present" and rows["clotho"].fix == ""
    charades = rows["charades_sta"]  # evaluated only: its test split
    assert charades.status == "missing"
    assert charades.missing == [f"{tmp_path}/raw/charades_sta/charades_sta_test.txt",
                                f"{tmp_path}/raw/charades_sta/Charades_v1_test.csv"]  # fmt: skip
    assert "charades_sta_test.txt" in charades.fix and f"{tmp_path}/raw/charades_sta/" in charades.fix

    assert rows["vicuna-7b-v1.5"].status == "present"
    imagebind = rows["imagebind-huge-audio"]
    assert imagebind.status == "missing"
    assert imagebind.missing[0] == f"{tmp_path}/models/imagebind-huge-audio/config.json"
    assert f"m.save_pretrained('{tmp_path}/models/imagebind-huge-audio')" in imagebind.fix


def test_a_hub_dataset_the_recipe_does_not_download_says_to_add_it(tmp_path):
    raw = hub_recipe(tmp_path)
    raw["download"]["datasets"] = ["refcoco"]
    rows = {row.name: row for row in check_data(validate(raw), "DL")}
    assert rows["llava_pretrain"].fix == (
        "add llava_pretrain to download.datasets (and pin "
        "download.revisions['liuhaotian/LLaVA-Pretrain']), then: DL"
    )


def test_demo_recipe_rows_say_the_download_step_generates_them(tmp_path):
    cfg = validate({"download": {"root": str(tmp_path)}})
    for split in ("train", "val", "test"):
        touch(tmp_path / f"raw/demo_image/{split}.jsonl")
    touch(tmp_path / "media/images/train_00000.png")
    rows = {row.name: row for row in check_data(cfg)}
    assert set(rows) == {"demo_image", "demo_video", "demo_audio"}
    assert rows["demo_image"].status == "present"
    assert rows["demo_video"].status == "missing"
    assert rows["demo_video"].missing[0] == f"{tmp_path}/raw/demo_video/train.jsonl"
    assert "ground run --until download" in rows["demo_video"].fix


def write_recipe(tmp_path: Path, raw: dict) -> Path:
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_cli_prints_missing_files_and_fixes_and_exits_1(tmp_path):
    root = tmp_path / "root"
    partial_layout(root)
    recipe = write_recipe(tmp_path, hub_recipe(root))
    result = runner.invoke(app, ["data", "check", "--config", str(recipe), "--set", "convert.seed=1"])
    assert result.exit_code == 1, result.output
    assert f"  missing: {root}/raw/refcoco/instances.json" in result.output
    assert f"  missing: {root}/raw/authors/Stage2/didemo.json" in result.output
    command = f"ground run --until download --config {recipe} --set convert.seed=1"
    assert f"  fix: {command}" in result.output
    assert f"  empty: {root}/media/llava_pretrain/" in result.output
    assert f"{root}/raw/clotho" not in result.output  # present: nothing to say

    as_json = runner.invoke(app, ["data", "check", "--recipe", str(recipe), "--json"])
    assert as_json.exit_code == 1
    rows = {row["name"]: row for row in json.loads(as_json.stdout)}
    assert rows["refcoco"]["missing"] == [f"{root}/raw/refcoco/instances.json"]
    assert rows["clotho"]["status"] == "present"


def test_cli_exits_0_when_everything_is_there(tmp_path):
    root = tmp_path / "root"
    for name, media in (("demo_image", "images"), ("demo_video", "videos"), ("demo_audio", "audio")):
        touch(root / f"raw/{name}/train.jsonl")
        touch(root / f"media/{media}/train_00000.bin")
    recipe = write_recipe(tmp_path, {"download": {"root": str(root), "demo": {"splits": {"train": 4}}},
                                     "convert": {"splits": ["train"]}})  # fmt: skip
    result = runner.invoke(app, ["data", "check", "-c", str(recipe)])
    assert result.exit_code == 0, result.output
    assert "present" in result.output


def test_cli_bad_recipe_is_a_one_line_error(tmp_path):
    result = runner.invoke(app, ["data", "check", "--config", str(tmp_path / "nope.yaml")])
    assert result.exit_code == 2 and "nope.yaml" in result.output
