# payments-ml: every target works on a fresh clone with only python3 present.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# No telemetry prompts or usage reporting: CI has no stdin and no internet.
export KEDRO_DISABLE_TELEMETRY := true
export DO_NOT_TRACK := 1
export RAY_USAGE_STATS_ENABLED := 0
export PIP_DISABLE_PIP_VERSION_CHECK := 1
# The embedded Ray cluster is closed to the network (docs/runbook.md, "Security"):
# - Ray's token authentication stays on: `ray start` and every client (kedro run, serve,
#   ray status, the dashboard's job API) carry the token in ~/.ray/auth_token (mode 600);
#   `.venv/bin/ray get-auth-token` prints it for the dashboard's login.
# - Ray keeps 127.0.0.1 as the node address (Ray 2.60 otherwise swaps it for the LAN
#   address and binds GCS, raylet and agents there); no other node can join it.
# - Serve's HAProxy is hardened by payments-ml-haproxy (src/payments_ml/serving/haproxy.py):
#   stats and metrics on 127.0.0.1, private admin socket, slow-header timeout, fast 503s.
export RAY_AUTH_MODE := token
export RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER := 0
export RAY_SERVE_HAPROXY_BINARY_PATH := $(CURDIR)/$(BIN)/payments-ml-haproxy
# Ray Serve's HAProxy ingress and direct data plane: 3.7x the throughput of the Python
# proxy on 2 cores (benchmarks/README.md).
export RAY_SERVE_ENABLE_HA_PROXY := 1
export RAY_SERVE_THROUGHPUT_OPTIMIZED := 1
RAY_PORT ?= 6379
RAY_HEAD := 127.0.0.1:$(RAY_PORT)
RAY_TOKEN := $${RAY_AUTH_TOKEN_PATH:-$$HOME/.ray/auth_token}

.PHONY: help install install-dev ray-head run serve test lint format bench mlflow viz feast-ui prometheus stop clean-data

help:
	@echo "make run       - install, then run every pipeline (about 1 M transactions); VERBOSE=1: every log line"
	@echo "make install / install-dev - the .venv with the project (install-dev: with the test and notebook tools)"
	@echo "make ray-head  - start a Ray head on 127.0.0.1:6379 if none runs (make run does)"
	@echo "make test      - install with dev extras, lint, run the whole test suite"
	@echo "make bench     - run the benchmarks and print their tables"
	@echo "make serve     - run the scorer in the foreground (development)"
	@echo "make mlflow    - MLflow UI on http://127.0.0.1:5000 (runs, models, the champion alias)"
	@echo "make viz       - Kedro-Viz on http://127.0.0.1:4141 (every pipeline's lineage)"
	@echo "make feast-ui  - Feast UI on http://127.0.0.1:8888 (entities, views, feature service)"
	@echo "make prometheus - Prometheus on http://127.0.0.1:9090 scraping the scorer and Ray (apt-get install prometheus)"
	@echo "make stop      - stop what 'make run' started"
	@echo "make lint / format / clean-data - ruff check / ruff fix and format / delete generated data"

# uv installs the same versions as pip, from the same index, in about 40 s where pip
# takes 2 minutes (a sixth of CI's budget); .venv/bin/pip stays for the user's own use.
# --compile-bytecode as pip does: with PYTHONDONTWRITEBYTECODE set (CI sets it), every
# process would otherwise compile Ray, Feast and MLflow from source: the tests took 2x.
$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(BIN)/uv: | $(BIN)/python
	$(BIN)/pip install --quiet "uv>=0.9,<1"

$(VENV)/.installed: pyproject.toml | $(BIN)/uv
	$(BIN)/uv pip install --quiet --compile-bytecode --python $(BIN)/python -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/uv
	$(BIN)/uv pip install --quiet --compile-bytecode --python $(BIN)/python -e ".[dev]"
	touch $@ $(VENV)/.installed

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

ray-head: install
	@$(BIN)/ray get-auth-token --generate >/dev/null 2>&1
	@[ ! -f "$(RAY_TOKEN)" ] || chmod 600 "$(RAY_TOKEN)"
	@mkdir -p logs
	@$(BIN)/ray status --address $(RAY_HEAD) >/dev/null 2>&1 || \
	{ $(BIN)/ray start --head --node-ip-address 127.0.0.1 --port $(RAY_PORT) \
	  --dashboard-host 127.0.0.1 --dashboard-port 8265 \
	  --object-store-memory 2000000000 --disable-usage-stats > logs/ray-start.log 2>&1 \
	  && echo "Ray head started on $(RAY_HEAD), dashboard http://127.0.0.1:8265 (log: logs/ray-start.log)" \
	  || { cat logs/ray-start.log; exit 1; }; }

