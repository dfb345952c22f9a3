# Two commands set everything up on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: run test lint bench clean

$(BIN)/activate:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/activate
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

run: $(VENV)/.installed
	$(BIN)/promptctl lint
	$(BIN)/promptctl list
	$(BIN)/promptctl log support/triage
	$(BIN)/promptctl render support/triage --sample 1

test: $(VENV)/.installed
	$(BIN)/ruff check .
	$(BIN)/pytest

bench: $(VENV)/.installed
	$(BIN)/python bench/log_history.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
