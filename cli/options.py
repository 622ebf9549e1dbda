"""Options several commands share."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

ConfigOpt = Annotated[
    Path, typer.Option("--config", "-c", help="Recipe file (default: the demo recipe, config.yaml).")
]
SetOpt = Annotated[
    list[str],
    typer.Option("--set", "-s", help="Override a recipe key: dotted.key=value (repeatable)."),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
ExpOpt = Annotated[
    str, typer.Option("--exp", help="Named experiment: its outputs go to experiments/NAME/ (see `ground exp`).")
]
