# Every command a developer or CI needs. `make help` lists them.
# Needs only python3 (3.11), pip, git and make: uv is installed into .tools/ when missing.

.DEFAULT_GOAL := help
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
MAKEFLAGS += --no-print-directory

PYTHON ?= python3
# uv from PATH, else the copy `make` installs into .tools/uv/bin: the version uv.lock pins,
# each file checked against the lock's hashes (scripts/bootstrap_uv.py).
UV_LOCAL := $(CURDIR)/.tools/uv/bin/uv
UV := $(or $(shell command -v uv 2>/dev/null),$(UV_LOCAL))
RUN := $(UV) run --locked
export DVC_NO_ANALYTICS := 1
export BENTOML_DO_NOT_TRACK := True
export UV_PYTHON := $(PYTHON)

.PHONY: help install run repro metrics test test-fast lint format gate push pull clean rename workflows-lint hooks bench-pipeline

help: ## List the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[36m%-16s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(UV_LOCAL):
	@echo "uv not found: installing the uv that uv.lock pins into .tools/uv"
	$(PYTHON) scripts/bootstrap_uv.py .tools/uv

# Bytecode compiled at install (UV_COMPILE_BYTECODE): every stage, test and report is a new
# Python process; precompiled bytecode saves each of them seconds of compiling sklearn / pandas
# / dvc on import (and works where PYTHONDONTWRITEBYTECODE is set, as on some CI machines).
# --inexact: optional groups (spark, which `make test` adds) stay installed between targets.
export UV_COMPILE_BYTECODE := 1
.venv/.synced: pyproject.toml uv.lock | $(UV)
	$(UV) sync --locked --inexact
	@touch $@

install: .venv/.synced ## Create .venv from uv.lock (exact versions)

run: install ## Install, run the pipeline on the sample data (dvc repro) and print key metrics
	$(RUN) dvc repro
	@echo
	@$(RUN) python -m mlops_template.pipeline.show

repro: install ## Run only the pipeline stages whose inputs changed
	$(RUN) dvc repro

metrics: install ## Print the key metrics of the last run
	@$(RUN) python -m mlops_template.pipeline.show

# The tests also need the optional `spark` group (a real local Spark scores like in-process).
test: install ## Run the whole test suite
	$(RUN) --group spark pytest

test-fast: install ## Run the quick tiers only (unit, data, ci)
	$(RUN) pytest -m "unit or data or ci"

lint: install ## ruff (lint + format check), mypy, and the package's layers (import-linter)
	$(RUN) ruff check .
	$(RUN) ruff format --check .
	$(RUN) mypy
	$(RUN) lint-imports

# A finding that ruff cannot fix must not keep the formatter from running.
format: install ## Apply ruff's fixes and formatting (then `make lint` shows what is left)
	$(RUN) ruff check --fix --exit-zero .
	$(RUN) ruff format .

