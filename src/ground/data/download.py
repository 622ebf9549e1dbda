"""The download step: bring raw annotations, media and base models under `download.root`.

    python -m ground.data.download --config config.yaml

For the demo recipe (`download.source: synthetic`) nothing is fetched: the corpus is generated
(seeded, deterministic) and the tiny "pretrained" parts are created with fixed seeds, saved in
the same Hugging Face format the 7B recipe's downloads have.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from ground.data.pretrained import create_language_parts
from ground.data.synthetic import generate_demo_corpus
from ground.features.encoders import create_tiny_encoders


def download(cfg: dict[str, Any]) -> dict[str, Any]:
    """Run the download step for the `download` config section; returns a summary."""
    if cfg["source"] != "synthetic":
        # The hub download (pinned revisions, mirrors, archive checks) is a step of its own that
        # this version does not contain yet; say so before anything is written.
        raise ValueError(
            f"download.source={cfg['source']!r} is not available in this version: place the raw "
            f"data under {cfg['root']}/raw/<dataset>/ by hand, or use the demo recipe"
        )
    return download_demo(Path(cfg["root"]), seed=cfg["seed"], corpus=cfg["demo"], models=cfg["models"])


def download_demo(root: Path, *, seed: int, corpus: dict, models: dict) -> dict[str, Any]:
    """Generate the synthetic corpus and the tiny models under `root`."""
    started = time.perf_counter()
    summary = generate_demo_corpus(
        root,
        seed=seed,
        splits=corpus["splits"],
        video_seconds=corpus["video_seconds"],
        video_fps=corpus["video_fps"],
        audio_seconds=corpus["audio_seconds"],
    )
    model_dir = root / "models"
    parts = create_language_parts(root / "raw", model_dir, seed=seed, sizes=models)
    parts |= create_tiny_encoders(
        model_dir, seed=seed, image_size=models["image_size"], frame_size=models["frame_size"]
    )
    return {
        "corpus": summary,
        "models": {name: str(path) for name, path in parts.items()},
        "seconds": round(time.perf_counter() - started, 2),
    }


def main() -> None:
    from ground.config import load_config

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="config.yaml")
    parser.add_argument("--set", action="append", default=[], dest="overrides")
    args = parser.parse_args()
    print(json.dumps(download(load_config(args.config, args.overrides)["download"]), indent=2))


if __name__ == "__main__":
    main()
