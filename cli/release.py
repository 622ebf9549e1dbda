"""`ground import ...`: bring a released checkpoint into our layout, outside the pipeline.

    ground import groundinggpt resources/groundinggpt/models/groundinggpt-release --out results/import/release
    ground import groundinggpt SRC --out DIR --compare-frame-encoder resources/groundinggpt/models/blip2-opt-2.7b

The pipeline's `import` step (`ground run --until import`) runs the same function.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

import_app = typer.Typer(help="Import released checkpoints into our checkpoint layout.", no_args_is_help=True)


@import_app.command("groundinggpt")
def groundinggpt(
    src: Annotated[Path, typer.Argument(help="The release folder (zwli/GroundingGPT: config.json, tokenizer files, .bin or safetensors weights).", show_default=False)],
    out: Annotated[Path, typer.Option(help="Output folder (must not exist or be empty): llm/, adapters.safetensors, grounding.json, encoders/, import.json.")],
    compare_frame_encoder: Annotated[Path | None, typer.Option(help="A BLIP-2 folder (e.g. Salesforce/blip2-opt-2.7b) whose frame-encoder tensors import.json compares by hash.")] = None,
) -> None:
    """Import the released GroundingGPT checkpoint: our checkpoint plus its frozen frame and audio encoders.

    Every release tensor is mapped or deliberately dropped (import.json says which); a missing,
    unexpected or mis-shaped tensor, or a .bin file holding more than tensors, stops the import
    and leaves nothing in OUT.
    """
    from ground_cli.main import console, fail
    from ground_cli.output import json_only, print_json

    from ground.release.layout import ReleaseError
    from ground.release.run import import_release

    try:
        with json_only():  # stdout is the JSON summary below, nothing else
            report = import_release(src, out, compare_frame_encoder=compare_frame_encoder)
    except (ReleaseError, FileNotFoundError) as err:
        raise fail(str(err)) from None
    console.print(f"imported {report['tensors']} tensors ({report['mapped']} mapped, "
                  f"{report['dropped']} dropped) into {out}")  # fmt: skip
    summary = {k: v for k, v in report.items() if k != "keys"}
    print_json(summary)
