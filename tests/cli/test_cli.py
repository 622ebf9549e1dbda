"""The command line's contract: help everywhere, one-line errors with exit code 2 for bad input."""

import json
import subprocess
import sys

import pytest
from ground_cli.main import app
from typer.testing import CliRunner

runner = CliRunner()
COMMANDS = [[], ["run"], ["status"], ["runs"], ["metrics"], ["bench", "features"], ["bench", "train"], ["bench", "cli"],
            ["eval"], ["report"], ["data", "convert"], ["data", "check"], ["import", "groundinggpt"]]  # fmt: skip
HEAVY = ("torch", "transformers", "deepspeed", "snakemake", "duckdb")


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(command):
    result = runner.invoke(app, [*command, "--help"])
    assert result.exit_code == 0
    assert "Usage" in result.output


def test_help_imports_nothing_heavy():
    """`ground --help` and every `ground <cmd> --help` answer at once: the heavy libraries load
    inside the commands that use them."""
    code = f"""
import json, sys
from ground_cli.main import app
for command in {COMMANDS!r}:
    try:
        app([*command, "--help"], prog_name="ground")
    except SystemExit:
        pass
print(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(proc.stdout.splitlines()[-1]) == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "--until", "bogus"], "unknown step 'bogus'"),
        (["eval", "bogus"], "unknown benchmark 'bogus'"),
        (["eval", "charades", "--predictions", "nope.jsonl", "--data", "nope.jsonl"], "not found: nope.jsonl"),
        (["data", "convert", "coco", "--raw", ".", "--split", "val", "--out", "x.jsonl"], "unknown dataset 'coco'"),
        (["run", "--set", "eval.benchmarks=[mmlu]"], "eval.benchmarks: unknown ['mmlu']"),
        (["run", "--forcerun", "nope"], "unknown step 'nope'"),
        (["run", "--set", "convert.typo=1"], "unknown config key 'convert.typo'"),
        (["status", "--set", "features.on_error=never"], "features.on_error: 'never' is not one of"),
        (["run", "--set", "train.stage1.lr=quick"], "train.stage1.lr: expected float"),
    ],
)
def test_bad_input_is_a_one_line_error_with_exit_2(args, message):
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and message in lines[0], result.output


def test_missing_recipe_file_is_named(tmp_path):
    result = runner.invoke(app, ["status", "--config", str(tmp_path / "nope.yaml")])
    assert result.exit_code == 2
    assert "nope.yaml" in result.output
