"""The `ground` command line (Typer): thin wiring over the ground library and Snakemake."""
