# The README's two commands: `make run` (set up, run the tabular suite, write the report)
# and `make test` (set up, run the whole test suite). Both create .venv on first use.
PYTHON ?= python3
VENV ?= .venv
BIN = $(VENV)/bin
N_JOBS ?= 2
# Installed before the project so that pip does not pull a multi-GB CUDA build to satisfy
# the project's `torch>=2.4` range; on a GPU machine use e.g. TORCH_SPEC='torch==2.13.0'
# from the CUDA index, or any torch that satisfies the range.
TORCH_SPEC ?= torch==2.13.0

.PHONY: install run smoke test lint format bench clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH_SPEC)"
	$(BIN)/python -m pip install --quiet -e ".[dev,all]"
	touch $@

install: $(BIN)/.installed

run: install
	$(BIN)/harness run suites/tabular.yaml --n-jobs $(N_JOBS)

smoke: install
	$(BIN)/harness run suites/smoke.yaml

test: install
	$(BIN)/ruff check harness tests bench
	$(BIN)/python -m pytest -n 2 --durations=15

lint: install
	$(BIN)/ruff check harness tests bench
	$(BIN)/ruff format --check harness tests bench

format: install
	$(BIN)/ruff format harness tests bench
	$(BIN)/ruff check --fix harness tests bench

bench: install
	$(BIN)/python bench/overhead.py

clean:
	rm -rf $(VENV) reports/*/ .pytest_cache .ruff_cache
