"""The 7B recipe's data steps on a laptop: `ground run --config configs/groundinggpt-7b.yaml
--set download.mirror=<fixture> --until convert` fetches the hub-carried datasets from a local
folder laid out like the Hugging Face hub (tests/fixtures/hub_mirror: the hub itself cannot be
reached here), converts every training source and evaluation split from hand-written files in
their published formats, and assembles the three stage mixtures. Datasets the hub does not carry
are placed by hand, as users do (the fixtures of tests/fixtures/raw and a refer-toolkit pickle
written here); `ground data check` then reports them present.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures"
HUB_CARRIED = {"llava_pretrain", "valley_pretrain", "wavcaps", "llava_mix665k", "valley_instruct"}


def ground(project: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ground_cli.main", *args],
        cwd=project, env=os.environ | {"COLUMNS": "200"}, capture_output=True, text=True, timeout=900,
    )  # fmt: skip


def place_by_hand(root: Path) -> None:
    """What a user copies in for the datasets the hub does not carry."""
    raw = root / "raw"
    for folder in (FIXTURES / "raw").iterdir():
        if folder.name not in HUB_CARRIED | {"authors"}:
            shutil.copytree(folder, raw / folder.name)
    shutil.copytree(FIXTURES / "media", root / "media")
    charades = raw / "charades_sta"
    charades.mkdir()
    for split in ("train", "test"):  # the test split's lines serve as train lines too
        shutil.copy(FIXTURES / "evalsets/charades_sta_test.txt", charades / f"charades_sta_{split}.txt")
        shutil.copy(FIXTURES / "evalsets/Charades_v1_test.csv", charades / f"Charades_v1_{split}.csv")
    (raw / "vggss").mkdir()
    shutil.copy(FIXTURES / "evalsets/vggss.json", raw / "vggss")
    refs = {"refs(unc).p": ("train", "val", "testA", "testB"), "refs(umd).p": ("train", "val", "test")}
    for name, pickled in refs.items():
        folder = raw / ("refcocog" if "umd" in name else "refcoco")
        folder.mkdir(exist_ok=True)
        shutil.copy(FIXTURES / "evalsets/instances.json", folder)
        refs_list = [
            {"ref_id": i, "ann_id": ann, "image_id": image, "split": split, "sentences": [
                {"sent": f"the person {i}", "sent_id": i}]}
            for i, (split, (ann, image)) in enumerate(
                (s, a) for s in pickled for a in ((1719310, 580957), (1724819, 98304)))
        ]  # fmt: skip
        (folder / name).write_bytes(pickle.dumps(refs_list, protocol=2))
    shutil.copytree(raw / "refcoco", raw / "refcoco+")


def test_7b_recipe_until_convert_from_a_mirror(tmp_path: Path, copy_project) -> None:
    project = copy_project(tmp_path)
    shutil.copytree(REPO / "configs", project / "configs")
    root = project / "resources" / "groundinggpt"
    place_by_hand(root)
    recipe = ["--config", "configs/groundinggpt-7b.yaml"]
    sets = [
        "--set", f"download.mirror={FIXTURES / 'hub_mirror'}",
        # the base models are not in the fixture mirror (gigabytes); --until convert needs none
        "--set", "download.pretrained=[]",
        # the fixtures hold deliberately malformed records next to the good ones
        "--set", "convert.max_reject_fraction=0.8",
    ]  # fmt: skip
    proc = ground(project, "run", *recipe, *sets, "--until", "convert")
    assert proc.returncode == 0, proc.stdout + proc.stderr

    # hub-carried datasets came from the mirror, verified and locked
    lock = json.loads((root / "download.lock.json").read_text())
    assert "liuhaotian/LLaVA-Pretrain" in json.dumps(lock)
    assert (root / "raw/llava_pretrain/blip_laion_cc_sbu_558k.json").is_file()
    # every training source converted; media paths point into the dataset's media folder
    converted = {p.parent.name for p in (project / "results/convert").glob("*/train.jsonl")}
    assert HUB_CARRIED | {"didemo", "flickr30k_entities", "vcr", "refcoco", "charades_sta"} <= converted
    first = json.loads((project / "results/convert/llava_pretrain/train.jsonl").read_text().splitlines()[0])
    assert first["image"].startswith("resources/groundinggpt/media/llava_pretrain/")
    assert (project / first["image"]).is_file()  # extracted from the mirror's images.zip
    # the evaluation splits are converted too
    assert (project / "results/convert/refcoco/testA.jsonl").is_file()
    assert (project / "results/convert/charades_sta/test.jsonl").is_file()

    # the three stage mixtures, with their counts per source in the run store
    manifests = {
        n: json.loads((project / f"results/mixture/stage{n}.manifest.json").read_text()) for n in (1, 2, 3)
    }
    assert set(manifests[1]["by_source"]) == {"llava_pretrain", "valley_pretrain", "wavcaps"}
    assert manifests[2]["replayed"] == round(0.1 * sum(manifests[2]["by_source"].values()))
    assert "generated" in manifests[3]["by_source"]
    for n, manifest in manifests.items():
        lines = (project / f"results/mixture/stage{n}.jsonl").read_text().splitlines()
        assert len(lines) == manifest["records"] > 0
    con = duckdb.connect(str(project / "results/ground.duckdb"), read_only=True)
    rows = con.execute(
        "SELECT benchmark, split, value FROM metrics WHERE name = 'mixture_records'"
    ).fetchall()
    con.close()
    assert {(b, s): v for b, s, v in rows} == {
        (f"stage{n}", source): count
        for n, manifest in manifests.items()
        for source, count in manifest["by_source"].items()
    }

    # nothing is missing now for the datasets; a second run fetches nothing
    proc = ground(project, "run", *recipe, *sets, "--until", "convert")
    assert proc.returncode == 0, proc.stderr
    assert "nothing to do" in (proc.stdout + proc.stderr).lower() or "up to date" in (
        proc.stdout + proc.stderr
    ).lower()

    # a hand-placed annotation file fixed in place: exactly its (dataset, split) is converted again
    placed = root / "raw/charades_sta/charades_sta_train.txt"
    placed.write_text("".join(placed.read_text().splitlines(keepends=True)[:-1]))
    records = {p: p.read_bytes() for p in (project / "results/convert").glob("*/*.job.json")}
    proc = ground(project, "status", "--json", *recipe, *sets, "--until", "convert")
    assert proc.returncode == 0, proc.stderr
    will_run = {j["job"]: j for j in json.loads(proc.stdout)["steps"] if j["state"] == "will-run"}
    assert {j for j in will_run if j.startswith("convert_dataset")} == {
        "convert_dataset[dataset=charades_sta,split=train]"}  # fmt: skip
    reasons = will_run["convert_dataset[dataset=charades_sta,split=train]"]["reasons"]
    assert reasons[0]["kind"] == "input-content" and placed.name in reasons[0]["detail"]
    proc = ground(project, "run", *recipe, *sets, "--until", "convert")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rerun = [p for p, data in records.items() if p.read_bytes() != data]
    assert [(p.parent.name, p.name) for p in rerun] == [("charades_sta", "train.job.json")]
    proc = ground(project, "status", "--json", *recipe, *sets, "--until", "convert")
    assert {j["state"] for j in json.loads(proc.stdout)["steps"]} == {"up-to-date"}
