"""The real pipeline on a tiny demo corpus: Snakemake, ffmpeg, transformers models, DuckDB.

The project (Snakefile, rules, config.yaml and src/) is copied to a temporary folder so the
tests can edit library code and media without touching the checkout; `ground` runs as a
subprocess with that copy of src/ first on PYTHONPATH, exactly as a user would run it.
Nothing is stubbed.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

TINY = [
    "download.demo.splits={train: 6, val: 2, test: 2}",
    "download.models.vocab_size=400",
    # random parts: pretrained ones learn from the train split, so GROWN (more training media)
    # would rightly retrain the encoders and re-encode every shard, not only the new media's
    "download.models.pretrain={image_encoder: 0, frame_encoder: 0, audio_encoder: 0, llm: 0}",
    "features.shard_size=4",
]
pytestmark = pytest.mark.e2e
# The recipe of the last tests: the previous ones' on_error=skip kept, so that only the data changes.
GROWN = ["download.demo.splits={train: 8, val: 2, test: 2}", "features.on_error=skip"]


def ground(project: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    sets = [x for s in TINY for x in ("--set", s)]
    needs_sets = args[0] in ("run", "status")
    # The tiny sizes come first so that a test's own --set of the same key wins.
    cmd = [sys.executable, "-m", "ground_cli.main", args[0], *(sets if needs_sets else []), *args[1:]]
    env = os.environ | {"PYTHONPATH": str(project / "src"), "COLUMNS": "200"}
    proc = subprocess.run(cmd, cwd=project, env=env, capture_output=True, text=True, timeout=900)
    if check and proc.returncode != 0:
        raise AssertionError(f"{cmd} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def status(project: Path, *sets: str) -> dict[str, dict]:
    extra = [x for s in sets for x in ("--set", s)]
    out = ground(project, "status", "--json", "--until", "features", *extra).stdout
    return {job["job"]: job for job in json.loads(out)["steps"]}


@pytest.fixture(scope="module")
def project(tmp_path_factory, copy_project) -> Path:
    root = tmp_path_factory.mktemp("project")
    copy_project(root)
    ground(root, "run", "--until", "features", "--cores", "2")
    return root


def test_first_run_builds_every_step_and_tracks_it(project):
    for modality in ("image", "video", "audio"):
        index = project / f"results/features/{modality}.index.jsonl"
        entries = [json.loads(line) for line in index.read_text().splitlines()]
        assert entries and all(len(e["key"]) == 64 for e in entries)
    con = duckdb.connect(str(project / "results/ground.duckdb"), read_only=True)
    (runs,) = con.execute("select count(*) from runs where status = 'ok'").fetchone()
    jobs = dict(con.execute("select rule, count(*) from jobs group by rule").fetchall())
    assert runs == 1
    # download, 3 datasets x 3 splits, generate; per modality a split, 2 shard jobs, a gather
    assert jobs == {"download_data": 1, "convert_dataset": 9, "generate_instructions": 1,
                    "split_media": 3, "cache_features": 6, "gather_features": 3}  # fmt: skip
    path, size, sha = con.execute(
        "select path, size, sha256 from artifacts where path like '%demo_image/train.jsonl'"
    ).fetchone()
    data = (project / path).read_bytes() if not Path(path).is_absolute() else Path(path).read_bytes()
    assert size == len(data) and sha == hashlib.sha256(data).hexdigest()


def test_second_run_does_nothing_and_status_is_up_to_date(project):
    proc = ground(project, "run", "--until", "features")
    assert "0 job(s) ran" in proc.stderr
    states = {job["state"] for job in status(project).values()}
    assert states == {"up-to-date"}


def newest_run_jobs(project: Path, experiment: str) -> dict[str, int]:
    con = duckdb.connect(str(project / "results/ground.duckdb"), read_only=True)
    (run,) = con.execute(
        "select id from runs where experiment = ? order by started desc limit 1", [experiment]
    ).fetchone()
    jobs = dict(con.execute("select rule, count(*) from jobs where run_id = ? group by rule", [run]).fetchall())
    con.close()
    return jobs


def test_an_experiment_reruns_only_what_its_override_changes_and_shares_the_rest(project):
    """LocVLM's integer bins as a named experiment: conversion and what reads it run again in
    experiments/ivb/; the download and the feature encoding are the default experiment's (their
    files shared as hard links), and the default experiment's files are untouched."""
    ground(project, "run", "--until", "features", "--exp", "ivb", "--set", "convert.coords=bins:100")
    jobs = newest_run_jobs(project, "ivb")
    assert "download_data" not in jobs and "cache_features" not in jobs
    assert jobs["convert_dataset"] == 9 and jobs["generate_instructions"] == 1
    ours, theirs = project / "experiments/ivb", project
    converted = "results/convert/demo_image/train.jsonl"
    answers = [
        next(json.loads(r)["conversations"][1]["value"] for r in (root / converted).read_text().splitlines()
             if json.loads(r)["task"] == "rec")
        for root in (ours, theirs)
    ]  # fmt: skip
    assert re.fullmatch(r"\[\d+, \d+, \d+, \d+\]", answers[0]), answers
    assert re.fullmatch(r"\[[01]\.\d{3}, [01]\.\d{3}, [01]\.\d{3}, [01]\.\d{3}\]", answers[1]), answers
    image = "resources/demo/media/images/train_00000.png"
    assert (ours / image).stat().st_ino == (theirs / image).stat().st_ino
    index = "results/features/image.index.jsonl"
    keys = [[json.loads(line)["key"] for line in (root / index).read_text().splitlines()] for root in (ours, theirs)]
    assert keys[0] == keys[1]
    listed = {row["experiment"]: row for row in json.loads(ground(project, "exp", "list", "--json").stdout)}
    assert listed["ivb"]["convert.coords"] == "bins:100" and listed["default"]["convert.coords"] == "float3"
    assert listed["ivb"]["status"] == "ok" and not [k for k in listed["ivb"] if k.startswith("download.")]
    diff = json.loads(ground(project, "exp", "diff", "default", "ivb", "--json").stdout)
    assert diff == [{"key": "convert.coords", "default": "float3", "ivb": "bins:100"}]
    planned = ground(project, "status", "--json", "--until", "features", "--exp", "ivb", "--set", "convert.coords=bins:100")
    assert {job["state"] for job in json.loads(planned.stdout)["steps"]} == {"up-to-date"}


