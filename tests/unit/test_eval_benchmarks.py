"""Scoring of benchmark answers against converted records (`ground.eval.scoring`, `run`, `infer`)."""

import json
from pathlib import Path

import pytest

from ground.common.catalog import benchmark
from ground.common.formats import box_to_square, format_box
from ground.eval.infer import cut_answer, read_partial
from ground.eval.run import check_ids, read_predictions
from ground.eval.scoring import flatten, score_answers


def span_record(i, start, end, duration, split="test"):
    return {"id": f"v{i}", "task": "temporal_grounding", "split": split,
            "meta": {"segment_s": [start, end], "duration": duration}}  # fmt: skip


def test_span_scores_count_unparsable_and_missing_in_the_denominator():
    records = [span_record(0, 2.0, 6.0, 8.0), span_record(1, 0.0, 4.0, 8.0), span_record(2, 4.0, 8.0, 8.0),
               span_record(3, 1.0, 3.0, 8.0)]  # fmt: skip
    answers = {
        "v0": "It happens {0.25, 0.75}.",  # exactly 2..6 s
        "v1": "from 0.0 to 2.0 seconds",  # IoU 0.5
        "v2": "I cannot tell.",  # unparsable -> IoU 0
    }  # v3 missing
    scores = score_answers(benchmark("charades"), records, answers)["test"]
    assert scores["R1@0.5"] == 50.0 and scores["R1@0.7"] == 25.0
    assert scores["mIoU"] == pytest.approx(100 * (1 + 0.5) / 4)
    assert (scores["total"], scores["parsed"], scores["unparsable"], scores["missing"]) == (4, 2, 2, 1)
    # baseline: the mean relative span (0.15625, 0.65625) for every record, scored the same way
    mean = ((2 + 0 + 4 + 1) / 32, (6 + 4 + 8 + 3) / 32)
    ious = []
    for r in records:
        s, e = r["meta"]["segment_s"]
        p = (mean[0] * 8, mean[1] * 8)
        ious.append(max(0, min(e, p[1]) - max(s, p[0])) / (max(e, p[1]) - min(s, p[0])))
    assert scores["baseline/mIoU"] == pytest.approx(100 * sum(ious) / 4)


def test_box_answers_map_back_from_the_padded_square():
    width, height = 640, 480
    gt = [100.0, 50.0, 300.0, 250.0]
    record = {"id": "r0", "task": "rec", "split": "testA",
              "meta": {"bbox_xywh": [100, 50, 200, 200], "width": width, "height": height}}  # fmt: skip
    other = dict(record, id="r1", split="testB")
    right = format_box(box_to_square(gt, width, height))
    wrong = format_box(box_to_square([400, 300, 600, 460], width, height))
    results = score_answers(benchmark("refcoco"), [record, other], {"r0": right, "r1": wrong})
    assert results["testA"]["Acc@0.5"] == 100.0 and results["testB"]["Acc@0.5"] == 0.0
    flat = flatten(results)
    assert flat["testA/Acc@0.5"] == 100.0 and flat["testB/total"] == 1


def test_unrelated_tasks_are_not_scored_and_no_records_is_an_error():
    records = [span_record(0, 0, 1, 2), {"id": "c", "task": "video_caption", "split": "test", "meta": {}}]
    assert score_answers(benchmark("demo_tg"), records, {})["test"]["total"] == 1
    with pytest.raises(ValueError, match="no 'rec' records"):
        score_answers(benchmark("demo_rec"), records, {})


def test_ciou_boxes_and_missing_meta_is_named():
    record = {"id": "s0", "task": "sound_localization", "split": "test",
              "meta": {"boxes": [[0.1, 0.1, 0.5, 0.5]]}}  # fmt: skip
    scores = score_answers(benchmark("vggss"), [record], {"s0": "[0.1, 0.1, 0.5, 0.5]"})["test"]
    assert scores["cIoU@0.5"] == 100.0 and scores["AUC"] > 90
    bad = {"id": "s1", "task": "sound_localization", "split": "test", "meta": {}}
    with pytest.raises(ValueError, match="record s1: meta has no width, height"):
        score_answers(benchmark("demo_sl"), [bad], {})


def test_predictions_file_errors_name_the_line(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text('{"id": "a", "answer": "x"}\n{"id": "a", "answer": "y"}\n')
    with pytest.raises(ValueError, match=r"p.jsonl:2: duplicate id 'a'"):
        read_predictions(path)
    path.write_text('{"id": "a", "answer": "x"}\nnot json\n')
    with pytest.raises(ValueError, match=r"p.jsonl:2: not JSON"):
        read_predictions(path)
    path.write_text('{"id": "a", "text": "x"}\n')
    with pytest.raises(ValueError, match=r"p.jsonl:1: expected"):
        read_predictions(path)
    with pytest.raises(ValueError, match="1 ids are not records"):
        check_ids({"zzz": "x"}, [{"id": "a"}], path)


def test_partial_answers_drop_a_torn_last_line(tmp_path):
    path = tmp_path / "partial.jsonl"
    path.write_text(json.dumps({"id": "a", "answer": "[0.1, 0.2, 0.3, 0.4]"}) + "\n" + '{"id": "b", "ans')
    assert read_partial(path) == {"a": "[0.1, 0.2, 0.3, 0.4]"}
    assert path.read_text().endswith("\n") and "b" not in path.read_text()
    assert read_partial(Path(tmp_path / "none.jsonl")) == {}


def test_answers_are_cut_at_the_stop_string():
    assert cut_answer(" {0.10, 0.50}\n### Human: more") == "{0.10, 0.50}"
    assert cut_answer("no stop") == "no stop"
