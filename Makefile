# Two entry points for a fresh machine:  `make report` (the main job)  and  `make test`.
PYTHON ?= python3
VENV   ?= .venv
# torch first, pinned: on this project's machines 2.13.0 is a local CPU wheel; a range would
# make pip fetch a multi-GB CUDA build instead.
TORCH  ?= torch==2.13.0
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.rsstab-installed

.PHONY: setup lint test test-all report clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet "$(TORCH)"
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $(STAMP)

# One pytest worker per core (at most 4), each file's tests on one worker (its module fixtures
# are built once), each worker's torch on one thread (tests/conftest.py).
XDIST  := -n auto --maxprocesses 4 --dist loadfile

# The import contracts, the types and the lint ([tool.importlinter], [tool.mypy] and [tool.ruff] in
# pyproject.toml): seconds, under a minute on a fresh venv (mypy's cache lives in the venv).
lint: $(STAMP)
	$(BIN)/lint-imports --no-cache
	$(BIN)/mypy --cache-dir $(VENV)/.mypy_cache
	$(BIN)/ruff check --no-cache rsstab tests benchmarks simulations

# The lint first: a failure there is found before the minutes of tests.
test: lint
	$(BIN)/python -m pytest $(XDIST)

test-all: $(STAMP)
	$(BIN)/python -m pytest $(XDIST) -m "slow or not slow"

report: $(STAMP)
	$(BIN)/python simulations/make_report.py $(if $(QUICK),--quick)

clean:
	rm -rf $(VENV) build *.egg-info