def test_two_experiments_started_at_once_both_finish(project):
    """Two `ground run --exp` processes on one checkout at the same time: each has its own
    working folder and Snakemake locks, and they share the run store (retried connections)."""
    sets = [x for s in TINY for x in ("--set", s)]
    env = os.environ | {"PYTHONPATH": str(project / "src")}
    procs = [
        subprocess.Popen([sys.executable, "-m", "ground_cli.main", "run", *sets, "--until", "convert",
                          "--exp", f"seed{n}", "--set", f"convert.seed={n}"],
                         cwd=project, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for n in (11, 12)
    ]  # fmt: skip
    outputs = [p.communicate(timeout=600)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    for n in (11, 12):
        jobs = newest_run_jobs(project, f"seed{n}")
        assert jobs["convert_dataset"] > 0 and "download_data" not in jobs
    converted = [(project / f"experiments/seed{n}/results/convert/demo_image/train.jsonl").read_text() for n in (11, 12)]
    assert converted[0] != converted[1]


def test_a_sweep_leaves_one_experiment_per_value_and_runs_shared_steps_once(project):
    """Three dialogue seeds on LocVLM's bins: the first experiment converts in bins, the other
    two start from it, at once, so they generate again but convert nothing."""
    sweep = ["--exp", "sw", "--set", "convert.coords=bins:100", "--sweep", "generate.seed=3,4,5"]
    proc = ground(project, "run", "--until", "convert", *sweep)
    assert "experiment sw-3: starts from default" in proc.stderr
    assert "running sw-4, sw-5 at once, from sw-3" in proc.stderr  # two processes of their own
    for n in (4, 5):
        log = (project / f"experiments/sw-{n}/logs/ground-run.log").read_text()
        assert f"experiment sw-{n}: starts from sw-3" in log and "done:" in log
    listed = {row["experiment"]: row for row in json.loads(ground(project, "exp", "list", "--json").stdout)}
    assert [listed[f"sw-{n}"]["generate.seed"] for n in (3, 4, 5)] == [3, 4, 5]
    first, *later = [newest_run_jobs(project, f"sw-{n}") for n in (3, 4, 5)]
    assert first["convert_dataset"] > 0 and "download_data" not in first
    assert all(j["generate_instructions"] == 1 and "convert_dataset" not in j for j in later), later


def test_planning_loads_no_pandas_yaml_templates_or_executor_plugins(project):
    """What `ground status` (and so `ground run`) loads to plan a finished run: not pandas
    (Snakemake's params comparison, see `ground_cli.workflow._serializer`), not yte and numpy (the
    recipe file is JSON), not the SLURM plugin (no profile); each cost a fifth of a second or more
    of every start-up. The plan is unchanged by it: every job is still up to date."""
    sets = [x for s in TINY for x in ("--set", s)]
    code = f"""
import json, sys
from ground_cli.main import app
try:
    app(["status", "--json", "--until", "features", *{sets!r}], prog_name="ground")
except SystemExit:
    pass
heavy = ("pandas", "numpy", "yte", "snakemake_executor_plugin_slurm")
print(json.dumps(sorted(m for m in heavy if m in sys.modules)))
"""
    env = os.environ | {"PYTHONPATH": str(project / "src")}
    proc = subprocess.run([sys.executable, "-c", code], cwd=project, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    *plan, loaded = proc.stdout.splitlines()
    assert {job["state"] for job in json.loads("\n".join(plan))["steps"]} == {"up-to-date"}
    assert json.loads(loaded) == []


def test_conversion_param_invalidates_conversion_and_later_steps_only(project):
    plan = status(project, "convert.seed=7")
    by_step: dict[str, set[str]] = {}
    for job in plan.values():
        by_step.setdefault(job["step"], set()).add(job["state"])
    assert by_step["download"] == {"up-to-date"}
    assert by_step["convert"] == {"will-run"}
    assert by_step["generate"] == {"will-run"} and by_step["features"] == {"will-run"}
    convert_job = plan["convert_dataset[dataset=demo_image,split=train]"]
    assert {"kind": "config-changed", "detail": "convert.seed: 0 -> 7"} in convert_job["reasons"]


def test_code_edit_reruns_conversion_but_a_comment_does_not(project):
    source = project / "src/ground/convert/run.py"
    original = source.read_text()
    try:
        source.write_text(original + "\n# a comment changes nothing\n")
        assert {j["state"] for j in status(project).values()} == {"up-to-date"}
        source.write_text(original + "\nEXTRA_CONSTANT = 1\n")
        plan = status(project)
        states = {(j["step"], j["state"]) for j in plan.values()}
        assert ("download", "up-to-date") in states and ("download", "will-run") not in states
        assert ("convert", "up-to-date") not in states
        kinds = {r["kind"] for r in plan["convert_dataset[dataset=demo_video,split=val]"]["reasons"]}
        assert "code-changed" in kinds
    finally:
        source.write_text(original)
    assert {j["state"] for j in status(project).values()} == {"up-to-date"}


def test_adapter_is_judged_by_its_code_not_its_mtime(project):
    """A checkout or `touch` of a rule's adapter reruns nothing; a code edit reruns its step."""
    adapter = project / "rules/scripts/convert_dataset.py"
    original = adapter.read_text()
    try:
        os.utime(adapter)  # newer than every output: Snakemake's own code trigger would rerun
        adapter.write_text(original + "\n# a comment changes nothing\n")
        assert {j["state"] for j in status(project).values()} == {"up-to-date"}
        adapter.write_text(original + "\njob_done = True\n")
        plan = status(project)
        assert {j["state"] for j in plan.values() if j["step"] == "convert"} == {"will-run"}
        assert {j["state"] for j in plan.values() if j["step"] == "download"} == {"up-to-date"}
        kinds = {r["kind"] for r in plan["convert_dataset[dataset=demo_image,split=test]"]["reasons"]}
        assert "code-changed" in kinds and "rule-code-changed" not in kinds
    finally:
        adapter.write_text(original)
    assert {j["state"] for j in status(project).values()} == {"up-to-date"}


def test_garbage_video_fails_naming_the_file_and_keeps_the_cache(project):
    """A video overwritten in place (no --forcerun: the run finds it changed) fails its feature
    job naming the file, or with features.on_error=skip is reported and left out."""
    store = project / "cache/features/video"
    before = {p: p.read_bytes() for p in store.rglob("*") if p.is_file()}
    victim = sorted((project / "resources/demo/media/videos").glob("*.mp4"))[0]
    original = victim.read_bytes()
    try:
        victim.write_bytes(b"this is not a video" * 100)
        proc = ground(project, "run", "--until", "features", check=False)
        assert proc.returncode == 1
        failure = proc.stderr.split("failed:", 1)[-1]
        assert "cache_features" in failure and victim.name in failure, proc.stderr
        for path, data in before.items():
            assert path.read_bytes() == data, f"{path} changed"
        skipped = ground(project, "run", "--until", "features", "--set", "features.on_error=skip")
        record = json.loads((project / "results/features/video.job.json").read_text())
        failed = record["notes"]["summary"]["failed"]
        assert [Path(f["media"]).name for f in failed] == [victim.name], skipped.stderr
    finally:
        victim.write_bytes(original)
    # the restored video is a changed input too: its shard runs again, from the cache
    ground(project, "run", "--until", "features", "--set", "features.on_error=skip")
    assert {j["state"] for j in status(project, "features.on_error=skip").values()} == {"up-to-date"}


def test_runs_and_metrics_commands_read_the_database(project):
    runs = json.loads(ground(project, "runs", "--json").stdout)
    assert len(runs) >= 2 and {"ok", "failed"} <= {r["status"] for r in runs}
    metrics = json.loads(ground(project, "metrics", "--json").stdout)
    assert any(m["name"] == "media_encoded" for m in metrics)
    first = min((r for r in runs if r["status"] == "ok"), key=lambda r: r["started"])
    jobs = json.loads(ground(project, "runs", "--run", first["id"], "--json").stdout)
    assert {j["rule"] for j in jobs} >= {"download_data", "convert_dataset"}
    assert all(j["host"] and j["scheduler_job_id"] is None for j in jobs)  # local: no scheduler


def shard_records(project: Path, modality: str) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in (project / "results/features" / modality).glob("shard[0-9]*.job.json")}


def indexed(project: Path, modality: str) -> set[str]:
    lines = (project / f"results/features/{modality}.index.jsonl").read_text().splitlines()
    return {json.loads(line)["media"] for line in lines}


def test_new_media_rerun_only_the_shard_jobs_they_belong_to(project):
    """Grown data reruns conversion; after the split checkpoint only the shards that got new
    media encode. Then media added to converted data by hand: the plan names only their shard."""
    from added_media import add_to_shard

    from ground.features.shards import shard_of

    sets = GROWN
    names = {p.name for p in (project / "resources/demo/media/videos").glob("*.mp4")}
    media, records = indexed(project, "video"), shard_records(project, "video")
    ground(project, "run", "--until", "features", *[x for s in sets for x in ("--set", s)])
    new = {m for m in indexed(project, "video") - media if Path(m).name not in names}
    after = shard_records(project, "video")
    ran = {name for name in after if records.get(name) != after[name]}
    assert len(new) == 2 and ran == {f"shard{shard_of(m, 2)}.job.json" for m in new}
    assert sum(json.loads(after[name])["notes"]["summary"]["encoded"] for name in ran) == 2

    def copy(source: Path, target: Path, i: int) -> None:
        target.write_bytes(source.read_bytes())

    added = add_to_shard(project, project / "results/convert/demo_image/test.jsonl", "image", 0, 2, copy)
    records = shard_records(project, "image")
    plan = status(project, *sets)
    will_run = {job for job, entry in plan.items() if entry["state"] == "will-run"}
    assert will_run == {"cache_features[modality=image,shard=0]", "gather_features[modality=image]"}
    ground(project, "run", "--until", "features", *[x for s in sets for x in ("--set", s)])
    after = shard_records(project, "image")
    assert {name for name in after if records[name] != after[name]} == {"shard0.job.json"}
    assert set(added) <= indexed(project, "image")


def test_files_changed_in_place_rerun_exactly_their_jobs(project):
    """A video, an image and a raw annotation file overwritten in place (the media folder, one
    directory() output, keeps its mtime): the plan names them, the run re-encodes exactly those 2
    media and reconverts exactly that (dataset, split), and the next plan is up to date."""
    from ground.common.media import ffmpeg_exe
    from ground.features.shards import shard_of

    sets = [x for s in GROWN for x in ("--set", s)]
    media = project / "resources/demo/media"
    video, image = sorted((media / "videos").glob("*.mp4"))[1], sorted((media / "images").glob("*.png"))[1]
    assert str(image.relative_to(project)) in indexed(project, "image")
    for path in (video, image):  # other pixels, written into the same file
        other = project / f"other{path.suffix}"
        subprocess.run([ffmpeg_exe(), "-loglevel", "error", "-y", "-i", str(path), "-vf", "hue=h=90",
                        str(other)], check=True)  # fmt: skip
        path.write_bytes(other.read_bytes())
    raw = project / "resources/demo/raw/demo_audio/val.jsonl"
    lines = raw.read_text().splitlines()
    lines[0] = json.dumps(json.loads(lines[0]) | {"caption": "a low steady hum"})
    raw.write_text("\n".join(lines) + "\n")
    converted = {p: p.read_bytes() for p in (project / "results/convert").glob("*/*.job.json")}
    shards = {m: shard_records(project, m) for m in ("image", "video")}

    plan = status(project, *GROWN)
    will_run = {job: entry for job, entry in plan.items() if entry["state"] == "will-run"}
    video_job = f"cache_features[modality=video,shard={shard_of(str(video.relative_to(project)), 2)}]"
    image_job = f"cache_features[modality=image,shard={shard_of(str(image.relative_to(project)), 2)}]"
    convert_job = "convert_dataset[dataset=demo_audio,split=val]"
    changed = {job: entry["reasons"][0] for job, entry in will_run.items()
               if entry["reasons"][0]["kind"] == "input-content"}  # fmt: skip
    assert set(changed) == {video_job, image_job, convert_job}
    for job, path in ((video_job, video), (image_job, image), (convert_job, raw)):
        assert changed[job]["files"] == [str(path.relative_to(project))], changed[job]
        assert changed[job]["detail"].startswith("input changed since the last run: ")
    # downstream: the split reruns (then plans every shard again), the gathers follow
    assert {"split_media[modality=audio]", "gather_features[modality=video]"} <= set(will_run)

    ground(project, "run", "--until", "features", *sets)
    rerun = [p for p, data in converted.items() if p.read_bytes() != data]
    assert [p.parent.name + "/" + p.name for p in rerun] == ["demo_audio/val.job.json"]
    encoded = 0
    for modality, records in shards.items():
        after = shard_records(project, modality)
        ran = [name for name in after if after[name] != records[name]]
        assert len(ran) == 1, (modality, ran)
        encoded += json.loads(after[ran[0]])["notes"]["summary"]["encoded"]
    assert encoded == 2
    assert {j["state"] for j in status(project, *GROWN).values()} == {"up-to-date"}
