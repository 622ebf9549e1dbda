"""Stamps of the files a job read, and the scan that finds the jobs whose inputs changed since.

pytest tests/unit/test_stamps.py
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from types import SimpleNamespace

from ground.common.stamps import changes, stamp
from ground.tracking.record import tracked
from ground.workflow.inputs import changed_jobs, reasons


def test_unchanged_and_touched_files_are_no_change_but_content_and_deletion_are(tmp_path: Path) -> None:
    files = {name: tmp_path / name for name in ("same", "touched", "rewritten", "grown", "deleted")}
    for path in files.values():
        path.write_bytes(b"abc")
    stamps = stamp(files.values())
    assert changes(stamps) == []

    later = os.stat(files["touched"]).st_mtime_ns + 5_000_000_000
    os.utime(files["touched"], ns=(later, later))
    files["rewritten"].write_bytes(b"xyz")  # same size: only the hash can tell
    os.utime(files["rewritten"], ns=(later, later))
    files["grown"].write_bytes(b"abcd")
    files["deleted"].unlink()

    found = {Path(c["path"]).name: c for c in changes(stamps)}
    assert set(found) == {"rewritten", "grown", "deleted"}
    assert found["rewritten"]["change"] == "content" and "same size" in found["rewritten"]["detail"]
    assert "size 3 -> 4" in found["grown"]["detail"]
    assert found["deleted"]["change"] == "missing"


def test_a_folder_stands_for_its_files_and_missing_paths_are_not_stamped(tmp_path: Path) -> None:
    (tmp_path / "model" / "sub").mkdir(parents=True)
    (tmp_path / "model" / "config.json").write_text("{}")
    (tmp_path / "model" / "sub" / "weights.bin").write_bytes(b"\0" * 10)
    stamps = stamp([tmp_path / "model", tmp_path / "absent.json"])
    assert sorted(Path(p).name for p in stamps) == ["config.json", "weights.bin"]
    assert stamps[str(tmp_path / "model" / "sub" / "weights.bin")][0] == 10


def test_changed_jobs_reads_the_stamps_in_job_records_and_names_the_first_files(tmp_path: Path) -> None:
    media = [tmp_path / f"video_{i}.mp4" for i in range(5)]
    for path in media:
        path.write_bytes(b"frames")
    record = tmp_path / "results" / "features" / "shard0.job.json"
    job = SimpleNamespace(rule="cache_features", wildcards={}, params={"code": "c"}, log=[],
                          output=[str(record)])  # fmt: skip
    with tracked(job) as rec:
        rec.read(media[:1], stamps=stamp(media[1:]))
    assert set(json.loads(record.read_text())["read"]) == {str(m) for m in media}
    untouched = tmp_path / "results" / "convert.job.json"
    untouched.write_text(json.dumps({"read": stamp([media[0]])}))
    assert changed_jobs([tmp_path / "results"]) == {}

    for path in media[1:]:
        path.write_bytes(b"other frames")
    media[0].unlink()
    found = changed_jobs([tmp_path / "results", tmp_path / "nowhere"])
    assert set(found) == {str(record), str(untouched)}
    content, missing = reasons(found[str(record)])
    assert content["kind"] == "input-content" and content["detail"].endswith("and 1 more")
    assert [Path(f).name for f in content["files"]] == [f"video_{i}.mp4" for i in range(1, 5)]
    assert "video_1.mp4" in content["detail"] and "video_4.mp4" not in content["detail"]
    assert missing["kind"] == "input-missing" and "video_0.mp4" in missing["detail"]
    assert "restore it" in missing["detail"]
