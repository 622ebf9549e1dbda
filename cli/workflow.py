"""Driving Snakemake in-process through `snakemake.api`, and listening to its log events.

Snakemake has no machine-readable plan; its log events (JOB_INFO carries each job's rule,
wildcards, outputs and the reason it runs) are the stable interface that logger plugins use too,
so `ground run` draws its progress and `ground status` its plan from them.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import sys
import types
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class _Deferred(types.ModuleType):
    """Stands in `sys.modules` for a module until one of its attributes is first used, then
    imports it for real and hands that attribute over (and every later one)."""

    def __getattr__(self, attr: str) -> Any:
        name = self.__name__
        if sys.modules.get(name) is self:
            del sys.modules[name]
        return getattr(importlib.import_module(name), attr)


def _defer(name: str) -> None:
    if name not in sys.modules and (spec := importlib.util.find_spec(name)) is not None:
        module = _Deferred(name)
        module.__spec__ = spec
        sys.modules[name] = module


# Snakemake imports nbformat for every `script:` rule it plans (to tell notebooks from scripts
# by their file names): a tenth to a quarter of a second of each `ground status`. It is used
# inside a function only, when a rule runs a notebook. (pandas: see `_serializer`.)
_defer("nbformat")

from ground_cli.profile import Profile, ProfileError, executors, load_profile  # noqa: E402

executors(every=False)  # before Snakemake loads: else it imports every executor plugin (see there)

from snakemake.api import SnakemakeApi  # noqa: E402
from snakemake.persistence import PersistenceBase  # noqa: E402
from snakemake.settings.enums import Quietness, RerunTrigger  # noqa: E402
from snakemake.settings.types import ConfigSettings, DAGSettings  # noqa: E402
from snakemake_interface_logger_plugins.common import LogEvent  # noqa: E402


def _serializer(self: PersistenceBase) -> Callable[[Any], str | object]:
    """How Snakemake turns each job's params into the strings it compares with the last run's.
    It picks its pandas-aware variant whenever pandas is installed, importing pandas on every DAG
    build (a fifth of a second); that variant differs only for pandas objects, which cannot exist
    before pandas is imported, so until then the plain one gives the same strings."""
    return self._serialize_param_pandas if "pandas" in sys.modules else self._serialize_param_builtin


PersistenceBase._serialize_param = property(_serializer)

__all__ = ["Events", "Job", "Profile", "ProfileError", "Request", "execute", "load_profile"]


# The recipe file the Snakefile reads (see `_recipe_file`); plain `snakemake` reads config.yaml.
RECIPE_ENV = "GROUND_RECIPE"


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
    every: list[Job] = field(default_factory=list)  # a dry run's every job, up to date ones too

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
            self.failed.discard(data["job_id"])  # an attempt failed, its retry did not
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
    cores: int = 2
    dryrun: bool = False
    profile: Path | None = None
    verbose: bool = False
    # Mark the jobs done without running them (Snakemake's `touch` executor, always local,
    # whatever the profile's executor): cli/recovery.py adopts jobs that finished unobserved.
    touch: bool = False
    # The checkout with the Snakefile and src/, when `root` is an experiment's working folder.
    project: Path | None = None


def execute(request: Request, events: Events) -> bool:
    """Build the DAG and run it (or dry-run it); True when every job succeeded."""
    profile = load_profile(request.profile)
    project = request.project or request.root
    _job_environment(project)
    os.environ[RECIPE_ENV] = str(_recipe_file(request.root, request.config))
    quiet = None if request.verbose else {Quietness.ALL}
    with SnakemakeApi(profile.build("output", quiet=quiet)) as api:
        collector = _Collector(events)
        logging.getLogger("snakemake.logging").addHandler(collector)
        try:
            workflow = api.workflow(
                resource_settings=profile.build("resource", cores=_cores(request, profile)),
                # The Snakefile reads the recipe from the file `_recipe_file` names (not --config:
                # cluster jobs would get nested values back as strings, and config.yaml's mappings
                # merged in, since Snakemake passes neither types nor replace_workflow_config on).
                config_settings=ConfigSettings(),
                deployment_settings=profile.build("deployment"),
                snakefile=project / "Snakefile",
                workdir=request.root,
            )
            dag = workflow.dag(
                DAGSettings(
                    **profile.kwargs("dag", force_incomplete=True),
                    targets=set(request.targets),
                    until=set(request.until),
                    forcerun=set(request.forcerun),
                    # Code changes reach every rule through params.code (ground.workflow.steps.
                    # step_code), by content; Snakemake's own trigger is an adapter's mtime.
                    rerun_triggers=set(RerunTrigger.all()) - {RerunTrigger.CODE},
                )
            )
            dag.execute_workflow(**_execution(request, profile))
            if request.dryrun:
                events.every = _every_job(workflow)
        except Exception as err:  # Snakemake raises many types; report them all as a failed run
            events.errors.append(f"{type(err).__name__}: {err}")
            return False
        finally:
            logging.getLogger("snakemake.logging").removeHandler(collector)
    return not events.failed and not events.errors


def _every_job(workflow: Any) -> list[Job]:
    """Every job of the DAG the dry run built, those up to date included (Snakemake reports only
    the ones that would run; no public call lists the others, hence the API's workflow)."""
    dag = workflow._workflow.dag
    return [
        Job(job.jobid, job.rule.name, dict(job.wildcards_dict), "", [str(f) for f in job.output],
            [str(f) for f in job.log])  # fmt: skip
        for job in dag.jobs
    ]


def _cores(request: Request, profile: Profile) -> int | None:
    """`--cores` for local execution; unset for a cluster executor (as `snakemake` leaves it):
    Snakemake caps every job's threads at `cores` and passes it on to each cluster job, so the
    head machine's CPU count would limit jobs on the nodes. A profile's `cores` still applies."""
    return request.cores if request.touch or profile.local else None


def _execution(request: Request, profile: Profile) -> dict[str, Any]:
    """Arguments of `execute_workflow`: the profile's executor and settings, or a local touch."""
    execution = profile.build("execution", latency_wait=5)
    if request.touch:  # a local pseudo-executor: nothing is submitted, outputs are touched
        return {"executor": "local", "pseudo_executor": "touch", "execution_settings": execution}
    return {
        "executor": profile.executor,
        "pseudo_executor": "dryrun" if request.dryrun else None,
        "execution_settings": execution,
        "remote_execution_settings": profile.build("remote"),
        "scheduling_settings": profile.build("scheduling"),
        "executor_settings": profile.executor_settings,
    }


def _recipe_file(root: Path, config: dict[str, Any]) -> Path:
    """The validated recipe as a file under `.snakemake/ground/`, named by its content: jobs on any
    node read exactly what the head process planned with, and concurrent runs of other recipes
    never overwrite it. JSON, which Snakemake tries first: YAML would load yte (and numpy) too."""
    text = json.dumps(config, sort_keys=True, indent=1)
    path = root / ".snakemake" / "ground" / f"recipe-{hashlib.sha256(text.encode()).hexdigest()[:16]}.json"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
        tmp.write_text(text)
        os.replace(tmp, path)
    return path


def _job_environment(root: Path) -> None:
    """Jobs run `python` from PATH and import `ground`: make both this checkout's, also in
    `--sdm conda` environments and on cluster nodes (executors pass the environment on)."""
    for name, entry in (("PATH", str(Path(sys.executable).parent)), ("PYTHONPATH", str(root / "src"))):
        current = os.environ.get(name, "")
        if entry not in current.split(os.pathsep):
            os.environ[name] = os.pathsep.join(p for p in (entry, current) if p)
