# Two commands for a fresh machine: `make run` (set up and serve) and `make test` (install the
# services the suite needs, then lint and test).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# Narrows the test targets, e.g. `make test PYTEST_ARGS="tests/metrics -x"`.
PYTEST_ARGS ?=

.DEFAULT_GOAL := help
.PHONY: help venv run test test-sqlite test-uvicorn test-postgres lint fmt bench bench-5000 stress soak \
	storm chaos clean

help: ## List the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

$(STAMP): requirements/base.txt requirements/dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements/dev.txt -c requirements/lock.txt
	touch $(STAMP)

venv: $(STAMP) ## Create .venv with the pinned dependencies

run: venv ## Set up (migrate; with DEBUG: seed, demo admin; Redis if installed) and serve on 127.0.0.1:8000
	./scripts/run

# ensure-services first, before the venv: it installs python3-venv too, and it exports the
# DATABASE_URL of the PostgreSQL run to everything after it.
test: ## Install what is missing (chromium, redis-server, PostgreSQL), lint, then the suite on SQLite and PostgreSQL
	@PYTHON=$(PYTHON) ./scripts/ensure-services $(MAKE) --no-print-directory lint test-sqlite test-uvicorn test-postgres

test-sqlite: venv ## The suite on SQLite, installing nothing
	env -u DATABASE_URL $(PY) -m pytest $(PYTEST_ARGS)

# The protocol and write-path tests again, with their servers run by uvicorn.
UVICORN_TESTS := $(addprefix tests/streaming/,test_write_paths.py test_capture.py \
	test_hostile_socket.py test_access.py test_generic_app.py test_reconnect.py \
	test_multi_server.py test_origin.py test_end_to_end_smoke.py test_faults.py test_sse.py)

test-uvicorn: venv ## The protocol and write-path tests under uvicorn (SQLite)
	env -u DATABASE_URL TEST_ASGI_SERVER=uvicorn $(PY) -m pytest $(UVICORN_TESTS)

test-postgres: venv ## The suite on PostgreSQL (DATABASE_URL, else 127.0.0.1:5432), installing nothing
	@./scripts/with-postgres $(PY) -m pytest $(PYTEST_ARGS)

lint: venv ## ruff (with streaming/'s import layers), import cycles, ruff format, mypy, makemigrations --check
	$(VENV)/bin/ruff check .
	$(PY) scripts/import_cycles.py streaming
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy streaming
	DJANGO_SETTINGS_MODULE=settings.test $(PY) manage.py makemigrations --check --dry-run

fmt: venv ## Format and fix what ruff can
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

bench: venv ## Benchmark: this project vs DCRF vs the raw limit (docs/benchmarks.md)
	$(PY) -m bench.run

bench-5000: venv ## Benchmark at N = 5,000 (raw vs this project, 10 writes/s), then a storm of 5,000 connects
	$(PY) -m bench.n5000

stress: venv ## Convergence stress run: 4 writers x 1,000 writes
	$(PY) -m bench.stress

soak: venv ## Soak: 1,000 subscribers, 50 writes/s for 60 s, 5% reconnecting
	$(PY) -m bench.soak

storm: venv ## Connection storm: 1,000 clients connect and subscribe at once
	$(PY) -m bench.storm

chaos: venv ## Chaos soak: 1,000 subscribers, 2 servers, 4 writers for 3 min while processes are killed
	$(PY) -m bench.chaos

clean: ## Remove the venv, the demo database and run files
	rm -rf $(VENV) .run db.sqlite3* .pytest_cache artifacts
