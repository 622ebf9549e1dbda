"""Shared by several steps: the recipe schema (`config`), the catalog of datasets, models and
benchmarks (`catalog`), coordinate formats (`formats`), JSON(L) files (`jsonl`), ffmpeg (`media`)."""
