# citygrid developer commands. `make help` lists them.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The broker the tests start: tansu (embedded), apache (Kafka from Maven Central), or host:port.
CITYGRID_TEST_BROKER ?= tansu
export CITYGRID_TEST_BROKER

.DEFAULT_GOAL := help

.PHONY: help
help: ## List the targets
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  make %-18s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "citygrid needs $(PYTHON) on PATH"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $(STAMP)

.PHONY: install
install: $(STAMP) ## Create .venv and install citygrid with its dev tools

.PHONY: demo
demo: $(STAMP) ## Run the demo: embedded broker, topics, worker, simulated terminals (Ctrl-C stops)
	$(BIN)/citygrid demo

.PHONY: test
test: $(STAMP) ## Run every test: unit, then integration and e2e on a real broker (CITYGRID_TEST_BROKER)
	$(BIN)/python -m pytest tests

.PHONY: test-unit
test-unit: $(STAMP) ## Run the unit tests only (no broker)
	$(BIN)/python -m pytest tests/unit -q

.PHONY: test-integration
test-integration: $(STAMP) ## Run the broker tests only
	$(BIN)/python -m pytest tests/integration tests/e2e

.PHONY: test-apache
test-apache: $(STAMP) ## Run the broker tests against Apache Kafka 4 (KRaft, jars from Maven Central)
	CITYGRID_TEST_BROKER=apache $(BIN)/python -m pytest tests/integration tests/e2e

.PHONY: test-fuzz
test-fuzz: $(STAMP) ## Hostile input: codec fuzz (FUZZ_EXAMPLES) and one worker on a broker (CITYGRID_FUZZ_MESSAGES)
	FUZZ_EXAMPLES=$(or $(FUZZ_EXAMPLES),10000) CITYGRID_FUZZ_MESSAGES=$(or $(CITYGRID_FUZZ_MESSAGES),10000) \
		$(BIN)/python -m pytest tests/unit/schemas/test_codec_fuzz.py tests/integration/test_hostile.py

.PHONY: test-reliability
test-reliability: $(STAMP) ## Crash safety: SIGKILLs, a broker restart, a replay on Apache Kafka (KIND=tansu; CITYGRID_RELIABILITY_EVENTS=50000)
	CITYGRID_TEST_BROKER=$(or $(KIND),apache) $(BIN)/python -m pytest tests/reliability

.PHONY: lint
lint: $(STAMP) ## ruff lint and format check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

.PHONY: types
types: $(STAMP) ## mypy, strict
	$(BIN)/mypy

# promtool comes with Prometheus (Debian: apt-get install prometheus; .ci/run installs it). Where it
# is missing `make check` leaves `rules` out; the unit tests say they skipped promtool's part.
PROMTOOL ?= $(shell command -v promtool)
PROMETHEUS_DIR := deploy/prometheus

.PHONY: rules
rules: ## Check the Prometheus config and rules and run the rules' unit tests (promtool)
	@test -n "$(PROMTOOL)" || { echo "make rules needs promtool (Debian: apt-get install prometheus)"; exit 1; }
	$(PROMTOOL) check config $(PROMETHEUS_DIR)/prometheus.yml
	$(PROMTOOL) check rules $(PROMETHEUS_DIR)/rules/*.yml
	$(PROMTOOL) test rules $(PROMETHEUS_DIR)/tests/*.yml

.PHONY: check
check: lint types test-unit $(if $(PROMTOOL),rules) ## Lint, types, unit tests, and `make rules` where promtool is installed

.PHONY: schemas
schemas: $(STAMP) ## Regenerate schemas/json/*.schema.json from the code
	$(BIN)/python -m schemas.generate

.PHONY: dashboards
dashboards: $(STAMP) ## Regenerate the Grafana dashboards (deploy/grafana/dashboards/*.json) from the code
	$(BIN)/python deploy/grafana/generate.py

.PHONY: prometheusrule
prometheusrule: $(STAMP) ## Regenerate deploy/k8s/prometheusrule.yaml from the Prometheus rules file
	$(BIN)/python deploy/k8s/generate_prometheusrule.py

.PHONY: bench-codec
bench-codec: $(STAMP) ## Decode+validate throughput on one core, with orjson.loads as reference
	$(BIN)/python bench/codec.py

.PHONY: bench-handlers
bench-handlers: $(STAMP) ## CPU us per message of the ingest and merge handlers, in process (PROFILE=1: cProfile)
	$(BIN)/python bench/handlers.py $(if $(PROFILE),--profile)

.PHONY: bench-places
bench-places: $(STAMP) ## Nearest-road lookups at 5,000 roads: spatial index vs a full scan
	$(BIN)/python bench/places.py

.PHONY: bench-kpi
bench-kpi: $(STAMP) ## Seconds per KPI report over 100,000 synthetic tasks (TASKS="100000 1000000" for more)
	$(BIN)/python bench/kpi.py --tasks $(or $(TASKS),100000)

.PHONY: bench
bench: $(STAMP) ## Pipeline on its own broker (KIND=tansu|apache): events/s vs aiokafka, latency, RSS (see README)
	$(BIN)/python bench/pipeline.py --broker $(or $(KIND),tansu)

.PHONY: bench-quick
bench-quick: $(STAMP) ## `make bench` in a few minutes, for CI: 20,000 events, 5 s of latency, 20,000 closed tasks
	$(BIN)/python bench/pipeline.py --broker $(or $(KIND),tansu) --quick

.PHONY: broker
broker: $(STAMP) ## Start a local broker in the foreground (KIND=tansu|apache)
	$(BIN)/citygrid broker start --kind $(or $(KIND),tansu)

.PHONY: clean
clean: ## Remove the virtualenv, caches and local state
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache .hypothesis
