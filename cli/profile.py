"""Snakemake profiles for `ground run --profile DIR`, read exactly as `snakemake --profile` reads them.

    ground run --profile profiles/slurm --dry-run     # plan with the SLURM profile's settings

The profile's `config.v8+.yaml` (or `config.yaml`) goes through Snakemake's own machinery: its
profile file parser (yte templates, `key: {a: 1}` mappings, paths relative to the profile), its
command-line parser (every option's type and parser: `--set-resources`, `--default-resources`,
`--jobs unlimited`, ...) and the executor plugin's `get_settings` for the `<executor>-...` keys.
Each key then lands in the field of the settings object that `snakemake` itself would fill.
"""

from __future__ import annotations

import contextlib
import functools
import io
from argparse import Namespace
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from snakemake.settings.types import (
    DAGSettings,
    DeploymentSettings,
    ExecutionSettings,
    OutputSettings,
    PreemptibleRules,
    RemoteExecutionSettings,
    ResourceSettings,
    SchedulingSettings,
)
from snakemake_interface_executor_plugins.registry import ExecutorPluginRegistry
from snakemake_interface_executor_plugins.settings import DeploymentMethod, ExecutorSettingsBase

PROFILE_FILES = ("config.v8+.yaml", "config.yaml")
_collected = False  # whether the executor registry holds every installed plugin


def executors(*, every: bool) -> ExecutorPluginRegistry:
    """Snakemake's executor registry: its built-in executors (local, dryrun, touch), and with
    `every` each installed executor plugin too (a profile may name any of them and set their keys).

    Snakemake fills the registry with every installed plugin when it is first imported. The SLURM
    plugin then asks `scontrol show config` for its help text (and loads pandas): 9 s, its
    timeout, on a machine with SLURM's client but no controller answering (a laptop, a CI machine
    after the cluster tests). A run without a profile executes locally and needs none of them.
    """
    global _collected
    registry = ExecutorPluginRegistry.__new__(ExecutorPluginRegistry)  # the one instance
    if not hasattr(registry, "plugins"):  # then `ExecutorPluginRegistry()` collects nothing
        registry.plugins = {}
        from snakemake.executors import dryrun, local, touch

        for name, module in (("local", local), ("dryrun", dryrun), ("touch", touch)):
            registry.register_plugin(name, module)
    if every and not _collected:
        registry.collect_plugins()
        _collected = True
    return registry


def _methods(*flag: DeploymentMethod):
    """`software-deployment-method: [conda]` or a flag like `use-conda: true`, merged."""

    def merge(value: Any, current: Any) -> set[DeploymentMethod]:
        chosen = set(flag or value) if value else set()
        return set(current or ()) | chosen

    return merge


def _not(value: Any, current: Any) -> bool:
    return not value


def _preemptible(value: Any, current: Any) -> PreemptibleRules:
    return PreemptibleRules(all=True) if not value else PreemptibleRules(rules=set(value))


