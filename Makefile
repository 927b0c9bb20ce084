# Haystack Serverless — every target sets up what it needs (the virtualenv is .venv/).
SHELL := /bin/bash
.DEFAULT_GOAL := help

# The Lambda runtime is python3.13: use it locally when this machine has it (PATH or pyenv), else python3.
PYTHON ?= $(shell for c in python3.13 "$$(PYENV_VERSION=3.13.0 pyenv which python3.13 2>/dev/null)" python3; do \
            [ -n "$$c" ] && "$$c" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null && { command -v "$$c"; break; }; done)
VENV := .venv
PY := $(VENV)/bin/python
PORT ?= 3000
EVENT ?= events/api-query.json
SNAPSHOT := data/stdlib.snapshot
SAM_VENV := .venv-sam
SAM := $(SAM_VENV)/bin/sam
SAM_CONFIG_ENV ?= default
# Lambda architecture of `make package` (arm64 | x86_64). `make build` takes it from samconfig.toml.
ARCH ?= arm64

export PYTHONPATH := $(CURDIR)/src
export HAYSTACK_TELEMETRY_ENABLED := False
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: help venv run invoke redis-server test lint format index bench readiness canary validate package build deploy clean

help: ## List the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(VENV)/.installed: layers/deps/requirements.txt requirements-dev.txt
	@test -n "$(PYTHON)" || { echo "need Python >= 3.11 (3.13 preferred)"; exit 1; }
	@echo "setting up $(VENV) with $(PYTHON)"
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements-dev.txt
	@touch $@

venv: $(VENV)/.installed ## Create .venv/ with runtime and development dependencies

$(SNAPSHOT): $(VENV)/.installed $(wildcard src/core/corpus/*.py) src/core/components/wordllama.py src/core/store/embedded.py src/core/store/snapshot.py
	$(PY) -m core.corpus --output $@

index: $(VENV)/.installed ## Build data/stdlib.snapshot; SOURCE=<folder|s3://bucket/prefix> bulk-indexes into the configured store instead
	@if [ -n "$(SOURCE)" ]; then $(PY) -m core.ingestion.bulk --source "$(SOURCE)"; \
	else $(PY) -m core.corpus --output $(SNAPSHOT); fi

# Powertools dev mode: indented JSON logs and EMF lines on the console; metrics stay on (dev mode alone mutes them).
run: $(VENV)/.installed $(SNAPSHOT) ## Serve the API on http://127.0.0.1:3000 (PORT= overrides); logs and metrics on the console
	POWERTOOLS_DEV=$${POWERTOOLS_DEV:-true} POWERTOOLS_METRICS_DISABLED=$${POWERTOOLS_METRICS_DISABLED:-false} \
	  $(VENV)/bin/uvicorn handlers.api:app --host 127.0.0.1 --port $(PORT) --no-access-log

invoke: $(VENV)/.installed $(SNAPSHOT) ## Run the Lambda handler in-process with EVENT=events/....json
	@$(PY) scripts/invoke.py $(EVENT)

lint: $(VENV)/.installed ## ruff check + ruff format --check + the import contracts (lint-imports)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports --no-cache

format: $(VENV)/.installed ## Apply ruff fixes and formatting
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

redis-server: ## Install redis-server/redis-cli for the Redis tests when missing (apt-get)
	@scripts/ensure-redis.sh

test: $(VENV)/.installed $(SAM_VENV)/.installed $(SNAPSHOT) lint redis-server ## Lint, then run the whole test suite (the SAM CLI venv too: its translator checks the template)
	$(VENV)/bin/pytest

# bench/*.py import their helpers as `common` and the app from src/. Cold init measures the x86_64
# artifact (issue 3), so the target builds it into dist/ first (replacing what dist/ held).
BENCH := PYTHONPATH=$(CURDIR)/src:$(CURDIR)/bench $(PY)

bench: $(VENV)/.installed $(SNAPSHOT) ## Run every benchmark (builds dist/ for x86_64 first); results in bench/results/
	$(BENCH) bench/retrieval.py
	$(BENCH) bench/handler.py
	$(BENCH) bench/cache.py
	$(BENCH) bench/observability.py
	$(BENCH) bench/ingestion.py
	$(BENCH) bench/store_pgvector.py
	$(MAKE) --no-print-directory package ARCH=x86_64
	$(BENCH) bench/cold_init.py
	$(BENCH) bench/quality.py
	$(BENCH) bench/cost.py

$(SAM_VENV)/.installed:
	$(PYTHON) -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/pip install -q aws-sam-cli==1.170.0
	@touch $@

readiness: $(VENV)/.installed $(SNAPSHOT) ## Readiness checklist for the current environment (ARGS=--json); exit 1 on a critical failure
	@$(PY) -m core.readiness $(ARGS)

# The progressive controller (AWS credentials and region from the environment), e.g.
#   make canary ARGS="shift --function <fn> --version latest"   |   ARGS="rollback --function <fn>"   |   ARGS="status --function <fn>"
canary: $(VENV)/.installed ## Move the live alias to a new version step by step (ARGS="shift|rollback|status|init --function ...")
	@$(PY) -m core.canary $(ARGS)

validate: $(VENV)/.installed ## Lint the SAM template (cfn-lint, offline)
	AWS_DEFAULT_REGION=us-east-1 $(VENV)/bin/cfn-lint template.yaml

package: $(VENV)/.installed $(SNAPSHOT) ## Build the Lambda artifact into dist/ (ARCH=arm64 default, or x86_64)
	$(PY) scripts/package.py --arch $(ARCH)

# Both SAM builds run scripts/package.py (src/Makefile, layers/deps/Makefile). SAM tells a makefile
# build only ARTIFACTS_DIR, so the layer reads ARCH from the environment: it is set here from the
# Architecture that samconfig.toml gives SAM_CONFIG_ENV, the one `sam deploy` deploys. An ARCH given
# to make that disagrees is refused: change Architecture in samconfig.toml instead.
# PYTHONPATH, exported above for the app, is kept away from SAM CLI and the builds it runs.
build: $(SAM_VENV)/.installed $(VENV)/.installed $(SNAPSHOT) ## sam build for SAM_CONFIG_ENV (default: dev); needs python3.13
	@"$(PYTHON)" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 13))' 2>/dev/null || \
		{ echo "sam build needs python3.13 (the Lambda runtime) on PATH or in pyenv; found: $(PYTHON)"; exit 1; }
	@arch=$$($(PY) scripts/package.py --samconfig-arch $(SAM_CONFIG_ENV)) || exit 1; \
	if [ "$(origin ARCH)" != file ] && [ "$(ARCH)" != "$$arch" ]; then \
		echo "ARCH=$(ARCH), but samconfig.toml deploys $(SAM_CONFIG_ENV) as Architecture=$$arch: change it there"; exit 1; fi; \
	echo "sam build --config-env $(SAM_CONFIG_ENV) (ARCH=$$arch)"; \
	env -u PYTHONPATH ARCH=$$arch PATH="$(dir $(PYTHON)):$$PATH" $(SAM) build --config-env $(SAM_CONFIG_ENV)

deploy: build ## sam deploy --config-env $(SAM_CONFIG_ENV)
	env -u PYTHONPATH $(SAM) deploy --config-env $(SAM_CONFIG_ENV)

clean: ## Remove build outputs (keeps .venv/)
	rm -rf .aws-sam dist .pytest_cache .ruff_cache
