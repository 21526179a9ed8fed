# Two commands on a fresh machine: `make demo` and `make test` (see README.md).
PYTHON ?= python3.11
UV_VERSION := 0.13.8
UV := .tools/bin/uv
VENV := .venv
BIN := $(VENV)/bin
DAGSTER_HOME := $(CURDIR)/.dagster_home

.PHONY: demo test e2e e2e-prod prod lint format dev env bench-env clean

$(UV):
	$(PYTHON) -m venv .tools
	.tools/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

# --compile-bytecode: uv installs no .pyc files, and where PYTHONDONTWRITEBYTECODE is set (CI
# containers) Python would compile every imported module again in every process: a run
# process, test worker or daemon tick. Measured here: import nannyml 10.3 s -> 3.6 s,
# lightgbm 5.5 -> 2.1 s, the code location 3.5 -> 1.5 s.
$(VENV)/.synced: pyproject.toml uv.lock | $(UV)
	$(UV) sync --frozen --compile-bytecode --python $(PYTHON)
	touch $@

env: $(VENV)/.synced

# the benchmarks' extra dependencies (the `bench` group: the mlforecast peer); plain `make env`
# / `uv sync` install only the default `dev` group (and would remove these again)
bench-env: | $(UV)
	$(UV) sync --frozen --compile-bytecode --group bench --python $(PYTHON)
	touch $(VENV)/.synced

$(DAGSTER_HOME)/dagster.yaml: dagster.yaml
	mkdir -p $(DAGSTER_HOME)
	cp dagster.yaml $@

demo: env $(DAGSTER_HOME)/dagster.yaml
	DAGSTER_HOME=$(DAGSTER_HOME) $(BIN)/mlops-assets demo

test: env
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	tmp=$$(mktemp -d) && cp dagster.yaml $$tmp/ && MLOPS_ENV=ci MLOPS_HOME=$$tmp/ws \
		DAGSTER_HOME=$$tmp VIRTUAL_ENV=$(CURDIR)/$(VENV) $(BIN)/dg check defs
	env -u DAGSTER_HOME $(BIN)/pytest -n 2

# slower end-to-end tests (real daemon and run processes, fault injection with SIGKILL, the
# UI in headless Chromium: Debian's package, installed when missing, as root or with sudo;
# without it the UI test skips, or fails under MLOPS_E2E_REQUIRE_BROWSER=1 as in CI).
# Screenshots go to $(E2E_ARTIFACTS).
E2E_ARTIFACTS ?= $(CURDIR)/e2e-artifacts
e2e: env
	bash .ci/install-chromium.sh
	env -u DAGSTER_HOME MLOPS_E2E_ARTIFACTS=$(E2E_ARTIFACTS) $(BIN)/pytest -m e2e

# the prod profile on this machine (README "Production"): PostgreSQL and Redis from Debian's
# packages (installed when missing), started by the test on 127.0.0.1 with two Celery workers
e2e-prod: env
	bash .ci/install-services.sh
	env -u DAGSTER_HOME $(BIN)/pytest -m e2e_prod -s

# the prod profile on this machine, one command (README "Production"): PostgreSQL and Redis
# (Debian's packages, installed when missing) on 127.0.0.1 with their data kept in
# .mlops/local-prod/, the webserver on http://127.0.0.1:3000, the daemon and two Celery
# workers; Ctrl-C stops them all (PORT=3001 for another port)
PORT ?= 3000
prod: env
	bash .ci/install-services.sh
	$(BIN)/mlops-assets local-prod --port $(PORT)

lint: env
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: env
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# code-server calls (a run's launch, a sensor tick) time out after 60 s by default, which a
# busy 2-core machine exceeded: 300 s of headroom (override by setting it yourself)
dev: env $(DAGSTER_HOME)/dagster.yaml
	DAGSTER_HOME=$(DAGSTER_HOME) VIRTUAL_ENV=$(CURDIR)/$(VENV) \
		DAGSTER_GRPC_TIMEOUT_SECONDS=$${DAGSTER_GRPC_TIMEOUT_SECONDS:-300} \
		$(BIN)/dg dev --host 127.0.0.1 --port 3000 -w workspace.yaml

clean:
	rm -rf .mlops .dagster_home
