"""Fetch a recipe's hub files (datasets, base models, the authors' data), pinned and checksummed.

    >>> from ground.download.hub import fetch, requests_for
    >>> cfg = load_config("configs/groundinggpt-7b.yaml")["download"]
    >>> fetch(requests_for(cfg, ["Stage2/refcoco.json"]), Path(cfg["root"]), mirror=cfg["mirror"])

Usually run by the download step (`ground run --until download`, `ground.download.run`), which
then links annotation files and extracts archives. A repo's files land under `download.root`
at their path in the repo: `raw/<dataset>/` (a dataset's `HubFiles.patterns`), `raw/authors/`
(the files of `catalog.AUTHORS_REPO` asked for), `models/<model>/` (a base model).

Two sources: the hub (`huggingface_hub.snapshot_download`: resumable, parallel; HF_ENDPOINT or
`endpoint=` picks the server) or `download.mirror`, a local folder laid out like the hub
(`<mirror>/<owner>/<name>/` for models, `<mirror>/datasets/<owner>/<name>/` for datasets),
copied with the same `allow_patterns` semantics, in parallel, through `.part` files. Every file
is checked against what its source states: the hub's sha256 (LFS) or git blob id, or the mirror
repo's `SHA256SUMS` if it has one; a mismatch removes the file and raises ChecksumError naming
it and both digests.

`<root>/download.lock.json` records per repo the revision asked, the commit it resolved to
("mirror:<folder>" for a mirror) and each file's size and sha256 (and mtime, so that an
unchanged file is not hashed again). A file matching the lock is not fetched again; a recipe
pinned to the locked commit reruns without network. Tokens are left to huggingface_hub
(`hf auth login`, HF_TOKEN): never printed or stored.
"""

from __future__ import annotations

import glob
import hashlib
import json
import logging
import os
import re
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from huggingface_hub.utils import filter_repo_objects
from tqdm.auto import tqdm

from ground.common.catalog import AUTHORS_DIR, AUTHORS_REPO, MODELS, dataset
from ground.common.jsonl import write_text_atomic

log = logging.getLogger(__name__)

LOCK_NAME = "download.lock.json"
SUMS_NAME = "SHA256SUMS"
_COMMIT = re.compile(r"[0-9a-f]{40}")
_CHUNK = 1 << 20


class HubAccessError(RuntimeError):
    """A repo that cannot be read: gated, private, missing, or a revision it does not have."""


class ChecksumError(ValueError):
    """A fetched file whose digest differs from what its source states; the file was removed."""


@dataclass(frozen=True)
class Request:
    """One repo to fetch: its files matching `patterns` into `<root>/<local_dir>/`."""

    repo: str
    repo_type: str  # dataset | model
    revision: str
    patterns: tuple[str, ...]
    local_dir: str  # relative to the root: raw/<dataset>, raw/authors or models/<model>

    @property
    def url(self) -> str:
        return f"https://huggingface.co/{'datasets/' if self.repo_type == 'dataset' else ''}{self.repo}"


@dataclass
class Result:
    """What `fetch` did for one repo: the commit, every file's record, what it transferred."""

    repo: str
    commit: str
    files: dict[str, dict[str, Any]]  # path in repo -> {"size", "sha256", "mtime_ns"}
    fetched: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        fetched_bytes = sum(self.files[p]["size"] for p in self.fetched)
        return {"commit": self.commit, "fetched": len(self.fetched),
                "skipped": len(self.skipped), "bytes": fetched_bytes}  # fmt: skip


