"""The hub download: from a local mirror and from a fake hub, lock file, reruns, checksums, gating.

.venv/bin/pytest -q tests/unit/test_hub.py

No network: the mirror is tests/fixtures/hub_mirror (laid out like the hub, SHA256SUMS per
repo); the "hub" is a tiny HTTP server on 127.0.0.1 answering the few endpoints
huggingface_hub's snapshot_download calls (repo info, tree, resolve), serving the same files.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest

from ground.common.config import validate
from ground.download.hub import (
    LOCK_NAME,
    ChecksumError,
    HubAccessError,
    Request,
    fetch,
    read_sums,
    requests_for,
)
from ground.download.run import download_hub

MIRROR = Path(__file__).parents[1] / "fixtures" / "hub_mirror"
HUB_DATASETS = ["llava_pretrain", "valley_pretrain", "wavcaps", "llava_mix665k", "valley_instruct"]
COMMIT = "0123456789abcdef0123456789abcdef01234567"
PINS = {
    "zwli/GroundingGPT": "main",
    "liuhaotian/LLaVA-Pretrain": COMMIT,
    "luoruipu1/Valley-webvid2M-Pretrain-703K": COMMIT,
    "cvssp/WavCaps": COMMIT,
    "liuhaotian/LLaVA-Instruct-150K": COMMIT,
    "luoruipu1/Valley-Instruct-73k": COMMIT,
}


def hub_download(root: Path, mirror: Path | str = MIRROR, datasets=HUB_DATASETS) -> dict:
    raw = {"download": {"source": "hub", "root": str(root), "datasets": list(datasets),
                        "revisions": PINS, "mirror": str(mirror), "workers": 2}}  # fmt: skip
    return validate(raw)["download"]


def test_mirror_fetch_lands_where_converters_read_and_reruns_copy_nothing(tmp_path):
    root = tmp_path / "root"
    cfg = hub_download(root)
    authors = ["Stage1/Wavecaps.json", "Stage2/refcoco.json"]
    summary = download_hub(cfg, authors_files=authors)

    raw = root / "raw"
    for path in ["llava_pretrain/blip_laion_cc_sbu_558k.json", "valley_pretrain/train.json",
                 "llava_mix665k/llava_v1_5_mix665k.json", "valley_instruct/valley_instruct_73k.json",
                 "wavcaps/as_final.json", "wavcaps/bbc_final.json", "wavcaps/fsd_final.json",
                 "wavcaps/sb_final.json", "wavcaps/json_files/SoundBible/sb_final.json",
                 "authors/Stage1/Wavecaps.json", "authors/Stage2/refcoco.json"]:  # fmt: skip
        assert (raw / path).is_file(), path
    assert not (raw / "authors" / "Stage3").exists()  # only the authors' files asked for
    assert (raw / "wavcaps/as_final.json").samefile(raw / "wavcaps/json_files/AudioSet_SL/as_final.json")
    records = json.loads((raw / "llava_pretrain/blip_laion_cc_sbu_558k.json").read_text())
    for record in records:  # the records' image paths resolve under the media folder
        assert (root / "media/llava_pretrain" / record["image"]).is_file(), record["image"]
    assert (root / "media/wavcaps/SoundBible/2219.flac").is_file()
    assert (root / "models").is_dir()
    assert summary["archives"] == {"raw/llava_pretrain/images.zip": 2,
                                   "raw/wavcaps/Zip_files/SoundBible/SoundBible.zip": 2}  # fmt: skip
    assert summary["files_fetched"] == 12 and summary["files_skipped"] == 0
    manual = {entry["dataset"]: entry["manual"] for entry in summary["manual"]}
    assert set(manual) == {"valley_pretrain", "llava_mix665k", "valley_instruct"}  # media by hand
    assert f"{root}/media/webvid/" in manual["valley_pretrain"]

    lock = json.loads((root / LOCK_NAME).read_text())
    entry = lock["repos"]["liuhaotian/LLaVA-Pretrain"]
    mirror_repo = MIRROR / "datasets/liuhaotian/LLaVA-Pretrain"
    assert entry["commit"] == f"mirror:{mirror_repo}" and entry["revision"] == COMMIT
    assert entry["files"]["images.zip"]["sha256"] == read_sums(mirror_repo / "SHA256SUMS")["images.zip"]
    assert entry["files"]["images.zip"]["size"] == (mirror_repo / "images.zip").stat().st_size

    again = download_hub(cfg, authors_files=authors)
    assert again["files_fetched"] == 0 and again["files_skipped"] == 12
    assert set(again["archives"].values()) == {0} and again["linked"] == []


def test_corrupt_mirror_file_fails_and_leaves_no_partial_file(tmp_path):
    mirror = tmp_path / "mirror"
    shutil.copytree(MIRROR, mirror)
    bad = mirror / "datasets/luoruipu1/Valley-Instruct-73k/valley_instruct_73k.json"
    bad.write_bytes(bad.read_bytes().replace(b"volleyball", b"basketball"))
    root = tmp_path / "root"
    with pytest.raises(ChecksumError) as err:
        download_hub(hub_download(root, mirror, ["valley_instruct"]))
    message = str(err.value)
    want = read_sums(bad.parent / "SHA256SUMS")["valley_instruct_73k.json"]
    got = hashlib.sha256(bad.read_bytes()).hexdigest()
    assert str(bad) in message and want in message and got in message, message
    assert list((root / "raw/valley_instruct").iterdir()) == []  # no copy, no .part


def test_without_sha256sums_the_lock_decides_what_is_fetched_again(tmp_path):
    mirror = tmp_path / "mirror"
    shutil.copytree(MIRROR / "datasets/luoruipu1", mirror / "datasets/luoruipu1")
    (mirror / "datasets/luoruipu1/Valley-Instruct-73k/SHA256SUMS").unlink()
    root = tmp_path / "root"
    cfg = hub_download(root, mirror, ["valley_instruct"])
    assert download_hub(cfg)["files_fetched"] == 1
    assert download_hub(cfg)["files_fetched"] == 0
    (root / "raw/valley_instruct/valley_instruct_73k.json").write_text("[]")  # edited locally
    assert download_hub(cfg)["files_fetched"] == 1
    assert json.loads((root / "raw/valley_instruct/valley_instruct_73k.json").read_text())


def test_a_promised_file_nobody_placed_names_the_manual_step(tmp_path):
    cfg = hub_download(tmp_path, MIRROR, ["valley_instruct", "refcoco"])
    cfg["revisions"] = PINS
    promised = [f"{tmp_path}/raw/valley_instruct/valley_instruct_73k.json",
                f"{tmp_path}/raw/refcoco/refs(unc).p", f"{tmp_path}/raw/refcoco/instances.json"]  # fmt: skip
    promised.append(f"{tmp_path}/raw/authors/Stage2/didemo.json")  # not in the authors' repo
    with pytest.raises(FileNotFoundError) as err:
        download_hub(cfg, promised=promised, authors_files=["Stage2/refcoco.json", "Stage2/didemo.json"])
    message = str(err.value)
    assert f"authors: {tmp_path}/raw/authors/Stage2/didemo.json" in message
    assert "zwli/GroundingGPT holds no such file" in message
    assert f"refcoco: {tmp_path}/raw/refcoco/refs(unc).p, {tmp_path}/raw/refcoco/instances.json" in message
    assert "https://github.com/lichengunc/refer" in message and f"{tmp_path}/raw/refcoco/" in message
    assert "valley_instruct" not in message  # that one was fetched


def test_requests_need_a_pin_and_warn_on_branch_names(tmp_path, caplog):
    cfg = hub_download(tmp_path, MIRROR, ["valley_instruct"])
    with pytest.raises(ValueError, match="no pinned revision for hub repo zwli/GroundingGPT"):
        unpinned = {k: v for k, v in PINS.items() if k != "zwli/GroundingGPT"}
        requests_for(dict(cfg, revisions=unpinned), ["Stage2/refcoco.json"])
    requests = requests_for(cfg, ["Stage2/refcoco.json"])
    assert [r.local_dir for r in requests] == ["raw/valley_instruct", "raw/authors"]
    with caplog.at_level(logging.WARNING, logger="ground.download.hub"):
        fetch(requests, tmp_path, mirror=str(MIRROR), workers=1)
    warnings = [r.getMessage() for r in caplog.records]
    assert any("zwli/GroundingGPT: revision 'main' is not a commit sha" in w for w in warnings)
    assert not any("Valley" in w for w in warnings)


def test_missing_mirror_folder_is_named(tmp_path):
    request = Request("lmsys/vicuna-7b-v1.5", "model", COMMIT, ("*.json",), "models/vicuna")
    with pytest.raises(FileNotFoundError, match=f"no folder {tmp_path}/lmsys/vicuna-7b-v1.5"):
        fetch([request], tmp_path / "root", mirror=str(tmp_path))


# ------------------------------------------------------------------------------ a fake hub


class FakeHub(BaseHTTPRequestHandler):
    """Serves MIRROR's dataset repos at commit COMMIT; `gated` repos refuse file downloads
    (and, with `gated_api`, their API too) the way the hub does: 403 + X-Error-Code GatedRepo."""

    gated: set[str] = set()
    gated_api = False
    lie_about: set[str] = set()  # paths whose stated sha256 is wrong
    requests: list[str] = []

    def log_message(self, *args) -> None:  # keep pytest's output clean
        pass

    def do_GET(self) -> None:
        self.answer(body=True)

    def do_HEAD(self) -> None:
        self.answer(body=False)

    def answer(self, body: bool) -> None:
        path = unquote(urlparse(self.path).path)
        type(self).requests.append(f"{self.command} {path}")
        parts = path.strip("/").split("/")
        if parts[0] == "api":  # /api/datasets/<owner>/<name>/(revision|tree)/<rev>
            repo = "/".join(parts[2:4])
            if self.refused(repo, api=True):
                return
            payload = ({"id": repo, "sha": COMMIT, "siblings": []} if parts[4] == "revision"
                       else self.tree(repo))  # fmt: skip
            return self.send(200, json.dumps(payload).encode(), {"Content-Type": "application/json"}, body)
        repo, rel = "/".join(parts[1:3]), "/".join(parts[5:])  # /datasets/<o>/<n>/resolve/<c>/<p>
        if self.refused(repo, api=False):
            return
        data = (MIRROR / "datasets" / repo / rel).read_bytes()
        entry = next(e for e in self.tree(repo) if e["path"] == rel)
        etag = entry["lfs"]["oid"] if "lfs" in entry else entry["oid"]
        self.send(200, data, {"X-Repo-Commit": COMMIT, "ETag": f'"{etag}"'}, body)

    def refused(self, repo: str, api: bool) -> bool:
        if repo in self.gated and (self.gated_api or not api):
            headers = {"X-Error-Code": "GatedRepo",
                       "X-Error-Message": f"Access to dataset {repo} is restricted."}  # fmt: skip
            self.send(403, b"", headers, body=True)
            return True
        return False

    def tree(self, repo: str) -> list[dict]:
        folder = MIRROR / "datasets" / repo
        entries = []
        for file in sorted(p for p in folder.rglob("*") if p.is_file() and p.name != "SHA256SUMS"):
            data, rel = file.read_bytes(), file.relative_to(folder).as_posix()
            entry = {"type": "file", "path": rel, "size": len(data),
                     "oid": hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()}  # fmt: skip
            if file.suffix == ".zip":  # archives are LFS files on the hub
                sha = hashlib.sha256(data + (b"x" if rel in self.lie_about else b"")).hexdigest()
                entry["lfs"] = {"oid": sha, "size": len(data), "pointerSize": 134}
            entries.append(entry)
        return entries

    def send(self, status: int, data: bytes, headers: dict, body: bool) -> None:
        self.send_response(status)
        for key, value in {**headers, "Content-Length": str(len(data))}.items():
            self.send_header(key, value)
        self.end_headers()
        if body:
            self.wfile.write(data)


@pytest.fixture
def hub(monkeypatch):
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setenv("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    FakeHub.gated, FakeHub.gated_api, FakeHub.lie_about, FakeHub.requests = set(), False, set(), []
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeHub)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


LLAVA = Request("liuhaotian/LLaVA-Pretrain", "dataset", COMMIT,
                ("blip_laion_cc_sbu_558k.json", "images.zip"), "raw/llava_pretrain")  # fmt: skip


def test_hub_fetch_checks_digests_locks_the_commit_and_reruns_offline(tmp_path, hub):
    root = tmp_path / "root"
    (result,) = fetch([LLAVA], root, workers=2, endpoint=hub)
    assert result.commit == COMMIT and result.fetched == ["blip_laion_cc_sbu_558k.json", "images.zip"]
    mirror_repo = MIRROR / "datasets/liuhaotian/LLaVA-Pretrain"
    assert (root / "raw/llava_pretrain/images.zip").read_bytes() == (mirror_repo / "images.zip").read_bytes()
    lock = json.loads((root / LOCK_NAME).read_text())["repos"]["liuhaotian/LLaVA-Pretrain"]
    assert lock["commit"] == COMMIT
    assert lock["files"]["images.zip"]["sha256"] == read_sums(mirror_repo / "SHA256SUMS")["images.zip"]

    FakeHub.requests.clear()
    (again,) = fetch([LLAVA], root, workers=2, endpoint=hub)
    assert again.fetched == [] and FakeHub.requests == []  # pinned to the locked commit: offline
    (root / "raw/llava_pretrain/blip_laion_cc_sbu_558k.json").unlink()
    (third,) = fetch([LLAVA], root, workers=2, endpoint=hub)
    assert third.fetched == ["blip_laion_cc_sbu_558k.json"] and third.skipped == ["images.zip"]


def test_hub_file_whose_digest_differs_from_the_listing_is_removed(tmp_path, hub):
    FakeHub.lie_about = {"images.zip"}
    with pytest.raises(ChecksumError, match="images.zip: sha256 .* does not match the hub's"):
        fetch([LLAVA], tmp_path, workers=1, endpoint=hub)
    assert not (tmp_path / "raw/llava_pretrain/images.zip").exists()


@pytest.mark.parametrize("gated_api", [False, True])
def test_gated_repo_is_one_clear_error(tmp_path, hub, gated_api):
    FakeHub.gated, FakeHub.gated_api = {"zwli/GroundingGPT"}, gated_api
    request = Request("zwli/GroundingGPT", "dataset", COMMIT, ("Stage2/refcoco.json",), "raw/authors")
    with pytest.raises(HubAccessError) as err:
        fetch([request], tmp_path, workers=1, endpoint=hub)
    assert str(err.value) == (
        "dataset repo zwli/GroundingGPT is gated: accept its terms at "
        "https://huggingface.co/datasets/zwli/GroundingGPT and log in with `hf auth login` or "
        "set HF_TOKEN"
    )
    assert err.value.__cause__ is None and err.value.__suppress_context__
