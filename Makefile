# Two commands set everything up on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: run test lint bench bench-resolve clean

$(BIN)/activate:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/activate
	$(BIN)/pip install --quiet -e '.[cli,test]'
	touch $@

# The server on the embedded SQLite database (.promptctl/registry.db) over the example
# prompts in this repository, with a few releases promoted so the README's curl lines work.
run: $(VENV)/.installed
	$(BIN)/promptctl lint
	$(BIN)/promptctl db upgrade
	$(BIN)/promptctl promote support/triage --env development --if-changed
	$(BIN)/promptctl promote support/triage --env staging --if-changed
	$(BIN)/promptctl promote support/triage --env production --if-changed --yes --reason "make run"
	$(BIN)/promptctl promote summarize/article --env production --if-changed --yes
	$(BIN)/promptctl promote classify/sentiment --env production --if-changed --yes
	$(BIN)/promptctl promote extract/invoice --env staging --if-changed
	$(BIN)/promptctl status
	$(BIN)/promptctl serve --host 127.0.0.1 --port $${PROMPTCTL_PORT:-8080}

# The offline-docs browser test drives the system's chromium: installed here when missing and
# running as root; otherwise that test fails saying how to install it.
test: $(VENV)/.installed
	@command -v chromium >/dev/null || [ "$$(id -u)" != 0 ] || \
		(DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
		 DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) || \
		echo "make: could not install chromium; the browser test will fail" >&2
	$(BIN)/ruff check .
	$(BIN)/pytest

# Every benchmark; each prints absolute figures and a ratio against a same-run baseline.
bench: $(VENV)/.installed
	$(BIN)/python bench/log_history.py
	$(BIN)/python bench/resolve.py
	$(BIN)/python bench/client.py
	$(BIN)/python bench/client_import.py
	$(BIN)/python bench/render.py
	$(BIN)/python bench/ingest.py
	$(BIN)/python bench/summary.py

# Resolve over HTTP against a bare FastAPI app serving the same bytes; uses wrk when
# installed (apt-get install wrk), else a Python load generator. See bench/resolve.py.
bench-resolve: $(VENV)/.installed
	$(BIN)/python bench/resolve.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
