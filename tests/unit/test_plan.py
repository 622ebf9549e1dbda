"""`ground status` reasons: Snakemake's reason string broken down into config keys and code."""

import json

from ground.workflow.plan import changed_keys, explain, reason_kinds
from ground.workflow.steps import step, step_of_rule


def test_reason_kinds_split_snakemake_phrases():
    reason = "Missing output files: a.jsonl; Input files updated by another job: b.jsonl"
    assert [r["kind"] for r in reason_kinds(reason)] == ["missing-output", "upstream-will-run"]
    assert reason_kinds("") == []


def test_params_change_is_explained_from_the_previous_job_record(tmp_path):
    record = tmp_path / "x.job.json"
    record.write_text(json.dumps({"params": {"cfg": {"seed": 0, "splits": ["train"]}, "code": "aaa"}}))
    new = {"cfg": {"seed": 3, "splits": ["train"]}, "code": "bbb"}
    reasons = explain("Params have changed since last execution: x", [str(record)], new, "convert")
    details = {r["kind"]: r["detail"] for r in reasons}
    assert details["config-changed"] == "convert.seed: 0 -> 3"
    assert "aaa -> bbb" in details["code-changed"]


def test_params_change_without_a_record_still_reports_params():
    reasons = explain("Params have changed since last execution", ["missing.job.json"], {}, "convert")
    assert [r["kind"] for r in reasons] == ["params-changed"]


def test_changed_keys_is_recursive():
    assert changed_keys({"a": {"b": 1, "c": 2}}, {"a": {"b": 1, "c": 3}, "d": 4}, "s") == {
        "s.a.c": (2, 3),
        "s.d": (None, 4),
    }


def test_step_names_map_to_rules_and_back():
    assert step("convert").rules == ("convert_dataset",)
    assert step_of_rule("cache_features") == "features"
    assert step_of_rule("all") is None
    assert step("stage2").targets == ("results/train/stage2/model",)
    assert step_of_rule("train_stage", {"stage": "3"}) == "stage3"
    assert step_of_rule("evaluate_benchmark", {"benchmark": "demo_rec"}) == "eval"
    for name, text in (("bogus", "unknown step"),):
        try:
            step(name)
        except KeyError as err:
            assert text in err.args[0]
        else:
            raise AssertionError(f"{name} accepted")