# Every workflow and composite action under .github/, whoever adds them (tests/test_workflows.py
# checks each file on its own too).
GH_WORKFLOWS = $(wildcard .github/workflows/*.yml .github/workflows/*.yaml)
GH_ACTIONS = $(wildcard .github/actions/*/action.yml .github/actions/*/action.yaml)
workflows-lint: install ## Audit workflows, actions, dependabot, pre-commit config (zizmor, schemas)
	$(RUN) zizmor --offline --collect=workflows,actions,dependabot,pre-commit .
	$(RUN) check-jsonschema --builtin-schema vendor.github-workflows $(GH_WORKFLOWS)
	$(if $(GH_ACTIONS),$(RUN) check-jsonschema --builtin-schema vendor.github-actions $(GH_ACTIONS))
	$(RUN) check-jsonschema --builtin-schema vendor.dependabot .github/dependabot.yml
	$(RUN) pre-commit validate-config .pre-commit-config.yaml

hooks: install ## Install the git hooks of .pre-commit-config.yaml (lint, hygiene, dvc push/checkout)
	$(RUN) pre-commit install

bench-pipeline: install ## Time and measure peak memory of every stage at 100k and 1M rows (slow)
	$(RUN) python benchmarks/pipeline.py

# Serving (BentoML). The model store and bentos live in ./bentoml_home unless BENTOML_HOME is set.
export BENTOML_HOME ?= $(CURDIR)/bentoml_home
HOST ?= 127.0.0.1
PORT ?= 3000
BENTO_REQUIREMENTS := build/requirements.txt
BENTO_INFO := build/bento.json
.PHONY: bento serve bench-serving

bento: install ## Import the DVC-tracked model into the BentoML store; build the bento (version = model hash)
	@mkdir -p build
	$(UV) export --locked --no-default-groups --no-emit-project --no-hashes --quiet \
		--format requirements-txt -o $(BENTO_REQUIREMENTS)
	$(RUN) python -m mlops_template.serving.build.bento --requirements $(BENTO_REQUIREMENTS) --out $(BENTO_INFO)

serve: bento ## Build the bento and serve it on http://127.0.0.1:3000 (HOST=, PORT= to change)
	$(RUN) bentoml serve "$$($(RUN) python -c 'import json; print(json.load(open("$(BENTO_INFO)"))["tag"])')" \
		--host $(HOST) --port $(PORT)

bench-serving: bento ## Throughput and p50/p99 latency: in-process model, naive FastAPI, this service (loopback)
	$(RUN) python benchmarks/serving.py

# Container. IMAGE = the image to build / test; BASE_IMAGE overrides the Dockerfile's pinned
# python:3.11-slim (an internal mirror, or the local stand-in on machines without Docker Hub).
# The build context is build/container/ (see .dockerignore): the runtime requirements exported
# from uv.lock with their hashes (no pipeline or dev groups), and the bento exported from the
# store with its model.
# IMAGE defaults to params.yaml project (`<name>-service:dev`), read only when a target needs it.
IMAGE ?=
IMAGE_NAME = $(or $(IMAGE),$(shell $(RUN) python -m mlops_template.serving.build.container image-name))
BASE_IMAGE ?=
CONTAINER_DIR := build/container
.PHONY: container-context container smoke bench-container release-meta save-image push-image sign deploy

container-context: bento ## Stage build/container/: hashed runtime requirements (uv.lock) + the exported bento
	@mkdir -p $(CONTAINER_DIR)
	$(UV) export --locked --no-default-groups --no-emit-project --quiet --format requirements-txt \
		-o $(CONTAINER_DIR)/requirements.txt
	$(RUN) python -m mlops_template.serving.build.container context --bento-info $(BENTO_INFO) --bento $(CONTAINER_DIR)/bento

container: container-context ## Build the serving image: make container [IMAGE=name:tag] [BASE_IMAGE=...]
	docker build --tag "$(IMAGE_NAME)" $(if $(BASE_IMAGE),--build-arg BASE_IMAGE="$(BASE_IMAGE)") \
		$$($(RUN) python -m mlops_template.serving.build.container build-args --bento $(CONTAINER_DIR)/bento) .

smoke: install ## Run IMAGE on a free loopback port: readiness, example answers, metadata, 4xx on bad input
	$(RUN) python -m mlops_template.serving.build.smoke --image "$(IMAGE_NAME)"

bench-container: container ## Image size and start-up vs `bentoml containerize` (same bento and base) -> benchmarks/results/
	$(RUN) python benchmarks/container.py --image "$(IMAGE_NAME)" $(if $(BASE_IMAGE),--base-image "$(BASE_IMAGE)")

# Release workflow helpers (GitHub Actions sets GITHUB_OUTPUT, GITHUB_REPOSITORY, IMAGE_REF...).
release-meta: install ## (CI) Image name, tags and lineage build args of build/container/ -> $GITHUB_OUTPUT
	$(RUN) python -m mlops_template.serving.build.container github-output --bento $(CONTAINER_DIR)/bento

IMAGE_TAR := build/image.tar
save-image: ## (CI) Save IMAGE to build/image.tar: the smoke-tested bytes, handed to the publish job
	docker save --output $(IMAGE_TAR) "$(IMAGE_NAME)"

push-image: ## (CI) Load build/image.tar, push IMAGE as each of TAGS, append digest= to $GITHUB_OUTPUT
	docker load --input $(IMAGE_TAR)
	@set -- $${TAGS:?TAGS is empty}; \
	for tag in "$$@"; do docker tag "$(IMAGE_NAME)" "$$tag"; docker push --quiet "$$tag"; done; \
	ref=$$(docker image inspect --format '{{index .RepoDigests 0}}' "$$1"); \
	echo "push-image: pushed $$ref as $$*"; \
	echo "digest=$${ref#*@}" >> "$${GITHUB_OUTPUT:?GITHUB_OUTPUT is not set}"

sign: ## (CI) Keyless cosign signature of IMAGE_REF (an image@sha256:... digest reference)
	@case "$${IMAGE_REF:-}" in *@sha256:*) ;; *) echo "sign: IMAGE_REF must be image@sha256:<digest>"; exit 1;; esac
	cosign sign --yes "$${IMAGE_REF}"

deploy: ## (CI) Verify IMAGE_REF's signature came from this repo's release workflow, then deploy it (placeholder)
	@case "$${IMAGE_REF:-}" in *@sha256:*) ;; *) echo "deploy: IMAGE_REF must be image@sha256:<digest>"; exit 1;; esac
	cosign verify "$${IMAGE_REF}" --output text \
		--certificate-oidc-issuer https://token.actions.githubusercontent.com \
		--certificate-identity "$${GITHUB_SERVER_URL}/$${GITHUB_WORKFLOW_REF}"
	@echo "deploy: $${IMAGE_REF} verified. Placeholder: replace this line with your platform's"
	@echo "deploy command, always by digest, e.g. kubectl set image deployment/model model=$${IMAGE_REF}"

gate: install ## Check the metrics against the floors in params.yaml; BASE=main: also vs that revision
	@if [ -n "$${BASE:-}" ]; then \
		$(RUN) python -m mlops_template.review.gate --base "$$BASE" --base-name "$${BASE_NAME:-$$BASE}"; \
	else \
		$(RUN) python -m mlops_template.review.gate; \
	fi

# Pull-request review. BASE = the git revision to compare with, BASE_NAME = how the report
# calls it (CI passes both through the environment; the shell quotes them, make never expands).
export BASE BASE_NAME
TEST_JS := tests/js
.PHONY: report check-lock bench-report js-deps pr-comment

report: install ## PR report: this work tree vs BASE (default main) -> reports/pr_report.md + .json
	$(RUN) python -m mlops_template.review.report --base "$${BASE:-main}" --base-name "$${BASE_NAME:-$${BASE:-main}}"

check-lock: install ## After `make repro`: fail if the committed dvc.lock / metrics are not what it produced
	@$(RUN) dvc status --quiet || { $(RUN) dvc status; \
		echo "check-lock: the pipeline is not up to date with dvc.lock (see above)."; exit 1; }
	@git diff --quiet || { git --no-pager diff --stat; \
		echo "check-lock: reproducing the pipeline changed tracked files (above): the commit's"; \
		echo "dvc.lock / metrics are stale. Run 'make run && make push' and commit dvc.lock and"; \
		echo "the metrics files; CI never commits them for you."; exit 1; }
	@echo "check-lock: dvc.lock and the tracked metrics match the pipeline"

bench-report: install ## Time the PR report cold (empty DVC cache) vs warm (cache + run-cache present)
	$(RUN) python benchmarks/pr_report.py

# Must equal paths.pr_report in params.yaml (tests/test_report_unit.py checks).
PR_REPORT := reports/pr_report.md
pr-comment: ## CI (pr.yml): post $(PR_REPORT) as the one sticky PR comment via CML, uploading nothing
	cml comment update $(PR_REPORT) --target=pr --watermark-title="model PR report" --publish=false

$(TEST_JS)/node_modules/.installed: $(TEST_JS)/package.json $(TEST_JS)/package-lock.json
	npm ci --prefix $(TEST_JS) --no-audit --no-fund --loglevel=error
	@touch $@

js-deps: $(TEST_JS)/node_modules/.installed ## Test-only npm tools (mermaid, playwright-core) for rendering report diagrams

push: install ## Upload data and models to the DVC remote
	$(RUN) dvc push

pull: install ## Download data and models from the DVC remote
	$(RUN) dvc pull

rename: ## Make the template yours: make rename NAME=acme_churn (package, distribution, names)
	@test -n "$(NAME)" || { echo "rename: give the new package name, e.g. make rename NAME=acme_churn"; exit 2; }
	$(PYTHON) scripts/rename.py "$(NAME)"

clean: ## Remove caches and build leftovers (keeps .venv, .tools and DVC data)
	rm -rf .pytest_cache .mypy_cache .ruff_cache dist build
