# payments-ml: every target works on a fresh clone with only python3 present.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# No telemetry prompts or usage reporting: CI has no stdin and no internet.
export KEDRO_DISABLE_TELEMETRY := true
export DO_NOT_TRACK := 1
export RAY_USAGE_STATS_ENABLED := 0
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: help install install-dev run test lint format bench stop clean-data

help:
	@echo "make run    - install, then run every pipeline (about 1 M transactions)"
	@echo "make test   - install with dev extras, lint, run the whole test suite"
	@echo "make bench  - run the benchmarks and print their tables"
	@echo "make stop   - stop what 'make run' started"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $@ $(VENV)/.installed

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

run: install
	$(BIN)/kedro run
	@echo
	@echo "Transactions: data/01_raw/transactions/ (quarantine: data/01_raw/transactions_quarantine/)"
	@echo "Summary:      data/08_reporting/data_gen_summary.json"
	@echo "Model input:  data/05_model_input/training_set/  (snapshots: data/04_feature/)"
	@echo "Feast:        data/feast/ (registry, packed SQLite online store), service fraud_model_v1"
	@echo "Evaluation:   data/08_reporting/evaluation.json, plots in data/08_reporting/plots/"
	@echo "MLflow UI:    .venv/bin/mlflow ui --backend-store-uri sqlite:///data/mlflow/mlflow.db --port 5000"
	@echo "              (experiment payments-ml; model fraud_model, alias champion)"
	@echo "Kedro-Viz:    .venv/bin/kedro viz run   (lineage of every pipeline)"

lint: install-dev
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

format: install-dev
	$(BIN)/ruff check --fix src tests benchmarks
	$(BIN)/ruff format src tests benchmarks

test: lint
	$(BIN)/pytest

bench: install-dev
	$(BIN)/python -m benchmarks

stop:
	-$(BIN)/ray stop

clean-data:
	find data -mindepth 2 ! -name .gitkeep ! -path 'data/fixtures/*' -delete 2>/dev/null || true
	find data -mindepth 2 -type d -empty -delete 2>/dev/null || true
