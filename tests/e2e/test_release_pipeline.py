"""The release recipe end to end on a tiny release: `ground run --config
configs/groundinggpt-7b-release.yaml --set download.mirror=<fixture>` downloads the released
checkpoint and the CLIP image encoder from a hub-like mirror built here (a checkpoint with every
key of the real release, tiny widths: tests/release_fixture.py), imports it, caches the
benchmarks' features with the imported frame and audio encoders, and scores charades,
refcoco/+/g and vggss with no training; the scores land in DuckDB and `ground report` shows them.
The benchmarks' annotations are placed by hand (as in test_real_data.py), their media written here.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import duckdb
import numpy as np
from PIL import Image
from release_fixture import write_release
from test_real_data import REPO, ground, place_by_hand
from transformers import CLIPVisionConfig, CLIPVisionModel

from ground.demo.media import encode_mp4, write_wav

BENCHMARKS = ("charades", "refcoco", "refcoco+", "refcocog", "vggss")
TINY = [
    "features.device=cpu", "features.dtype=float32", "features.resources.gpus=0",
    "features.image.size=8", "features.video.size=8", "features.video.frames=4",
    "eval.device=cpu", "eval.resources.gpus=0", "eval.limit=2", "eval.batch_size=2",
    "eval.max_new_tokens=4",
    "convert.max_reject_fraction=0.8",  # the fixtures hold deliberately malformed records
]  # fmt: skip


def build_mirror(mirror: Path) -> None:
    write_release(mirror / "zwli" / "GroundingGPT", fmt="bin")
    # 8 px, 4 px patches: 4 patches of width 12, the tiny release's image_token_len and projector input
    clip = CLIPVisionConfig(hidden_size=12, intermediate_size=24, num_hidden_layers=2,
                            num_attention_heads=2, image_size=8, patch_size=4)  # fmt: skip
    CLIPVisionModel(clip).save_pretrained(mirror / "openai" / "clip-vit-large-patch14-336")


def write_media(project: Path) -> int:
    """A small file for every media path the converted benchmark data names."""
    written, rng = 0, np.random.default_rng(0)
    for path in (project / "results" / "convert").glob("*/*.jsonl"):
        for line in path.read_text().splitlines():
            record = json.loads(line)
            for field in ("image", "video", "sound"):
                media = project / record[field] if record.get(field) else None
                if media is None or media.exists():
                    continue
                media.parent.mkdir(parents=True, exist_ok=True)
                if field == "image":
                    Image.fromarray(rng.integers(0, 255, (12, 16, 3), dtype=np.uint8)).save(media)
                elif field == "video":
                    encode_mp4(rng.integers(0, 255, (16, 16, 16, 3), dtype=np.uint8), 8, media)
                else:
                    write_wav(rng.integers(-3000, 3000, 16000 * 4), 16000, media)
                written += 1
    return written


def test_release_recipe_imports_and_scores_without_training(tmp_path: Path, copy_project) -> None:
    (tmp_path / "project").mkdir()
    project = copy_project(tmp_path / "project")
    shutil.copytree(REPO / "configs", project / "configs")
    build_mirror(tmp_path / "mirror")
    place_by_hand(project / "resources" / "groundinggpt")
    recipe = ["--config", "configs/groundinggpt-7b-release.yaml"]
    sets = [x for s in [f"download.mirror={tmp_path / 'mirror'}", *TINY] for x in ("--set", s)]
    proc = ground(project, "run", *recipe, *sets, "--until", "convert")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert write_media(project) > 0

    proc = ground(project, "run", *recipe, *sets)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    imported = project / "results" / "import" / "release"
    report = json.loads((imported / "import.json").read_text())
    assert report["tensors"] == 2493 and report["dropped"] == 1137
    assert not (project / "results" / "train").exists()  # nothing trained
    index = (project / "results" / "features" / "video.index.jsonl").read_text().splitlines()
    assert index  # the imported frame encoder encoded the Charades videos
    checkpoints = set()
    for name in BENCHMARKS:
        scores = json.loads((project / "results" / "eval" / name / "scores.json").read_text())
        assert scores["checkpoint"] == "results/import/release"
        assert scores["decoding"] == {"prompt_format": "training", "temperature": 0.0, "seed": 0}
        checkpoints.add(scores["checkpoint_sha256"])
    assert len(checkpoints) == 1
    con = duckdb.connect(str(project / "results" / "ground.duckdb"), read_only=True)
    rows = con.execute("SELECT DISTINCT benchmark, checkpoint_sha256 FROM metrics WHERE checkpoint_sha256 IS NOT NULL "
                       "AND benchmark IN ('charades', 'refcoco', 'refcoco+', 'refcocog', 'vggss')").fetchall()  # fmt: skip
    steps = {r[0] for r in con.execute("SELECT rule FROM jobs").fetchall()}
    con.close()
    assert {b for b, _ in rows} == set(BENCHMARKS) and {c for _, c in rows} == checkpoints
    assert "import_release" in steps and "train_stage" not in steps
    proc = ground(project, "report", *recipe)
    assert proc.returncode == 0, proc.stderr
    page = Path(proc.stdout.strip().splitlines()[-1])
    html = (page if page.is_absolute() else project / page).read_text()
    assert "refcoco" in html and "88.02" in html  # our score next to the paper's
