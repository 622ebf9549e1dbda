"""`ground data convert`, `ground eval --predictions`, `ground metrics --compare`, `ground report`
on the published Charades-STA format (tests/fixtures/evalsets), checked against an independent
computation of R@1 / mIoU written here from the raw lines."""

import csv
import json
import math
import re
from pathlib import Path

import duckdb
import pytest
from ground_cli.main import app
from typer.testing import CliRunner

FIXTURES = Path(__file__).parents[1] / "fixtures" / "evalsets"
runner = CliRunner()


@pytest.fixture()
def project(tmp_path, monkeypatch):
    """A project folder (a Snakefile marks it as the root) with the demo recipe, whose run
    store is store.duckdb in it."""
    (tmp_path / "Snakefile").write_text("")
    recipe = (Path(__file__).parents[2] / "config.yaml").read_text()
    (tmp_path / "config.yaml").write_text(recipe.replace("results/ground.duckdb", "store.duckdb"))
    monkeypatch.chdir(tmp_path)
    return tmp_path


# More lines in the published format (one decimal, `##` before the query), two past the end
# (with the fixture's own, three ends are clipped).
EXTRA = """3MSZA 5.2 12.9##a person takes a picture.
3MSZA 11.0 18.3##person puts the bag on the floor.
3MSZA 27.5 33.8##the person switches off the light.
AO8RW 3.1 9.4##person opens a book.
AO8RW 8.7 15.0##a person sits on the couch.
AO8RW 19.6 26.2##the person is drinking from a cup.
AO8RW 30.1 35.0##person walks out of the room.
AO8RW 14.4 21.9##a person holds a pillow.
"""


def raw_dir(project):
    """The fixture's dirty lines (rejected, reported) plus EXTRA, as Charades-STA publishes them."""
    raw = project / "raw"
    raw.mkdir()
    (raw / "Charades_v1_test.csv").write_bytes((FIXTURES / "Charades_v1_test.csv").read_bytes())
    (raw / "charades_sta_test.txt").write_text((FIXTURES / "charades_sta_test.txt").read_text() + EXTRA)
    return raw