# `make run VERBOSE=1`: every library's INFO on the console, as before the quiet console.
KEDRO_LOG := $(if $(VERBOSE),KEDRO_LOGGING_CONFIG=conf/logging-verbose.yml)

run: ray-head
	RAY_ADDRESS=$(RAY_HEAD) $(KEDRO_LOG) $(BIN)/kedro run
	@echo
	@# Traffic for the scorer's log, then a monitoring pass that judges it (score drift,
	@# served-feature drift): the whole run above monitored before any request was scored.
	@echo "Replaying 2000 transactions of the last day (summary: data/08_reporting/replay_summary.json)"
	@$(BIN)/python -m payments_ml.stream --rate 200 --limit 2000 > data/08_reporting/replay_summary.json \
	  || echo "Some replayed requests failed: see data/08_reporting/replay_summary.json"
	@# Its alerts are in the results block below; its console goes to a log of its own.
	@echo "Monitoring what the scorer logged: kedro run --pipelines monitoring (log: logs/monitoring-after-replay.log)"
	@RAY_ADDRESS=$(RAY_HEAD) $(KEDRO_LOG) $(BIN)/kedro run --pipelines monitoring > logs/monitoring-after-replay.log 2>&1 \
	  || { tail -n 30 logs/monitoring-after-replay.log; exit 1; }
	@echo
	@$(BIN)/python -m payments_ml.report
	@echo
	@echo "Transactions: data/01_raw/transactions/ (quarantine: data/01_raw/transactions_quarantine/)"
	@echo "Summary:      data/08_reporting/data_gen_summary.json"
	@echo "Model input:  data/05_model_input/training_set/  (snapshots: data/04_feature/)"
	@echo "Feast:        data/feast/ (registry, packed SQLite online store), service fraud_model_v1"
	@echo "Evaluation:   data/08_reporting/evaluation.json, plots in data/08_reporting/plots/"
	@echo "Monitoring:   data/08_reporting/data_quality.parquet, drift.json, alerts.jsonl"
	@echo "Scorer:       http://127.0.0.1:8000/score  (/score/batch, /health, /metrics, /docs)"
	@echo "Dashboard:    http://127.0.0.1:8000/dashboard  (live; scored transactions logged to data/07_model_output/)"
	@echo "Replay a day: .venv/bin/python -m payments_ml.stream --rate 50 --check   (one answer: --sample)"
	@echo "Ray:          http://127.0.0.1:8265  (dashboard; Serve tab for the scorer)"
	@echo "MLflow UI:    make mlflow   (http://127.0.0.1:5000)"
	@echo "              (experiment payments-ml; model fraud_model, alias champion)"
	@echo "Kedro-Viz:    make viz   (http://127.0.0.1:4141, lineage of every pipeline)"
	@echo "Feast UI:     make feast-ui   (http://127.0.0.1:8888)"
	@echo "Stop:         make stop"

serve: ray-head
	RAY_ADDRESS=$(RAY_HEAD) $(BIN)/serve run deploy/serve_config.yaml

lint: install-dev
	$(BIN)/ruff check src tests benchmarks deploy/airflow
	$(BIN)/ruff format --check src tests benchmarks deploy/airflow

format: install-dev
	$(BIN)/ruff check --fix src tests benchmarks deploy/airflow
	$(BIN)/ruff format src tests benchmarks deploy/airflow

test: lint
	$(BIN)/pytest

bench: install-dev
	$(BIN)/python -m benchmarks

mlflow: install
	MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false $(BIN)/mlflow ui \
	  --backend-store-uri sqlite:///data/mlflow/mlflow.db --host 127.0.0.1 --port 5000

viz: install
	$(BIN)/kedro viz run --host 127.0.0.1 --port 4141 --no-browser

feast-ui: install
	$(BIN)/python -m payments_ml.feature_store ui

prometheus:
	@command -v prometheus >/dev/null || { echo "Prometheus is not installed: apt-get install prometheus"; exit 1; }
	prometheus --config.file=deploy/prometheus/prometheus.yml \
	  --web.listen-address=127.0.0.1:9090 --storage.tsdb.path=data/prometheus

stop:
	-RAY_ADDRESS=$(RAY_HEAD) $(BIN)/serve shutdown --yes 2>/dev/null
	-$(BIN)/ray stop

clean-data:
	find data -mindepth 2 ! -name .gitkeep ! -path 'data/fixtures/*' -delete 2>/dev/null || true
	find data -mindepth 2 -type d -empty -delete 2>/dev/null || true
