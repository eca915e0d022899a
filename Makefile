# make demo    a throwaway broker, two workers, round robin then fair dispatch
# make test    the specification (pytest-bdd) and the package's tests against a real broker
# make bench   publish/drain throughput and failure detection: workqueue, raw pika, Dramatiq, Celery (a table)
# make soak    chaos soak: confirmed tasks, worker kills, broker crashes and restarts, then a checker
# make mutants each mechanism switched off in a scratch copy; its scenarios must fail (a table)
# make lint    ruff over the tree, mypy over the public API
# make docs    the specification as one HTML page, one column per RabbitMQ version run (reports/)
# make conformance  the worker scenarios against every implementation (docs/conformance.md): a table
# Each target does its own set-up: a venv in .venv, and rabbitmq-server when missing and root.
#   BROKER=auto|node|container|url   (auto: container if a Docker engine answers, else node)
#   PYTEST_ARGS=...                  extra pytest arguments (-n 0: one process, for debugging)
#   REPORTS=DIR                      where `make test` writes its reports (default reports/runs/BROKER)
#   JOBS=N                           test processes, each with its own broker (default: 3 per core;
#                                    conformance: 6 per core, its cells mostly wait)
#   SOAK_ARGS=...                    soak options (python -m soak --help), e.g. --cluster
#   MUTANTS_ARGS=...                 mutants options (python -m mutants --help), e.g. --only auto-ack
#   IMPL=id,...  IMPL_FILE=path      conformance: which implementations; a manifest of your own

PYTHON ?= python3
VENV ?= .venv
BROKER ?= auto
PYTEST_ARGS ?=
SOAK_ARGS ?=
BENCH_ARGS ?=
# Mutant rows at once: a killed row mostly waits out a scenario's deadline (60 s), so more rows
# than cores (2: 429 s, 5: 213 s, 8: 184 s on node, measured; 45 rows on 2026-12-06: 6 rows
# 452 s, 12 rows 390 s).
MUTANTS_ARGS ?= --jobs 8
DOCS_ARGS ?=
# Each run's cucumber JSON, junit XML and run.json (RabbitMQ version, backend): `make docs` reads them.
REPORTS ?= reports/runs/$(BROKER)
# Test processes (pytest-xdist): the suite waits on brokers and workers far more than it
# computes, so three per core (measured for 1 to 8 processes: see docs/schedule.md).
JOBS ?= $(shell echo $$(( $$(nproc 2>/dev/null || echo 1) * 3 )))
BIN := $(VENV)/bin

.PHONY: demo test bench soak mutants lint docs conformance venv rabbitmq browser clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check -e '.[test]'
	touch $@

$(BIN)/.lint-installed: $(BIN)/.installed
	$(BIN)/pip install -q --disable-pip-version-check -e '.[test,lint]'
	touch $@

$(BIN)/.plot-installed: $(BIN)/.installed
	$(BIN)/pip install -q --disable-pip-version-check -e '.[test,plot]'
	touch $@

$(BIN)/.bench-installed: $(BIN)/.installed
	$(BIN)/pip install -q --disable-pip-version-check -e '.[test,bench]'
	touch $@

venv: $(BIN)/.installed

rabbitmq:
	@scripts/install-rabbitmq.sh

browser:
	@scripts/install-browser.sh

demo: venv rabbitmq
	$(BIN)/python -m examples.demo $(if $(filter-out auto,$(BROKER)),--broker=$(BROKER))

test: venv rabbitmq browser
	$(BIN)/pytest --broker=$(BROKER) -n $(JOBS) --dist loadgroup --durations=15 \
	  --cucumberjson=$(REPORTS)/cucumber.json --junitxml=$(REPORTS)/junit.xml $(PYTEST_ARGS)

# The page, from every run under reports/runs/ (or the directories named in DOCS_ARGS).
docs: venv
	$(BIN)/python -m docs $(DOCS_ARGS)

bench: venv $(BIN)/.bench-installed rabbitmq
	$(BIN)/python -m bench $(if $(filter-out auto,$(BROKER)),--broker=$(BROKER)) $(BENCH_ARGS)

soak: venv $(BIN)/.plot-installed rabbitmq
	$(BIN)/python -m soak $(if $(filter-out auto,$(BROKER)),--broker=$(BROKER)) $(SOAK_ARGS)

# The conformance suite runs on the node backend unless BROKER names the container one; each
# implementation is provisioned (packages, builds) on first use, into .conformance/.
IMPL ?= all
IMPL_FILE ?=
# It is the kit's command (workqueue-conformance, as `pip install 'workqueue[conformance]'` gives
# it to other projects) on the project's own manifest.
conformance: venv rabbitmq
	$(BIN)/workqueue-conformance --broker=$(if $(filter container,$(BROKER)),container,node) --impl $(IMPL) \
	  $(if $(IMPL_FILE),--impl-file $(IMPL_FILE)) $(if $(filter-out default file,$(origin JOBS)),--jobs $(JOBS))

# The mutants run on the node backend unless BROKER names the container one.
mutants: venv rabbitmq
	$(BIN)/python -m mutants --broker=$(if $(filter container,$(BROKER)),container,node) $(MUTANTS_ARGS)

lint: venv $(BIN)/.lint-installed
	$(BIN)/ruff check .
	$(BIN)/mypy

clean:
	rm -rf $(VENV) .pytest_cache reports *.egg-info .conformance conformance/workers/js-amqplib/node_modules
