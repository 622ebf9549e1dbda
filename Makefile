# Set-up is part of the two commands users type (see README): each creates or reuses .venv.
#   make run    -> ground run on the demo recipe
#   make test   -> the test suite
PY ?= python3
VENV := .venv
STAMP := $(VENV)/.installed
# torch is pinned to the CPU wheel here; GPU machines install their own torch before `make`.
TORCH ?= torch==2.13.0

.PHONY: run test lint venv

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(VENV)/bin/python || $(PY) -m venv $(VENV)
	$(VENV)/bin/python -c "import torch" 2>/dev/null || $(VENV)/bin/pip install -q "$(TORCH)"
	# DeepSpeed ships as source: built against the torch above, never an isolated (CUDA) one.
	$(VENV)/bin/pip install -q --no-build-isolation "deepspeed==0.19.8"
	$(VENV)/bin/pip install -q -e ".[dev]"
	touch $(STAMP)

run: $(STAMP)
	$(VENV)/bin/ground run $(ARGS)

test: $(STAMP)
	$(VENV)/bin/ruff check src cli tests benchmarks rules/scripts
	$(VENV)/bin/snakefmt --check Snakefile rules/
	$(VENV)/bin/snakemake --lint --cores 1 >/dev/null
	$(VENV)/bin/pytest -q $(ARGS)
