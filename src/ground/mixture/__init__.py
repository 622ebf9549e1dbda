"""The mixture step (rule assemble_mixture): `run`."""