def requests_for(cfg: dict[str, Any], authors_files: Sequence[str] = ()) -> list[Request]:
    """The repos of a `download` section: every hub-carried dataset and model, and the
    authors' files asked for (`catalog.authors_files(convert.authors)`). Datasets and models the
    hub lacks are left to their `manual`."""
    requests = []
    for name in cfg["datasets"]:
        if (hub := dataset(name).hub) is not None:
            requests.append(Request(hub.repo, hub.repo_type, _pin(cfg, hub.repo), hub.patterns,
                                    f"raw/{name}"))  # fmt: skip
    for name in cfg["pretrained"]:
        if (hub := MODELS[name].hub) is not None:
            requests.append(Request(hub.repo, hub.repo_type, _pin(cfg, hub.repo), hub.patterns,
                                    f"models/{name}"))  # fmt: skip
    if authors_files:
        patterns = tuple(glob.escape(path) for path in authors_files)
        requests.append(Request(AUTHORS_REPO, "dataset", _pin(cfg, AUTHORS_REPO), patterns,
                                f"raw/{AUTHORS_DIR}"))  # fmt: skip
    repeated = sorted({r.repo for r in requests if [q.repo for q in requests].count(r.repo) > 1})
    if repeated:
        raise ValueError(f"download: hub repo(s) {repeated} requested for more than one folder")
    return requests


def _pin(cfg: dict[str, Any], repo: str) -> str:
    try:
        return cfg["revisions"][repo]
    except KeyError:
        raise ValueError(f"download.revisions: no pinned revision for hub repo {repo}") from None


def fetch(
    requests: Sequence[Request], root: Path, *, mirror: str = "", workers: int = 8,
    endpoint: str | None = None,
) -> list[Result]:  # fmt: skip
    """Fetch every request under `root` from the hub (or `mirror`); the lock is updated after
    each repo, so an interrupted run keeps what it finished."""
    root = Path(root)
    lock = read_lock(root)
    results = []
    for request in requests:
        if not _COMMIT.fullmatch(request.revision):
            log.warning("%s: revision %r is not a commit sha; %s records the commit it resolved to",
                        request.repo, request.revision, LOCK_NAME)  # fmt: skip
        locked = lock["repos"].get(request.repo, {})
        if mirror:
            result = _fetch_mirror(request, root, locked, Path(mirror), workers)
        else:
            result = _fetch_hub(request, root, locked, workers, endpoint)
        lock["repos"][request.repo] = {
            "repo_type": request.repo_type, "revision": request.revision,
            "commit": result.commit, "patterns": list(request.patterns),
            "local_dir": request.local_dir, "files": result.files,
        }  # fmt: skip
        write_lock(root, lock)
        results.append(result)
    write_lock(root, lock)  # also when nothing is fetched: the lock is the step's output
    return results


def write_lock(root: Path, lock: dict[str, Any]) -> None:
    write_text_atomic(Path(root) / LOCK_NAME, json.dumps(lock, indent=2, sort_keys=True) + "\n")


def read_lock(root: Path) -> dict[str, Any]:
    """`<root>/download.lock.json`, or an empty lock (none yet, or unreadable: all is rehashed)."""
    path, empty = Path(root) / LOCK_NAME, {"version": 1, "repos": {}}
    try:
        lock = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return empty
    except (OSError, json.JSONDecodeError) as err:
        log.warning("%s: unreadable (%s); every file will be checked again", path, err)
        return empty
    ok = isinstance(lock, dict) and isinstance(lock.get("repos"), dict)
    return lock if ok else empty


def select(paths: Sequence[str], request: Request) -> list[str]:
    """The paths matching the request's patterns (huggingface_hub's own `allow_patterns`
    matching: fnmatch, `*` crosses `/`); ValueError when none does."""
    chosen = sorted(filter_repo_objects(paths, allow_patterns=list(request.patterns)))
    for pattern in request.patterns:
        if not any(filter_repo_objects(chosen, allow_patterns=[pattern])):
            log.warning("%s: no file matches %r", request.repo, pattern)
    if not chosen:
        raise ValueError(f"{request.repo}: no file matches {list(request.patterns)}")
    return chosen


# ---------------------------------------------------------------------------------- the hub