# Snakemake option (argparse dest) -> (settings object, its field, how the value is turned into it).
# These are the options of `snakemake` that mean something to a `ground run`; the others
# (targets, --until, --config, --dry-run, --rerun-triggers, ...) are set by ground itself.
FIELDS: dict[str, tuple[str, str] | tuple[str, str, Any]] = {
    "executor": ("executor", "executor"),
    # ResourceSettings
    "cores": ("resource", "cores"),
    "jobs": ("resource", "nodes"),
    "local_cores": ("resource", "local_cores"),
    "max_threads": ("resource", "max_threads"),
    "resources": ("resource", "resources"),
    "set_threads": ("resource", "overwrite_threads"),
    "set_scatter": ("resource", "overwrite_scatter"),
    "set_resource_scopes": ("resource", "overwrite_resource_scopes"),
    "set_resources": ("resource", "overwrite_resources"),
    "default_resources": ("resource", "default_resources"),
    # ExecutionSettings
    "keep_going": ("execution", "keep_going"),
    "retries": ("execution", "retries"),
    "latency_wait": ("execution", "latency_wait"),
    "keep_incomplete": ("execution", "keep_incomplete"),
    "ignore_incomplete": ("execution", "ignore_incomplete"),
    "shadow_prefix": ("execution", "shadow_prefix"),
    "no_hooks": ("execution", "no_hooks"),
    "force_use_threads": ("execution", "use_threads"),
    "queue_input_wait_time": ("execution", "queue_input_wait_time"),
    "drop_metadata": ("execution", "keep_metadata", _not),
    "skip_script_cleanup": ("execution", "cleanup_scripts", _not),
    # RemoteExecutionSettings
    "jobname": ("remote", "jobname"),
    "jobscript": ("remote", "jobscript"),
    "max_status_checks_per_second": ("remote", "max_status_checks_per_second"),
    "seconds_between_status_checks": ("remote", "seconds_between_status_checks"),
    "container_image": ("remote", "container_image"),
    "preemptible_retries": ("remote", "preemptible_retries"),
    "preemptible_rules": ("remote", "preemptible_rules", _preemptible),
    "envvars": ("remote", "envvars"),
    "immediate_submit": ("remote", "immediate_submit"),
    "precommand": ("remote", "precommand"),
    # DeploymentSettings
    "software_deployment_method": ("deployment", "deployment_method", _methods()),
    "use_conda": ("deployment", "deployment_method", _methods(DeploymentMethod.CONDA)),
    "use_apptainer": ("deployment", "deployment_method", _methods(DeploymentMethod.APPTAINER)),
    "use_envmodules": ("deployment", "deployment_method", _methods(DeploymentMethod.ENV_MODULES)),
    "conda_prefix": ("deployment", "conda_prefix"),
    "conda_frontend": ("deployment", "conda_frontend"),
    "conda_cleanup_pkgs": ("deployment", "conda_cleanup_pkgs"),
    "conda_base_path": ("deployment", "conda_base_path"),
    "conda_not_block_search_path_envvars": ("deployment", "conda_not_block_search_path_envvars"),
    "apptainer_args": ("deployment", "apptainer_args"),
    "apptainer_prefix": ("deployment", "apptainer_prefix"),
    # OutputSettings
    "printshellcmds": ("output", "printshellcmds"),
    "show_failed_logs": ("output", "show_failed_logs"),
    "benchmark_extended": ("output", "benchmark_extended"),
    # DAGSettings
    "rerun_incomplete": ("dag", "force_incomplete"),
    "max_inventory_time": ("dag", "max_inventory_wait_time"),
    "trust_io_cache": ("dag", "trust_io_cache"),
    "max_checksum_file_size": ("dag", "max_checksum_file_size"),
    "allowed_rules": ("dag", "allowed_rules"),
    # SchedulingSettings
    "scheduler": ("scheduling", "scheduler"),
    "scheduler_subsample": ("scheduling", "subsample"),
    "max_jobs_per_second": ("scheduling", "max_jobs_per_second"),
    "max_jobs_per_timespan": ("scheduling", "max_jobs_per_timespan"),
    "prioritize": ("scheduling", "prioritytargets"),
}  # fmt: skip


# FIELDS' groups -> the Snakemake settings class each fills (`Profile.build`).
SETTINGS: dict[str, type] = {
    "resource": ResourceSettings,
    "execution": ExecutionSettings,
    "remote": RemoteExecutionSettings,
    "deployment": DeploymentSettings,
    "output": OutputSettings,
    "dag": DAGSettings,
    "scheduling": SchedulingSettings,
}


# Look like plugin settings but are per-job resources of the SLURM plugin (sbatch -A / -p).
RESOURCE_HINTS = {
    "slurm-account": "a resource: default-resources: {slurm_account: \"'name'\"}",
    "slurm-partition": "a resource: default-resources: {slurm_partition: \"'name'\"}",
}


class ProfileError(ValueError):
    """A profile that cannot be used; the message is one line naming the file."""


@dataclass
class Profile:
    """A profile's keys sorted into keyword arguments of Snakemake's settings classes."""

    path: Path | None = None
    executor: str = "local"
    settings: dict[str, dict[str, Any]] = field(default_factory=dict)
    executor_settings: ExecutorSettingsBase | None = None

    @property
    def local(self) -> bool:
        """Whether the executor runs jobs on this machine (local), not submits them (slurm)."""
        return executors(every=False).get_plugin(self.executor).common_settings.local_exec

    def kwargs(self, group: str, **defaults: Any) -> dict[str, Any]:
        """`defaults` (ground's own choices), overridden by what the profile sets."""
        return defaults | self.settings.get(group, {})

    def build(self, group: str, **defaults: Any) -> Any:
        """The settings object of `group` (ResourceSettings for "resource", ...) from `kwargs`."""
        return SETTINGS[group](**self.kwargs(group, **defaults))


