# Herald: `make up` runs it, `make test` checks it. Both install what they need.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
DEVSTAMP := $(VENV)/.installed-dev
PEERS  := .venv-peers
PEERSTAMP := $(PEERS)/.installed

.PHONY: up test lint typecheck bench lock clean haproxy chromium promtool wrk peers-env

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python requirements.lock pyproject.toml
	$(BIN)/pip install --quiet --require-hashes -r requirements.lock
	$(BIN)/pip install --quiet --no-deps -e .
	touch $@

$(DEVSTAMP): $(BIN)/python requirements-dev.lock pyproject.toml
	$(BIN)/pip install --quiet --require-hashes -r requirements-dev.lock
	$(BIN)/pip install --quiet --no-deps -e .
	touch $@ $(STAMP)

up: $(STAMP)
	mkdir -p var
	$(BIN)/herald up

lint: $(DEVSTAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

typecheck: $(DEVSTAMP)
	$(BIN)/mypy

test: lint typecheck haproxy chromium promtool
	$(BIN)/pytest -q

# Debian packages some targets need: the HAProxy end-to-end test needs haproxy,
# the dashboard's browser tests need chromium (Playwright drives it; its own
# browser download is never used), the monitoring tests need promtool and
# prometheus (package prometheus), the benchmarks need wrk. Installed here when
# missing and we may (root); otherwise we stop and say what to run. The second
# argument names the command to look for when it is not the package's name.
define debian_package
	@command -v $(or $(2),$(1)) >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing $(1) (Debian package)"; \
	    apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $(1); \
	  else \
	    echo "this target needs $(1): run 'sudo apt-get install $(1)'" >&2; exit 1; \
	  fi; }
endef

haproxy:
	$(call debian_package,haproxy)

chromium:
	$(call debian_package,chromium)

promtool:
	$(call debian_package,prometheus,promtool)

wrk:
	$(call debian_package,wrk)

# Every benchmark, one after the other (about 10 minutes); the figures go to
# bench/results/latest.json and the tables at the end of docs/benchmarks.md.
bench: $(DEVSTAMP) wrk peers-env
	$(BIN)/python bench/run_all.py

# Re-pin the lockfiles after editing pyproject.toml's dependencies.
lock: $(BIN)/python
	$(BIN)/pip install --quiet uv
	$(BIN)/uv pip compile pyproject.toml --python-version 3.11 --generate-hashes -o requirements.lock
	$(BIN)/uv pip compile pyproject.toml --extra dev --python-version 3.11 --generate-hashes \
		-o requirements-dev.lock

# The peer task queues (Celery, Huey, PgQueuer) for bench/peers.py, in a
# virtualenv of their own so they never become Herald's dependencies.
peers-env: $(PEERSTAMP)

$(PEERSTAMP): bench/peers/requirements.lock
	$(PYTHON) -m venv $(PEERS)
	$(PEERS)/bin/pip install --quiet --upgrade pip
	$(PEERS)/bin/pip install --quiet --require-hashes -r bench/peers/requirements.lock
	touch $@

clean:
	rm -rf $(VENV) $(PEERS) var .pytest_cache .mypy_cache .ruff_cache
