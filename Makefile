# Two commands on a fresh machine with only python3: `make demo`, `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-fast lint bench docs clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m jobs.demo

# the fast tier on every core, then the Ray and S3 tier in one process (its
# tests share one local Ray and one S3 server per session)
test: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow" -n auto tests
	$(BIN)/python -m pytest -q -m slow tests

# the inner loop: no Ray, no S3 server (tests needing them are marked slow), on every core
test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow" -n auto tests

lint: $(STAMP)
	$(BIN)/ruff check pipeline jobs tests
	$(BIN)/mypy pipeline jobs tests

# docs/cli.md and docs/analyses.md, from the parsers and the analyses' declarations
docs: $(STAMP)
	$(BIN)/python -m jobs.reference

bench: $(STAMP)
	$(BIN)/python -m jobs.benchmark pipeline-vs-loop
	$(BIN)/python -m jobs.benchmark multi-analysis

clean:
	rm -rf demo-data bench-data .pytest_cache .mypy_cache .ruff_cache
