"""The convert step (rule convert_dataset): `run` is the step; converters of published formats live
in `sources`, one module per source family."""
