"""`ground data ...`: dataset commands that work outside the pipeline."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

data_app = typer.Typer(help="Convert datasets from their published files.", no_args_is_help=True)


@data_app.command("convert")
def convert(
    dataset: Annotated[str, typer.Argument(help="charades_sta, refcoco, refcoco+, refcocog or vggss.", show_default=False)],
    raw: Annotated[Path, typer.Option(help="Folder with the dataset's published annotation files (names as upstream).")],
    split: Annotated[str, typer.Option(help="Split to convert (e.g. test, val, testA).")],
    out: Annotated[Path, typer.Option(help="Output JSONL; a manifest (counts, rejections, clipping) is written beside it.")],
    seed: Annotated[int, typer.Option(help="Seed of the question-template draw.")] = 0,
    max_reject_fraction: Annotated[float, typer.Option(help="Fail when more of the raw records are malformed.")] = 0.05,
) -> None:
    """Convert an evaluation set's annotation files (no media needed) into conversation records.

    Charades-STA reads charades_sta_SPLIT.txt and Charades_v1_SPLIT.csv; RefCOCO/+/g the refer
    toolkit's refs(unc).p / refs(umd).p (loaded without running any code) and instances.json;
    VGGSS vggss.json.
    """
    from ground_cli.main import console, fail

    from ground.data.evalsets import EVALSETS, convert_evalset

    if dataset not in EVALSETS:
        raise fail(f"unknown dataset {dataset!r}; known: {', '.join(EVALSETS)}")
    manifest = out.with_name(out.name.removesuffix(".jsonl") + ".manifest.json")
    try:
        summary = convert_evalset(dataset, raw, split, out, manifest, seed=seed, max_reject_fraction=max_reject_fraction)
    except (OSError, ValueError) as err:
        raise fail(str(err)) from None
    console.print(f"{summary['records_out']} records -> {out}; {len(summary['rejected'])} rejected, "
                  f"{len(summary['clipped'])} clipped (see {manifest})", soft_wrap=True)  # fmt: skip
    for entry in summary["rejected"][:10]:
        console.print(f"  rejected: {entry['reason']}", highlight=False, soft_wrap=True)