def convert(project):
    data = project / "d.jsonl"
    result = runner.invoke(app, ["data", "convert", "charades_sta", "--raw", str(raw_dir(project)), "--split",
                                 "test", "--out", str(data), "--max-reject-fraction", "0.5"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "4 rejected" in result.output and "3 clipped" in result.output
    return data


def independent_truths(raw):
    """(video, query, start, end, duration) of every valid line, ends clipped to the duration."""
    lengths = {row["id"]: row["length"] for row in csv.DictReader(open(raw / "Charades_v1_test.csv"))}
    truths = []
    for line in (raw / "charades_sta_test.txt").read_text().splitlines():
        head, _, query = line.partition("##")
        parts = head.split()
        if len(parts) != 3 or parts[0] not in lengths or not lengths[parts[0]]:
            continue
        start, end, duration = float(parts[1]), float(parts[2]), float(lengths[parts[0]])
        if end <= start:
            continue
        truths.append((parts[0], query, start, min(end, duration), duration))
    return truths


def iou(a, b):
    inter = max(0.0, min(a[1], b[1]) - max(a[0], b[0]))
    return inter / (max(a[1], b[1]) - min(a[0], b[0]))


def test_charades_predictions_match_an_independent_computation(project):
    data = convert(project)
    records = [json.loads(line) for line in data.read_text().splitlines()]
    truths = independent_truths(project / "raw")
    assert len(truths) == 12
    assert [(r["meta"]["video_id"], r["meta"]["segment_s"][1]) for r in records] == [(t[0], t[3]) for t in truths]
    # Answers as models write them: relative spans, seconds, junk; one record left unanswered.
    styles = [
        lambda s, e, d: f"{{{s / d:.2f}, {e / d:.2f}}}",
        lambda s, e, d: f"The moment is from {s + 1:.1f} to {e + 3:.1f} seconds.",
        lambda s, e, d: "Sorry, I can't find it.",
        lambda s, e, d: f"[{s / d:.2f},{(s + e) / 2 / d:.2f}]",  # a box, not a span: unparsable
    ]
    answers, predicted = {}, []
    for k, (record, (_, _, start, end, duration)) in enumerate(zip(records[:-1], truths)):
        style = styles[k % len(styles)]
        answers[record["id"]] = style(start, end, duration)
        if k % 4 == 0:
            predicted.append((round(start / duration, 2) * duration, round(end / duration, 2) * duration))
        elif k % 4 == 1:
            predicted.append((start + 1, min(end + 3, duration)))
        else:
            predicted.append(None)
    predicted.append(None)  # the unanswered record
    preds = project / "p.jsonl"
    preds.write_text("".join(json.dumps({"id": i, "answer": a}) + "\n" for i, a in answers.items()))
    result = runner.invoke(app, ["eval", "charades", "--predictions", str(preds), "--data", str(data), "--json"])
    assert result.exit_code == 0, result.output
    scores = json.loads(result.stdout)
    ious = [0.0 if p is None else iou(p, (t[2], t[3])) for p, t in zip(predicted, truths)]
    n = len(truths)
    for threshold in (0.3, 0.5, 0.7):
        assert scores[f"R1@{threshold}"] == pytest.approx(100 * sum(i >= threshold for i in ious) / n)
    assert scores["mIoU"] == pytest.approx(100 * sum(ious) / n)
    assert (scores["total"], scores["missing"]) == (n, 1)
    assert scores["unparsable"] == sum(p is None for p in predicted)
    # the scores are in the run store, tagged with the data's and the predictions' sha256
    con = duckdb.connect(str(project / "store.duckdb"), read_only=True)
    rows = con.execute("SELECT name, value, data_sha256, checkpoint_sha256 FROM metrics WHERE benchmark = 'charades'").fetchall()
    con.close()
    stored = {name: value for name, value, _, _ in rows}
    assert stored["mIoU"] == pytest.approx(scores["mIoU"])
    assert all(len(d) == 64 and len(c) == 64 for _, _, d, c in rows)


def test_data_convert_writes_spans_in_the_form_asked(project):
    """`--spans bins:100`: the same records, each span two bin indexes of the truth's; a bad
    form is a one-line error."""
    decimals = [json.loads(line) for line in convert(project).read_text().splitlines()]
    binned = project / "bins.jsonl"
    result = runner.invoke(app, ["data", "convert", "charades_sta", "--raw", str(project / "raw"), "--split", "test",
                                 "--out", str(binned), "--max-reject-fraction", "0.5", "--spans", "bins:100"])  # fmt: skip
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in binned.read_text().splitlines()]
    assert [r["id"] for r in records] == [r["id"] for r in decimals]
    for record in records:
        start, end = record["meta"]["segment_s"]
        duration = record["meta"]["duration"]
        bins = [min(99, math.floor(100 * t / duration + 1e-9)) for t in (start, end)]
        assert re.findall(r"\{([^}]*)\}", record["conversations"][1]["value"]) == [f"{bins[0]}, {bins[1]}"]
    result = runner.invoke(app, ["data", "convert", "charades_sta", "--raw", str(project / "raw"), "--split", "test",
                                 "--out", str(binned), "--coords", "bins:1"])  # fmt: skip
    assert result.exit_code == 2 and "--coords/--spans: coordinate form 'bins:1'" in result.output


def test_compare_and_report_two_evaluations(project):
    data = convert(project)
    records = [json.loads(line) for line in data.read_text().splitlines()]
    run_ids = []
    for answer in ("{0.0, 1.0}", "nothing"):
        preds = project / "p.jsonl"
        preds.write_text("".join(json.dumps({"id": r["id"], "answer": answer}) + "\n" for r in records))
        result = runner.invoke(app, ["eval", "charades", "--predictions", str(preds), "--data", str(data), "--json"])
        assert result.exit_code == 0, result.output
        con = duckdb.connect(str(project / "store.duckdb"), read_only=True)
        run_ids.append(con.execute("SELECT id FROM runs ORDER BY started DESC LIMIT 1").fetchone()[0])
        con.close()
    config = []
    result = runner.invoke(app, ["metrics", "--compare", *run_ids, "--json", *config])
    assert result.exit_code == 0, result.output
    rows = {r["name"]: r for r in json.loads(result.stdout)}
    assert rows["mIoU"]["b"] == 0.0 and rows["mIoU"]["b - a"] == pytest.approx(-rows["mIoU"]["a"])
    assert rows["unparsable"]["b"] == len(records)
    result = runner.invoke(app, ["report", "--run", run_ids[0], *config])
    assert result.exit_code == 0, result.output
    page = Path(result.stdout.strip()).read_text()
    assert "charades" in page and "29.60" in page  # the paper's R1@0.5 beside ours
    assert page.count("<svg") >= 1  # an example drawn on a timeline
    # typical failures: the whole video as the answer misses every query under half its length
    short = sum(r["meta"]["segment_s"][1] - r["meta"]["segment_s"][0] < 0.5 * r["meta"]["duration"] for r in records)
    assert short > 0
    assert f"<b>{short}</b> of {len(records)} (0 unparsable); 1 distinct answers" in page
    assert f"the commonest given {len(records)} times: <code>{{0.0, 1.0}}</code>" in page
    result = runner.invoke(app, ["report", "--run", run_ids[1], *config])
    page = Path(result.stdout.strip()).read_text()
    assert f"<b>{len(records)}</b> of {len(records)} ({len(records)} unparsable)" in page
    result = runner.invoke(app, ["metrics", "--compare", run_ids[0], "nope", *config])
    assert result.exit_code == 2 and "run 'nope' has no metrics" in result.output