def _fetch_hub(
    request: Request, root: Path, locked: dict[str, Any], workers: int, endpoint: str | None
) -> Result:
    from huggingface_hub import HfApi, snapshot_download
    from huggingface_hub.hf_api import RepoFile

    dest = root / request.local_dir
    old = locked.get("files", {}) if locked.get("patterns") == list(request.patterns) else {}
    if locked.get("commit") == request.revision and old and all(
        _unchanged(dest / p, r) for p, r in old.items()
    ):  # pinned to the commit the lock holds, nothing touched: no network needed
        return Result(request.repo, request.revision, old, skipped=sorted(old))
    api = HfApi(endpoint=endpoint)
    with _hub_access(request):
        info = api.repo_info(request.repo, repo_type=request.repo_type, revision=request.revision)
        commit, kind = info.sha, request.repo_type
        listing = api.list_repo_tree(request.repo, repo_type=kind, revision=commit, recursive=True)
        tree = {f.path: f for f in listing if isinstance(f, RepoFile)}
        wanted = select(list(tree), request)
        old = locked.get("files", {}) if locked.get("commit") == commit else {}
        todo = [p for p in wanted if not _unchanged(dest / p, old.get(p))]
        if todo:
            snapshot_download(
                request.repo, repo_type=request.repo_type, revision=commit, local_dir=dest,
                allow_patterns=[glob.escape(p) for p in todo], max_workers=workers,
                endpoint=endpoint,
            )  # fmt: skip
    files = {p: _verify_hub_file(request, dest / p, tree[p], old.get(p)) for p in wanted}
    return Result(request.repo, commit, files, todo, sorted(set(wanted) - set(todo)))


@contextmanager
def _hub_access(request: Request) -> Iterator[None]:
    """Turn the hub's access errors into one HubAccessError that says what to do."""
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    try:
        yield
    except (HfHubHTTPError, LocalEntryNotFoundError) as err:
        # a refused file download reaches us wrapped in LocalEntryNotFoundError ("no local copy")
        message = _access_message(request, err if isinstance(err, HfHubHTTPError) else err.__cause__)
        if message is None:
            raise
        raise HubAccessError(message) from None


def _access_message(request: Request, err: BaseException | None) -> str | None:
    from huggingface_hub import errors

    what = f"{request.repo_type} repo {request.repo}"
    login = f"accept its terms at {request.url} and log in with `hf auth login` or set HF_TOKEN"
    if isinstance(err, errors.GatedRepoError):
        return f"{what} is gated: {login}"
    if isinstance(err, errors.RevisionNotFoundError):
        return f"{what} has no revision {request.revision!r} (download.revisions)"
    if isinstance(err, errors.RepositoryNotFoundError):
        return f"{what} not found, or private or gated: check the name; if it is gated, {login}"
    status = getattr(getattr(err, "response", None), "status_code", None)
    if isinstance(err, errors.HfHubHTTPError) and status in (401, 403):
        return f"{what}: access refused (HTTP {status}); if it is gated, {login}"
    return None


def _verify_hub_file(request: Request, path: Path, remote: Any, old: dict | None) -> dict:
    """The lock record of a downloaded file after checking it against the hub's listing."""
    if not path.is_file():
        raise FileNotFoundError(f"{request.repo}: {remote.path} was not downloaded to {path}")
    if _unchanged(path, old):
        return old
    record, blob_id = _digest(path, git_blob=remote.lfs is None)
    if remote.lfs is not None:
        kind, want, got = "sha256", remote.lfs.sha256, record["sha256"]
    else:
        kind, want, got = "git blob id", remote.blob_id, blob_id
    if got != want or record["size"] != remote.size:
        path.unlink()
        raise ChecksumError(f"{request.repo}: {remote.path}: {kind} {got} ({record['size']} "
                            f"bytes) does not match the hub's {want} ({remote.size} bytes); "
                            f"{path} was removed")  # fmt: skip
    return record


# ------------------------------------------------------------------------------- the mirror


def mirror_folder(mirror: Path, request: Request) -> Path:
    """Where a mirror keeps a repo: <mirror>/datasets/<owner>/<name> or <mirror>/<owner>/<name>."""
    return mirror / ("datasets" if request.repo_type == "dataset" else "") / request.repo