def load_profile(directory: Path | None) -> Profile:
    """Read a Snakemake profile folder; ProfileError (one line) on an unknown key or a bad value."""
    if directory is None:
        executors(every=False)
        return Profile()
    executors(every=True)
    path = next((directory / n for n in PROFILE_FILES if (directory / n).is_file()), None)
    if path is None:
        raise ProfileError(f"{directory}: no {' or '.join(PROFILE_FILES)} in this profile folder")
    items = _read_items(path)
    parser = _parser()
    argv, dests = [], []
    plugin_dests = _plugin_dests()
    for key, value in items.items():
        action = parser._option_string_actions.get(f"--{key}")
        if action is None:
            hint = RESOURCE_HINTS.get(key, "not a snakemake option")
            raise ProfileError(f"{path}: unknown profile key {key!r} ({hint})")
        if action.dest not in FIELDS and action.dest not in plugin_dests:
            raise ProfileError(f"{path}: profile key {key!r} is not used by ground run (ground sets it)")
        if action.dest == "executor" and not executors(every=True).is_installed(str(value)):
            raise ProfileError(f"{path}: executor {value!r} needs snakemake-executor-plugin-{value}")
        dests.append(action.dest)
        argv += _call(parser, path, lambda a=action, k=key, v=value: parser.convert_item_to_command_line_arg(a, k, v))
    args = _call(parser, path, lambda: parser.parse_args(argv))
    profile = Profile(path=path)
    for dest in dests:
        if dest in plugin_dests:
            continue
        group, name, *convert = FIELDS[dest]
        value = getattr(args, dest)
        if group == "executor":
            profile.executor = value
            continue
        current = profile.settings.setdefault(group, {})
        current[name] = convert[0](value, current.get(name)) if convert else value
    profile.executor_settings = _executor_settings(profile.executor, args, path)
    return profile


def _read_items(path: Path) -> dict[str, Any]:
    from snakemake.profiles import ProfileConfigFileParser

    try:
        with path.open() as stream:
            return ProfileConfigFileParser().parse(stream)
    except Exception as err:  # yte, YAML and shape errors all mean the same: the file is bad
        raise ProfileError(f"{path}: {_one_line(err)}") from None


@functools.cache
def _parser():
    from snakemake.cli import get_argument_parser

    return get_argument_parser()


def _plugin_dests() -> set[str]:
    registry = executors(every=True)
    return {
        f"{plugin.cli_prefix}_{f.name}".replace("-", "_")
        for plugin in registry.plugins.values() if plugin.settings_cls is not None
        for f in fields(plugin.settings_cls)
    }  # fmt: skip


def _executor_settings(executor: str, args: Namespace, path: Path) -> ExecutorSettingsBase | None:
    plugin = executors(every=True).get_plugin(executor)
    if plugin.settings_cls is None:
        return None
    try:
        settings = plugin.get_settings(args)
        plugin.validate_settings(settings)
    except Exception as err:  # the plugin's own checks: WorkflowError, ValueError, ...
        raise ProfileError(f"{path}: {_one_line(err)}") from None
    return settings


def _call(parser: Any, path: Path, fn: Any) -> Any:
    """Run an argparse step; its errors (which would print usage and exit) become one line."""

    def error(message: str) -> None:
        raise ProfileError(f"{path}: {message}")

    parser.error = error  # this parser instance only; argparse reports through it
    try:
        with contextlib.redirect_stderr(io.StringIO()):
            return fn()
    except ProfileError:
        raise
    except (Exception, SystemExit) as err:  # a value Snakemake's parsers reject
        raise ProfileError(f"{path}: {_one_line(err)}") from None


def _one_line(err: BaseException) -> str:
    text = " ".join(str(err).split())
    return f"{type(err).__name__}: {text}" if text else type(err).__name__
