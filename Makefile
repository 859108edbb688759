# Two entry points (see README): `make reproduce` and `make test`. Both create the environment first.
PYTHON ?= python3.11
VENV ?= .venv
SCALE ?= mini
# Extra pip flags for torch, e.g. TORCH_PIP_FLAGS="--index-url https://download.pytorch.org/whl/cpu"
TORCH_PIP_FLAGS ?=
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: env test test-fast reproduce bench clean-env

env: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==2.13.0 $(TORCH_PIP_FLAGS)
	$(PY) -m pip install --quiet -e ".[test]"
	$(PY) -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $(STAMP)

test: env
	$(PY) -m pytest -q

# Everything but the tests marked slow (subprocesses, worker processes, notebooks)
test-fast: env
	$(PY) -m pytest -q -m "not slow"

reproduce: env
	$(PY) -m atb.reproduce --scale $(SCALE) $(if $(FORCE),--force,)

bench: env
	$(PY) benchmarks/bench_superbert.py

clean-env:
	rm -rf $(VENV)