def _fetch_mirror(
    request: Request, root: Path, locked: dict[str, Any], mirror: Path, workers: int
) -> Result:
    folder = mirror_folder(mirror, request)
    if not folder.is_dir():
        raise FileNotFoundError(
            f"mirror {mirror}: no folder {folder} for {request.repo_type} repo {request.repo} "
            f"(datasets at <mirror>/datasets/<owner>/<name>/, models at <mirror>/<owner>/<name>/)"
        )
    paths = [p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()]
    wanted = select([p for p in paths if p != SUMS_NAME], request)
    sums = read_sums(folder / SUMS_NAME)
    dest, old = root / request.local_dir, locked.get("files", {})
    total = sum((folder / p).stat().st_size for p in wanted)
    files, fetched = {}, []
    with (
        tqdm(total=total, unit="B", unit_scale=True, desc=request.repo, mininterval=1) as bar,
        ThreadPoolExecutor(max_workers=workers) as pool,
    ):
        guard = threading.Lock()

        def advance(n: int) -> None:
            with guard:
                bar.update(n)

        jobs = {pool.submit(_sync_file, folder / p, dest / p, sums.get(p), old.get(p), advance): p
                for p in wanted}  # fmt: skip
        for job in as_completed(jobs):
            if job.exception() is not None:
                for other in jobs:
                    other.cancel()
            files[jobs[job]], copied = job.result()
            if copied:
                fetched.append(jobs[job])
    commit = f"mirror:{folder}"
    return Result(request.repo, commit, dict(sorted(files.items())), fetched=sorted(fetched),
                  skipped=sorted(set(wanted) - set(fetched)))  # fmt: skip


def read_sums(path: Path) -> dict[str, str]:
    """A `sha256sum` listing (`<hex>  <path>` or `<hex> *<path>`) as path -> hex; {} if none."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return {}
    sums = {}
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        match = re.fullmatch(r"([0-9a-fA-F]{64}) [ *](.+)", line.strip())
        if match is None:
            raise ValueError(f"{path}:{number}: expected '<sha256>  <path>', got {line!r}")
        sums[match.group(2).removeprefix("./")] = match.group(1).lower()
    return sums


def _sync_file(
    src: Path, dest: Path, expected: str | None, old: dict | None, advance: Callable[[int], None]
) -> tuple[dict[str, Any], bool]:
    """Copy `src` to `dest` unless `dest` already holds it; (lock record, copied?)."""
    size = src.stat().st_size
    if _unchanged(dest, old) and old["size"] == size and expected in (None, old["sha256"]):
        advance(size)
        return old, False
    if expected is not None and dest.is_file() and dest.stat().st_size == size:
        record, _ = _digest(dest)
        if record["sha256"] == expected:
            advance(size)
            return record, False
    return _copy(src, dest, expected, advance), True


def _copy(src: Path, dest: Path, expected: str | None, advance: Callable[[int], None]) -> dict:
    """Copy through `<dest>.part`, hashing on the way; renamed into place only if it matches."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    digest = hashlib.sha256()
    try:
        with open(src, "rb") as source, open(part, "wb") as out:
            while chunk := source.read(_CHUNK):
                digest.update(chunk)
                out.write(chunk)
                advance(len(chunk))
        got = digest.hexdigest()
        if expected is not None and got != expected:
            raise ChecksumError(f"{src}: sha256 {got} does not match {SUMS_NAME} ({expected}); "
                                f"the copy was removed")  # fmt: skip
        os.replace(part, dest)
    finally:
        part.unlink(missing_ok=True)
    return _record(dest, got)


# ------------------------------------------------------------------------------ file records


def _record(path: Path, sha256: str) -> dict[str, Any]:
    info = path.stat()
    return {"size": info.st_size, "sha256": sha256, "mtime_ns": info.st_mtime_ns}


def _unchanged(path: Path, old: dict | None) -> bool:
    """`path` is the file the lock describes: same size and mtime (its sha256 is then trusted)."""
    if not old:
        return False
    try:
        info = path.stat()
    except FileNotFoundError:
        return False
    return info.st_size == old.get("size") and info.st_mtime_ns == old.get("mtime_ns")


def _digest(path: Path, git_blob: bool = False) -> tuple[dict[str, Any], str | None]:
    """The lock record of `path` (sha256 computed) and, if asked, its git blob id."""
    sha256 = hashlib.sha256()
    blob = hashlib.sha1(f"blob {path.stat().st_size}\0".encode()) if git_blob else None
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            sha256.update(chunk)
            if blob is not None:
                blob.update(chunk)
    return _record(path, sha256.hexdigest()), blob.hexdigest() if blob is not None else None
