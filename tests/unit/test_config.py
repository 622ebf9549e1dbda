"""The recipe schema: shipped recipes parse, typos and bad values fail with the dotted key."""

from pathlib import Path

import pytest

from ground.common.config import ConfigError, load_config
from ground.tracking.db import config_hash

ROOT = Path(__file__).resolve().parents[2]


def test_shipped_recipe_parses_and_matches_schema_defaults():
    cfg = load_config(ROOT / "config.yaml")
    assert cfg["recipe"] == "demo"
    assert set(cfg) == {"recipe", "download", "convert", "generate", "features", "train", "mixture", "eval",
                        "release", "tracking"}
    assert {"stage1", "stage2", "stage3", "llm", "launcher"} <= set(cfg["train"])
    assert cfg["tracking"]["database"] == "results/ground.duckdb"
    assert isinstance(cfg["convert"]["seed"], int)


def test_every_shipped_recipe_parses():
    recipes = [ROOT / "config.yaml", *sorted((ROOT / "configs").glob("*.yaml"))]
    assert len(recipes) >= 2
    for path in recipes:
        cfg = load_config(path)
        assert cfg["recipe"] == path.stem if path.parent.name == "configs" else "demo"


def test_7b_recipe_has_the_papers_hyper_parameters():
    train = load_config(ROOT / "configs/groundinggpt-7b.yaml")["train"]
    assert [train[f"stage{n}"]["lr"] for n in (1, 2, 3)] == [1e-3, 2e-5, 2e-5]
    gpus = [train[f"stage{n}"]["resources"]["gpus"] for n in (1, 2, 3)]
    per_step = [train[f"stage{n}"]["batch_size"] * train[f"stage{n}"]["grad_accum"] for n in (1, 2, 3)]
    assert gpus == [8, 8, 8] and per_step == [64, 32, 16]  # 64x1, 16x2, 8x2 per GPU
    assert train["precision"] == "bf16" and train["zero_stage"] == 2 and train["max_length"] == 2048


def test_stage_values_are_checked():
    with pytest.raises(ConfigError, match="lr, batch_size"):
        load_config(ROOT / "config.yaml", ["train.stage1.lr=-1"])


def test_override_is_parsed_as_yaml_and_changes_the_hash():
    base = load_config(ROOT / "config.yaml")
    changed = load_config(ROOT / "config.yaml", ["convert.seed=3", "train.stage2.lr=1e-4"])
    assert changed["convert"]["seed"] == 3
    assert changed["train"]["stage2"]["lr"] == pytest.approx(1e-4)
    assert config_hash(base) != config_hash(changed)
    mapping = load_config(ROOT / "config.yaml", ["download.demo.splits={train: 5, test: 2}"])
    assert mapping["download"]["demo"]["splits"] == {"train": 5, "test": 2}


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("convert.sed=3", "unknown config key 'convert.sed'"),
        ("convert.seed=abc", "convert.seed: expected an integer"),
        ("features.on_error=maybe", "features.on_error: 'maybe' is not one of"),
        ("train.stage2.lr=fast", "train.stage2.lr: expected float"),
        ("convert.datasets=demo_image", "convert.datasets: expected a list"),
        ("nosuchsection.x=1", "unknown config key 'nosuchsection'"),
        ("convert.seed", "expected dotted.key=value"),
    ],
)
def test_bad_overrides_name_the_key(override, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        load_config(ROOT / "config.yaml", [override])


def test_unreadable_recipe_names_the_file(tmp_path):
    bad = tmp_path / "r.yaml"
    bad.write_text("convert: [unclosed")
    with pytest.raises(ConfigError, match="r.yaml"):
        load_config(bad)
