"""Snakemake profiles for `ground run --profile`: the shipped ones parse, every key reaches the
settings object Snakemake would fill, an unknown key is one line naming it and the file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from ground_cli.profile import ProfileError, load_profile
from snakemake_interface_executor_plugins.settings import DeploymentMethod

REPO = Path(__file__).resolve().parents[2]


def raw(resource) -> str:
    """A string resource as the job will see it (Snakemake evaluates `'quoted'` values)."""
    return str(resource.raw).strip("'")


@pytest.mark.parametrize("name", ["local", "slurm"])
def test_shipped_profiles_parse(name):
    profile = load_profile(REPO / "profiles" / name)
    assert profile.executor == name
    assert profile.kwargs("dag")["force_incomplete"] is True
    if name == "slurm":
        assert profile.kwargs("execution")["retries"] == 1
        assert profile.executor_settings.status_command == "squeue"
        assert profile.executor_settings.no_account is True


def test_shipped_slurm_profile_with_its_site_keys_uncommented_parses(tmp_path):
    text = (REPO / "profiles/slurm/config.v8+.yaml").read_text()
    lines = [line.replace("# ", "", 1) if line.lstrip().startswith("# ") and ":" in line
             and "partition-config" not in line and "# Per rule" not in line else line
             for line in text.splitlines()]  # fmt: skip
    (tmp_path / "config.v8+.yaml").write_text("\n".join(lines) + "\n")
    profile = load_profile(tmp_path)
    train = profile.kwargs("resource")["overwrite_resources"]["train_stage"]
    assert raw(train["slurm_extra"]) == "--signal=USR1@300"
    assert (raw(train["gpu_model"]), raw(train["slurm_partition"])) == ("h100", "gpu")
    assert profile.executor_settings.qos == "normal"
    assert raw(profile.kwargs("resource")["default_resources"]["slurm_account"]) == "my_project"


def test_profile_keys_reach_the_settings_objects(tmp_path):
    (tmp_path / "config.v8+.yaml").write_text(
        "executor: slurm\njobs: unlimited\ncores: 3\nlocal-cores: 1\nmax-threads: 4\n"
        "keep-going: true\nrestart-times: 2\nlatency-wait: 30\nrerun-incomplete: false\n"
        "seconds-between-status-checks: 7\nmax-status-checks-per-second: 0.5\n"
        "jobname: 'ground.{rulename}.{jobid}.sh'\nsdm: conda\nconda-frontend: mamba\n"
        "printshellcmds: true\nresources: {gpu: 2}\nset-threads: {train_stage: 8}\n"
        "default-resources: [mem_mb=2000, 'runtime=5']\n"
        "set-resources:\n  train_stage: {mem_mb: 64000, slurm_partition: gpu, gpu_model: \"'a100'\"}\n"
        "slurm-init-seconds-before-status-checks: 3\nslurm-no-account: true\n"
        "slurm-logdir: logs/slurm\nslurm-requeue: false\n"
    )
    profile = load_profile(tmp_path)
    resource = profile.kwargs("resource", cores=1)
    assert resource["cores"] == 3 and resource["local_cores"] == 1 and resource["max_threads"] == 4
    assert resource["nodes"] > 10**9  # unlimited
    assert resource["resources"]["gpu"].value == 2
    assert resource["overwrite_threads"]["train_stage"].value == 8
    assert resource["default_resources"]["mem_mb"].value == 2000
    assert resource["default_resources"]["runtime"].value == 5
    train = resource["overwrite_resources"]["train_stage"]
    assert (train["mem_mb"].value, raw(train["slurm_partition"]), raw(train["gpu_model"])) == (64000, "gpu", "a100")
    assert profile.kwargs("execution", latency_wait=5) == {"keep_going": True, "retries": 2, "latency_wait": 30}
    assert profile.kwargs("dag", force_incomplete=True) == {"force_incomplete": False}
    assert profile.kwargs("remote") == {
        "seconds_between_status_checks": 7, "max_status_checks_per_second": 0.5,
        "jobname": "ground.{rulename}.{jobid}.sh",
    }  # fmt: skip
    assert profile.kwargs("deployment") == {"deployment_method": {DeploymentMethod.CONDA}, "conda_frontend": "mamba"}
    assert profile.kwargs("output") == {"printshellcmds": True}
    settings = profile.executor_settings
    assert type(settings).__module__ == "snakemake_executor_plugin_slurm"
    assert settings.init_seconds_before_status_checks == 3 and settings.no_account is True
    assert str(settings.logdir) == "logs/slurm" and settings.requeue is False


def test_settings_objects_accept_what_the_profile_gives(tmp_path):
    profile = load_profile(REPO / "profiles/slurm")
    profile.build("resource", cores=2)
    profile.build("execution")
    profile.build("remote")
    profile.build("deployment")
    profile.build("output")
    profile.build("dag")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("jobs: 3\nslurm-account: x\n", "unknown profile key 'slurm-account' (a resource: default"),
        ("jobs: 3\nno-such-key: x\n", "unknown profile key 'no-such-key' (not a snakemake option)"),
        ("jobs: 3\nuntil: [all]\n", "profile key 'until' is not used by ground run"),
        ("jobs: many\n", "must be integer"),
        ("executor: slurm\nslurm-status-command: sinfo\n", "Invalid status command"),
        ("executor: nowhere\n", "executor 'nowhere' needs snakemake-executor-plugin-nowhere"),
    ],
)
def test_bad_profile_is_one_line_naming_the_file(tmp_path, text, message):
    (tmp_path / "config.v8+.yaml").write_text(text)
    with pytest.raises(ProfileError) as err:
        load_profile(tmp_path)
    assert message in str(err.value)
    assert str(tmp_path / "config.v8+.yaml") in str(err.value)
    assert "\n" not in str(err.value)


def test_missing_profile_file(tmp_path):
    with pytest.raises(ProfileError, match="no config.v8"):
        load_profile(tmp_path)


def test_touch_marks_jobs_done_locally_whatever_the_profile(tmp_path):
    from ground_cli.workflow import Events, Request, execute

    (tmp_path / "Snakefile").write_text(
        'rule make_b:\n    input: "a.txt"\n    output: "b.txt"\n    shell: "exit 1"\n'
    )
    (tmp_path / "b.txt").write_text("kept\n")
    (tmp_path / "a.txt").write_text("newer input\n")
    os.utime(tmp_path / "b.txt", (1, 1))  # older than its input: would rerun
    request = Request(root=tmp_path, config={}, profile=REPO / "profiles/slurm", touch=True)
    events = Events()
    assert execute(request, events), events.errors
    assert (tmp_path / "b.txt").read_text() == "kept\n"
    assert (tmp_path / "b.txt").stat().st_mtime > (tmp_path / "a.txt").stat().st_mtime
    assert not (tmp_path / ".snakemake" / "slurm_logs").exists()  # nothing was submitted


def test_cluster_jobs_are_not_capped_by_the_head_machines_cores():
    from ground_cli.workflow import Request, _cores

    slurm, local = load_profile(REPO / "profiles/slurm"), load_profile(None)
    assert _cores(Request(root=REPO, config={}, cores=2), slurm) is None  # jobs get `--cores all`
    assert _cores(Request(root=REPO, config={}, cores=2, touch=True), slurm) == 2  # local touch
    assert _cores(Request(root=REPO, config={}, cores=2), local) == 2


def test_a_run_without_a_profile_loads_no_executor_plugin(tmp_path):
    """Without `--profile`, `ground run` and `ground status` execute locally: Snakemake's built-in
    executors only. The SLURM plugin, loaded, asks `scontrol show config` (9 s where SLURM's client
    is installed and no controller answers); a profile naming it loads it. Stand-ins for SLURM's
    commands on PATH record whether it asked."""
    bin_ = tmp_path / "bin"
    bin_.mkdir()
    asked = tmp_path / "asked"
    for name in ("scontrol", "sinfo", "squeue", "sacct"):
        (bin_ / name).write_text(f"#!/bin/sh\necho {name} >> {asked}\n")
        (bin_ / name).chmod(0o755)
    code = f"""
import json, sys
import ground_cli.workflow
from ground_cli.profile import executors, load_profile
assert load_profile(None).local
before = (sorted(executors(every=False).plugins), "snakemake_executor_plugin_slurm" in sys.modules,
          __import__("os").path.exists({str(asked)!r}))
load_profile(__import__("pathlib").Path({str(REPO / "profiles/slurm")!r}))
print(json.dumps([before, sorted(executors(every=False).plugins)]))
"""
    env = os.environ | {"PATH": f"{bin_}{os.pathsep}{os.environ['PATH']}"}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    before, after = json.loads(proc.stdout.splitlines()[-1])
    assert before == [["dryrun", "local", "touch"], False, False]
    assert {"slurm", "slurm-jobstep", "local"} <= set(after)
    assert "scontrol" in asked.read_text()  # the profile's plugin did ask: the stand-ins work
