"""Driving Snakemake in-process through `snakemake.api`, and listening to its log events.

Snakemake has no machine-readable plan; its log events (JOB_INFO carries each job's rule,
wildcards, outputs and the reason it runs) are the stable interface that logger plugins use too,
so `ground run` draws its progress and `ground status` its plan from them.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from snakemake.api import SnakemakeApi
from snakemake.settings.enums import Quietness, RerunTrigger
from snakemake.settings.types import (
    ConfigSettings,
    DAGSettings,
    DeploymentSettings,
    ExecutionSettings,
    OutputSettings,
    ResourceSettings,
)
from snakemake_interface_executor_plugins.registry import ExecutorPluginRegistry
from snakemake_interface_logger_plugins.common import LogEvent

# Keys of a Snakemake profile (config.v8+.yaml) that `ground run --profile` understands.
PROFILE_KEYS = {
    "executor", "jobs", "cores", "default-resources", "retries", "latency-wait", "keep-going",
    "software-deployment-method", "sdm", "rerun-incomplete", "printshellcmds",
}  # fmt: skip


@dataclass
class Job:
    jobid: int
    rule: str
    wildcards: dict[str, str]
    reason: str
    output: list[str]
    log: list[str]


@dataclass
class Events:
    """What one Snakemake execution reported, filled in as log events arrive."""

    on_change: Callable[[Events], None] | None = None
    jobs: dict[int, Job] = field(default_factory=dict)
    finished: set[int] = field(default_factory=set)
    failed: set[int] = field(default_factory=set)
    running: set[int] = field(default_factory=set)
    total: int = 0
    errors: list[str] = field(default_factory=list)

    def handle(self, event: LogEvent, data: dict[str, Any]) -> None:
        if event == LogEvent.JOB_INFO:
            job = Job(
                data["jobid"], data["rule_name"], dict(data.get("wildcards") or {}),
                data.get("reason") or "", list(data.get("output") or []), list(data.get("log") or []),
            )  # fmt: skip
            self.jobs[job.jobid] = job
        elif event == LogEvent.JOB_STARTED:
            self.running.update(data.get("jobs") or [])
        elif event == LogEvent.JOB_FINISHED:
            self.running.discard(data["job_id"])
            self.finished.add(data["job_id"])
        elif event == LogEvent.JOB_ERROR:
            self.running.discard(data["jobid"])
            self.failed.add(data["jobid"])
        elif event == LogEvent.PROGRESS:
            self.total = data["total"]
        elif event == LogEvent.RUN_INFO and isinstance(data.get("stats"), dict):
            self.total = data["stats"].get("total", self.total)
        elif event == LogEvent.ERROR:
            self.errors.append(str(data.get("msg") or data.get("exception") or ""))
        if self.on_change:
            self.on_change(self)


class _Collector(logging.Handler):
    def __init__(self, events: Events) -> None:
        super().__init__(logging.DEBUG)
        self.events = events

    def emit(self, record: logging.LogRecord) -> None:
        event = getattr(record, "event", None)
        if event is None and record.levelno >= logging.ERROR:
            self.events.errors.append(record.getMessage())
        elif event is not None:
            data = dict(record.__dict__)
            data.setdefault("msg", record.getMessage() if record.msg else "")
            self.events.handle(event, data)


@dataclass
class Request:
    root: Path
    config: dict[str, Any]
    targets: list[str] = field(default_factory=list)
    until: list[str] = field(default_factory=list)
    forcerun: list[str] = field(default_factory=list)
    forceall: bool = False
    cores: int = 2
    dryrun: bool = False
    profile: Path | None = None
    verbose: bool = False


def execute(request: Request, events: Events) -> bool:
    """Build the DAG and run it (or dry-run it); True when every job succeeded."""
    profile = load_profile(request.profile)
    _job_environment(request.root)
    quiet = None if request.verbose else {Quietness.ALL}
    with SnakemakeApi(OutputSettings(quiet=quiet, printshellcmds=profile.get("printshellcmds", False))) as api:
        collector = _Collector(events)
        logging.getLogger("snakemake.logging").addHandler(collector)
        try:
            workflow = api.workflow(
                resource_settings=ResourceSettings(
                    cores=profile.get("cores", request.cores),
                    nodes=profile.get("jobs"),
                    default_resources=_default_resources(profile),
                ),
                # The CLI passes the whole validated recipe: it replaces config.yaml rather than being
                # merged into it (a merge would keep keys of config.yaml's mappings, e.g. mixture).
                config_settings=ConfigSettings(config=request.config, replace_workflow_config=True),
                deployment_settings=_deployment(profile),
                snakefile=request.root / "Snakefile",
                workdir=request.root,
            )
            dag = workflow.dag(
                DAGSettings(
                    targets=set(request.targets),
                    until=set(request.until),
                    forcerun=set(request.forcerun),
                    forceall=request.forceall,
                    force_incomplete=profile.get("rerun-incomplete", True),
                    # Code changes reach every rule through params.code (ground.workflow.steps.
                    # step_code), by content; Snakemake's own trigger is an adapter's mtime.
                    rerun_triggers=set(RerunTrigger.all()) - {RerunTrigger.CODE},
                )
            )
            dag.execute_workflow(
                executor=profile.get("executor", "local"),
                pseudo_executor="dryrun" if request.dryrun else None,
                execution_settings=ExecutionSettings(
                    keep_going=profile.get("keep-going", False),
                    retries=profile.get("retries", 0),
                    latency_wait=profile.get("latency-wait", 5),
                ),
            )
        except Exception as err:  # Snakemake raises many types; report them all as a failed run
            events.errors.append(f"{type(err).__name__}: {err}")
            return False
        finally:
            logging.getLogger("snakemake.logging").removeHandler(collector)
    return not events.failed and not events.errors


def load_profile(directory: Path | None) -> dict[str, Any]:
    """Read a Snakemake profile folder's config.v8+.yaml (or config.yaml), supported keys only."""
    if directory is None:
        return {}
    for name in ("config.v8+.yaml", "config.yaml"):
        path = directory / name
        if path.is_file():
            profile = yaml.safe_load(path.read_text()) or {}
            unknown = sorted(set(profile) - PROFILE_KEYS)
            if unknown:
                raise ValueError(f"{path}: unsupported profile keys {unknown}; supported: {sorted(PROFILE_KEYS)}")
            executor = profile.get("executor", "local")
            if executor not in ("local", "dryrun") and not ExecutorPluginRegistry().is_installed(executor):
                raise ValueError(f"{path}: executor {executor!r} needs snakemake-executor-plugin-{executor}")
            return profile
    raise ValueError(f"{directory}: no config.v8+.yaml or config.yaml in this profile folder")


def _default_resources(profile: dict[str, Any]) -> dict[str, Any] | None:
    items = profile.get("default-resources")
    if not items or isinstance(items, dict):
        return items or None
    return {k: yaml.safe_load(v) for k, _, v in (item.partition("=") for item in items)}


def _deployment(profile: dict[str, Any]) -> DeploymentSettings:
    from snakemake_interface_executor_plugins.settings import DeploymentMethod

    methods = profile.get("software-deployment-method", profile.get("sdm", []))
    methods = [methods] if isinstance(methods, str) else methods
    return DeploymentSettings(deployment_method={DeploymentMethod.parse_choice(m) for m in methods})


def _job_environment(root: Path) -> None:
    """Jobs run `python` from PATH and import `ground`: make both this checkout's, also in
    `--sdm conda` environments and on cluster nodes (executors pass the environment on)."""
    for name, entry in (("PATH", str(Path(sys.executable).parent)), ("PYTHONPATH", str(root / "src"))):
        current = os.environ.get(name, "")
        if entry not in current.split(os.pathsep):
            os.environ[name] = os.pathsep.join(p for p in (entry, current) if p)
