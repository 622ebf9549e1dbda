"""The download step (rule download_data): `run` is the step, `hub`, `archive`, `check` and `layout`
its parts."""
