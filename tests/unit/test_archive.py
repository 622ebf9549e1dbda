"""Archive extraction: hostile members are refused before anything is written; reruns skip.

.venv/bin/pytest -q tests/unit/test_archive.py

Archives are built in tmp_path by the tests themselves; no network.
"""

from __future__ import annotations

import io
import json
import stat
import tarfile
import zipfile
from pathlib import Path

import pytest

from ground.download.archive import archive_kind, extract


def make_zip(path: Path, members: dict[str, bytes], symlinks: dict[str, str] | None = None) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
        for name, pointee in (symlinks or {}).items():
            info = zipfile.ZipInfo(name)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            zf.writestr(info, pointee)
    return path


def make_tar(path: Path, members: dict[str, bytes], links: dict[str, str] | None = None) -> Path:
    with tarfile.open(path, "w:gz" if path.name.endswith(("gz", "tgz")) else "w") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
        for name, pointee in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type, info.linkname = tarfile.SYMTYPE, pointee
            tf.addfile(info)
    return path


def everything(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*"))


HOSTILE = [
    ("dotdot.zip", {"ok.txt": b"fine", "../evil": b"x"}, {}, "'../evil'"),
    ("absolute.zip", {"ok.txt": b"fine", "/tmp/ground-evil.txt": b"x"}, {}, "absolute path"),
    ("dotdot.tar", {"ok.txt": b"fine", "sub/../../evil": b"x"}, {}, "sub/../../evil"),
    ("absolute.tar.gz", {"ok.txt": b"fine", "/tmp/ground-evil.txt": b"x"}, {}, "ground-evil"),
    ("passwd.tgz", {"ok.txt": b"fine"}, {"passwd": "/etc/passwd"}, "'passwd'"),
    ("outside.tar", {"ok.txt": b"fine"}, {"up": "../../outside"}, "'up'"),
    ("link.zip", {"ok.txt": b"fine"}, {"passwd": "/etc/passwd"}, "symbolic link"),
]


@pytest.mark.parametrize(("name", "members", "links", "named"), HOSTILE)
def test_hostile_archive_is_refused_and_nothing_is_written(tmp_path, name, members, links, named):
    make = make_zip if name.endswith(".zip") else make_tar
    archive = make(tmp_path / name, members, links)
    work = tmp_path / "work"
    target = work / "media" / "x"
    target.mkdir(parents=True)
    with pytest.raises(ValueError) as err:
        extract(archive, target)
    assert name in str(err.value) and named in str(err.value), err.value
    assert everything(work) == ["media", "media/x"]  # no member, no scratch folder, no marker
    assert not Path("/tmp/ground-evil.txt").exists()


@pytest.mark.parametrize("name", ["images.zip", "images.tar", "images.tar.gz", "images.tgz"])
def test_good_archive_is_extracted_once(tmp_path, name):
    members = {"00453/004539375.jpg": b"jpeg-1", "00453/004539376.jpg": b"jpeg-2", "top.txt": b"t"}
    archive = (make_zip if name.endswith(".zip") else make_tar)(tmp_path / name, members)
    target = tmp_path / "media" / "llava_pretrain"
    written = extract(archive, target)
    assert [p.relative_to(target).as_posix() for p in written] == sorted(members)
    assert (target / "00453" / "004539376.jpg").read_bytes() == b"jpeg-2"
    marker = json.loads((target / f".extracted-{name}.json").read_text())
    assert marker["size"] == archive.stat().st_size and len(marker["sha256"]) == 64
    assert extract(archive, target) == []  # rerun: skipped by the marker
    assert everything(tmp_path / "media") == sorted(
        ["llava_pretrain", "llava_pretrain/00453", f"llava_pretrain/.extracted-{name}.json",
         "llava_pretrain/top.txt", *(f"llava_pretrain/{m}" for m in members if "/" in m)])  # fmt: skip


def test_archives_sharing_a_target_keep_each_others_files(tmp_path):
    target = tmp_path / "media" / "wavcaps"
    extract(make_zip(tmp_path / "SoundBible.zip", {"SoundBible/1.flac": b"a"}), target)
    extract(make_zip(tmp_path / "BBC.zip", {"BBC/2.flac": b"b"}), target)
    assert (target / "SoundBible" / "1.flac").is_file() and (target / "BBC" / "2.flac").is_file()


def test_changed_archive_is_extracted_again(tmp_path):
    target = tmp_path / "out"
    archive = make_zip(tmp_path / "a.zip", {"a.txt": b"one"})
    extract(archive, target)
    make_zip(archive, {"a.txt": b"two, longer"})
    assert extract(archive, target) == [target / "a.txt"]
    assert (target / "a.txt").read_bytes() == b"two, longer"


def test_internal_symlink_in_tar_is_kept(tmp_path):
    archive = make_tar(tmp_path / "a.tar", {"data/a.txt": b"a"}, {"latest": "data/a.txt"})
    target = tmp_path / "out"
    extract(archive, target)
    assert (target / "latest").is_symlink() and (target / "latest").read_bytes() == b"a"


def test_not_an_archive(tmp_path):
    with pytest.raises(ValueError, match="not an archive"):
        archive_kind(tmp_path / "notes.rar")
    broken = tmp_path / "broken.zip"
    broken.write_bytes(b"PK not really")
    with pytest.raises(ValueError, match="broken.zip: not a readable zip"):
        extract(broken, tmp_path / "out")
    assert not (tmp_path / "out").exists()
