"""`ground data ...`: dataset commands that work outside the pipeline.

    ground data check --config configs/groundinggpt-7b.yaml     # what is there, what to fetch
    ground data convert charades_sta --raw DIR --split test --out charades_test.jsonl
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from ground.download.check import Row

data_app = typer.Typer(help="Check and convert datasets from their published files.", no_args_is_help=True)


@data_app.command("convert")
def convert(
    dataset: Annotated[str, typer.Argument(help="A dataset of the catalog (ground.common.catalog), e.g. charades_sta, refcoco, didemo, flickr30k_entities.", show_default=False)],
    raw: Annotated[Path, typer.Option(help="Folder with the dataset's published annotation files (names as upstream).")],
    split: Annotated[str, typer.Option(help="Split to convert (e.g. train, test, val, testA).")],
    out: Annotated[Path, typer.Option(help="Output JSONL; a manifest (counts, rejections, clipping) is written beside it.")],
    seed: Annotated[int, typer.Option(help="Seed of the question-template draw.")] = 0,
    max_reject_fraction: Annotated[float, typer.Option(help="Fail when more of the raw records are malformed.")] = 0.05,
    authors: Annotated[bool, typer.Option("--authors", help="DIR holds zwli/GroundingGPT's converted JSON (Stage1/..., Stage2/...) to validate instead.")] = False,
    coords: Annotated[str, typer.Option(help="How boxes are written (convert.coords): float1 .. float6, or bins:N.")] = "float3",
    spans: Annotated[str, typer.Option(help="How time spans are written (convert.spans): float1 .. float6, or bins:N.")] = "float2",
) -> None:
    """Convert a dataset's published annotation files (no media needed) into conversation records.

    Media paths stay relative to the dataset's media folder. E.g. Charades-STA reads
    charades_sta_SPLIT.txt and Charades_v1_SPLIT.csv; RefCOCO/+/g the refer toolkit's
    refs(unc).p / refs(umd).p (loaded without running any code) and instances.json; VGGSS
    vggss.json; `ground data check` lists what every dataset needs.
    """
    from ground_cli.main import console, fail

    from ground.common.catalog import DATASETS
    from ground.common.formats import Coords, writing
    from ground.convert.published import convert_published

    if dataset not in DATASETS:
        raise fail(f"unknown dataset {dataset!r}; known: {', '.join(DATASETS)}")
    manifest = out.with_name(out.name.removesuffix(".jsonl") + ".manifest.json")
    try:
        forms = Coords.parse(coords), Coords.parse(spans)
    except ValueError as err:
        raise fail(f"--coords/--spans: {err}") from None
    try:
        with writing(*forms):  # as the convert step writes them (ground.convert.run)
            summary = convert_published(dataset, split, None, out, manifest, seed=seed, raw_dir=raw,
                                        max_reject_fraction=max_reject_fraction, authors=authors)  # fmt: skip
    except (OSError, ValueError) as err:
        raise fail(str(err)) from None
    console.print(f"{summary['records_out']} records -> {out}; {len(summary['rejected'])} rejected, "
                  f"{len(summary['clipped'])} clipped (see {manifest})", soft_wrap=True)  # fmt: skip
    for entry in summary["rejected"][:10]:
        console.print(f"  rejected: {entry['reason']}", highlight=False, soft_wrap=True)


@data_app.command("check")
def check(
    config: Annotated[Path | None, typer.Option("--config", "--recipe", "-c", help="Recipe file (default: the demo recipe, config.yaml).")] = None,
    set_: Annotated[list[str], typer.Option("--set", "-s", help="Override a recipe key: dotted.key=value (repeatable).")] = [],
    json_: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """What the recipe's datasets and base models need under download.root, what is there, and
    the command or manual step that gets the rest. Exits 1 when anything is missing."""
    from ground_cli.main import recipe
    from ground_cli.output import json_only, print_json

    from ground.download.check import DOWNLOAD, check_data

    cfg = recipe(config, set_)
    command = shlex.join([*DOWNLOAD.split(), *(["--config", str(config)] if config else []),
                          *(arg for item in set_ for arg in ("--set", item))])  # fmt: skip
    with json_only(json_):
        rows = check_data(cfg, command)
    if json_:
        print_json([row.as_dict() for row in rows])
    else:
        print_check(rows, cfg["download"]["root"])
    if any(row.status != "present" for row in rows):
        raise typer.Exit(1)


def print_check(rows: list[Row], root: str) -> None:
    """A summary table (files: annotation files, or a model's config and weights, present of
    expected), then for every row not present its missing files, an empty media folder and the
    fix, unwrapped so that paths and commands can be copied."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    colour = {"present": "green", "partial": "yellow", "missing": "red"}
    table = Table("kind", "name", "status", "files", "media / model folder", title=f"data under {root}")
    for row in rows:
        table.add_row(row.kind, escape(row.name), f"[{colour[row.status]}]{row.status}",
                      f"{row.files_present}/{row.files_expected}",
                      f"{escape(row.media)} ({row.media_files} files)")  # fmt: skip
    out = Console()
    out.print(table)
    for row in rows:
        if row.status == "present":
            continue
        out.print(f"\n[bold]{escape(row.name)}[/] ({row.status})", soft_wrap=True)
        for path in row.missing:
            out.print(f"  missing: {escape(path)}", soft_wrap=True, highlight=False)
        if row.kind == "dataset" and row.media_files == 0:
            out.print(f"  empty: {escape(row.media)}/", soft_wrap=True, highlight=False)
        for line in row.fix.splitlines():
            out.print(f"  fix: {escape(line)}", soft_wrap=True, highlight=False)
