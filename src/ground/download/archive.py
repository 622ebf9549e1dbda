"""Safe, resumable extraction of downloaded archives (zip, tar, tar.gz / tgz) into a folder.

    >>> from ground.download.archive import extract
    >>> extract(Path("resources/groundinggpt/raw/llava_pretrain/images.zip"),
    ...         Path("resources/groundinggpt/media/llava_pretrain"))   # the files written
    >>> extract(...)        # again: [] (the marker says this archive is already extracted)

Every member is checked before anything is written: an absolute path, a `..` that leaves the
target, a link pointing outside it (tar: Python's `tarfile.data_filter` rules; zip: any symlink
entry) or a device file raises ValueError naming the archive and the member. Members are
extracted into a temporary sibling folder and then moved into `target`, so a failed extraction
leaves nothing half-written there; several archives may share one target (WavCaps' zips all go
to media/wavcaps/). `<target>/.extracted-<archive name>.json` (the archive's size and sha256)
marks an archive as done.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import tarfile
import zipfile
from pathlib import Path, PurePosixPath

from ground.common.jsonl import write_text_atomic
from ground.tracking.record import sha256_file

_TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz")


def extract(archive: Path, target: Path) -> list[Path]:
    """Extract `archive` into `target`; the files written, or [] when it was extracted before."""
    archive, target = Path(archive), Path(target)
    size, mtime_ns = _stat(archive)
    marker = target / f".extracted-{archive.name}.json"
    if _marker_matches(marker, archive, size, mtime_ns):
        return []
    kind = archive_kind(archive)
    if kind == "zip":
        _check_zip(archive)
    else:
        _check_tar(archive, target)
    scratch = target.parent / f".{target.name}.{archive.name}.part"
    shutil.rmtree(scratch, ignore_errors=True)  # a previous run that died mid-way
    try:
        scratch.mkdir(parents=True)
        _unpack(archive, kind, scratch)
        written = _move_into(scratch, target)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    record = {"archive": archive.name, "size": size, "mtime_ns": mtime_ns,
              "sha256": sha256_file(archive), "files": len(written)}  # fmt: skip
    write_text_atomic(marker, json.dumps(record, indent=2) + "\n")
    return written


def archive_kind(archive: Path) -> str:
    """ "zip" or "tar" from the file name; ValueError for anything else."""
    name = archive.name.lower()
    if name.endswith(".zip"):
        return "zip"
    if name.endswith(_TAR_SUFFIXES):
        return "tar"
    raise ValueError(f"{archive}: not an archive this step extracts (.zip, .tar, .tar.gz, .tgz)")


def _stat(archive: Path) -> tuple[int, int]:
    try:
        info = archive.stat()
    except FileNotFoundError:
        raise FileNotFoundError(f"{archive}: archive not found") from None
    return info.st_size, info.st_mtime_ns


def _marker_matches(marker: Path, archive: Path, size: int, mtime_ns: int) -> bool:
    """The marker names this archive's size and either its mtime (cheap) or its sha256."""
    try:
        done = json.loads(marker.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return False  # none, or unreadable: extract (again), which rewrites it
    if not isinstance(done, dict) or done.get("size") != size:
        return False
    return done.get("mtime_ns") == mtime_ns or done.get("sha256") == sha256_file(archive)


def _refuse(archive: Path, member: str, why: str) -> ValueError:
    return ValueError(f"{archive}: refusing member {member!r}: {why}; nothing was extracted")


def _check_zip(archive: Path) -> None:
    try:
        with zipfile.ZipFile(archive) as zf:
            infos = zf.infolist()
    except zipfile.BadZipFile as err:
        raise ValueError(
            f"{archive}: not a readable zip ({err}); a split archive (.z01, .z02, ...) must be "
            f"joined first: zip -s 0 {archive.name} --out joined.zip"
        ) from None
    for info in infos:
        name = info.filename.replace("\\", "/")
        path = PurePosixPath(name)
        if path.is_absolute() or (path.parts and path.parts[0].endswith(":")):
            raise _refuse(archive, info.filename, "absolute path")
        if _escapes(path):
            raise _refuse(archive, info.filename, "'..' leads outside the target")
        if stat.S_ISLNK(info.external_attr >> 16):
            raise _refuse(archive, info.filename, "symbolic link")


def _escapes(path: PurePosixPath) -> bool:
    depth = 0
    for part in path.parts:
        depth += -1 if part == ".." else 0 if part in ("", ".") else 1
        if depth < 0:
            return True
    return False


def _check_tar(archive: Path, target: Path) -> None:
    dest = os.path.realpath(target)
    try:
        with tarfile.open(archive) as tf:
            for member in tf:
                # data_filter would strip a leading "/" and extract the member anyway
                if member.name.startswith(("/", "\\")):
                    raise _refuse(archive, member.name, "absolute path")
                if member.linkname.startswith("/"):
                    raise _refuse(archive, member.name, f"link to absolute {member.linkname!r}")
                try:
                    tarfile.data_filter(member, dest)
                except tarfile.FilterError as err:
                    raise _refuse(archive, member.name, str(err)) from None
    except tarfile.TarError as err:
        raise ValueError(f"{archive}: not a readable tar archive ({err})") from None


def _unpack(archive: Path, kind: str, into: Path) -> None:
    if kind == "zip":
        with zipfile.ZipFile(archive) as zf:
            zf.extractall(into)
    else:
        with tarfile.open(archive) as tf:
            tf.extractall(into, filter="data")


def _move_into(scratch: Path, target: Path) -> list[Path]:
    """Move every extracted file from `scratch` to the same relative place under `target`."""
    written = []
    for folder, dirs, files in os.walk(scratch):
        rel = Path(folder).relative_to(scratch)
        (target / rel).mkdir(parents=True, exist_ok=True)
        for name in files + [d for d in dirs if (Path(folder) / d).is_symlink()]:
            os.replace(Path(folder) / name, target / rel / name)
            written.append(target / rel / name)
    return sorted(written)
