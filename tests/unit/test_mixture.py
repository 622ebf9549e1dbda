"""The assemble_mixture step: selectors and weights, alpha replay, determinism, counts."""

import json
from collections import Counter
from pathlib import Path

import pytest

from ground.mixture.run import assemble_mixture, select, stage_mixture, take


def _records(dataset: str, tasks: dict[str, int]) -> list[dict]:
    return [
        {"id": f"{dataset}-{task}-{i}", "dataset": dataset, "task": task, "conversations": []}
        for task, n in tasks.items()
        for i in range(n)
    ]


def _write(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


@pytest.mark.parametrize("alpha, replayed", [(0.0, 0), (0.1, 10), (2.0, 200)])
def test_stage_mixture_adds_alpha_times_the_stage(alpha: float, replayed: int) -> None:
    current = [f"c{i}" for i in range(100)]
    previous = [f"p{i}" for i in range(30)]
    mixed = stage_mixture(current, previous, alpha, seed=3)
    assert len(mixed) == 100 + replayed
    assert sorted(m for m in mixed if m[0] == "c") == sorted(current)
    counts = Counter(m for m in mixed if m[0] == "p")
    assert sum(counts.values()) == replayed
    # Without replacement while previous suffices, then as evenly as possible.
    assert max(counts.values(), default=0) - min(counts.values(), default=0) <= 1
    if replayed >= len(previous):
        assert len(counts) == len(previous)
    assert mixed == stage_mixture(current, previous, alpha, seed=3)
    assert mixed != stage_mixture(current, previous, alpha, seed=4)


def test_stage_mixture_needs_previous_data_when_alpha_asks_for_it() -> None:
    assert stage_mixture(["a"], [], 0.0, seed=0) == ["a"]
    with pytest.raises(ValueError, match="previous"):
        stage_mixture(["a"] * 10, [], 0.5, seed=0)


def test_take_replays_evenly_and_samples_without_replacement() -> None:
    import random

    assert take(5, 5, random.Random(0)) == [0, 1, 2, 3, 4]
    half = take(10, 4, random.Random(0))
    assert len(set(half)) == 4 and half == sorted(half)
    assert Counter(take(3, 7, random.Random(0))).most_common()[-1][1] == 2  # 7 = 2 x 3 + 1


def test_select_by_dataset_task_and_weight_keeps_file_order() -> None:
    image = _records("img", {"caption": 10, "rec": 20})
    audio = _records("aud", {"caption": 8})
    records = [("img", r) for r in image] + [("aud", r) for r in audio]
    chosen, counts = select(records, {"img/rec": 0.5, "aud": 2.0}, seed=1)
    assert counts == {"img/rec": 10, "aud": 16}
    assert all(r["task"] == "rec" for r in chosen if r["dataset"] == "img")
    assert Counter(r["id"] for r in chosen if r["dataset"] == "aud") == {r["id"]: 2 for r in audio}
    positions = [records.index(("img", r)) if r["dataset"] == "img" else 30 for r in chosen]
    assert positions == sorted(positions)
    assert select(records, {"img/rec": 0.5, "aud": 2.0}, seed=1)[0] == chosen
    assert select(records, {"img/rec": 0.5, "aud": 2.0}, seed=2)[0] != chosen
    # `dataset/task` wins over `dataset` for its task; the rest of the dataset goes by `dataset`.
    _, counts = select(records, {"img": 1.0, "img/rec": 0.0}, seed=1)
    assert counts == {"img": 10, "img/rec": 0}


def test_a_selector_matching_nothing_is_an_error() -> None:
    records = [("img", r) for r in _records("img", {"caption": 3})]
    with pytest.raises(ValueError, match=r"\['img/rec'\] match no record"):
        select(records, {"img/rec": 1.0}, seed=0)


def test_assemble_replays_the_previous_stage_and_writes_counts(tmp_path: Path) -> None:
    sources = {
        "img": _write(tmp_path / "img.jsonl", _records("img", {"caption": 40, "rec": 50})),
        "generated": _write(tmp_path / "gen.jsonl", _records("img", {"dialogue": 20})),
    }
    weights = {"stage1": {"img/caption": 1.0}, "stage2": {"img/rec": 1.0}, "stage3": {"generated": 1.0}}
    out, manifest = tmp_path / "stage3.jsonl", tmp_path / "stage3.manifest.json"
    summary = assemble_mixture(3, sources, weights, 0.5, 0, out, manifest)
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert summary["by_source"] == {"generated": 20}
    assert summary["replayed"] == 10 and summary["replayed_by_task"] == {"rec": 10}
    assert Counter(r["task"] for r in lines) == {"dialogue": 20, "rec": 10}
    assert json.loads(manifest.read_text())["records"] == 30
    first = out.read_bytes()
    assemble_mixture(3, sources, weights, 0.5, 0, out, manifest)
    assert out.read_bytes() == first


def test_a_malformed_source_line_is_named(tmp_path: Path) -> None:
    bad = tmp_path / "img.jsonl"
    bad.write_text(json.dumps({"id": "a", "task": "rec"}) + "\n")
    weights = {"stage1": {"img": 1.0}}
    with pytest.raises(ValueError, match=f"{bad}:1: expected an object with id, task"):
        assemble_mixture(1, {"img": bad}, weights, 0.0, 0, tmp_path / "o", tmp_path / "m")
