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
# pandera imports pyspark.pandas whenever pyspark (the `spark` group) is installed, which then
# warns about pandas 3 on every start of every command; nothing here uses pandas-on-Spark.
export PYTHONWARNINGS := ignore::FutureWarning:pyspark.pandas
export DVC_NO_ANALYTICS := 1
export BENTOML_DO_NOT_TRACK := True
export UV_PYTHON := $(PYTHON)

.PHONY: help install run repro metrics test test-fast lint format gate push pull pull-data clean rename workflows-lint workflows-audit hooks bench-pipeline

help: ## List the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z0-9_-]+:.*## / {printf "  \033[36m%-16s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(UV_LOCAL):
	@echo "uv not found: installing the uv that uv.lock pins into .tools/uv"
	$(PYTHON) scripts/bootstrap_uv.py .tools/uv

# --compile-bytecode: every stage, test and report is a new Python process; precompiled
# bytecode saves each of them seconds of compiling sklearn / pandas / dvc on import (and works
# where PYTHONDONTWRITEBYTECODE is set, as on some CI machines).
# --inexact: optional groups (spark, which `make test` adds) stay installed between targets.
.venv/.synced: pyproject.toml uv.lock | $(UV)
	$(UV) sync --locked --inexact --compile-bytecode
	@touch $@

install: .venv/.synced ## Create .venv from uv.lock (exact versions)

run: install ## Install, run the pipeline on the sample data (dvc repro) and print key metrics
	$(RUN) python -m mlops_template.pipeline.check
	$(RUN) dvc repro
	@echo
	@$(RUN) python -m mlops_template.pipeline.show

repro: install ## Check every key of params.yaml, then run the pipeline stages whose inputs changed
	$(RUN) python -m mlops_template.pipeline.check
	$(RUN) dvc repro

metrics: install ## Print the key metrics of the last run
	@$(RUN) python -m mlops_template.pipeline.show

# The tests also need the optional `spark` group (a real local Spark scores like in-process).
test: install ## Run the whole test suite
	$(UV) sync --locked --inexact --compile-bytecode --group spark --quiet
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
workflows-audit: install ## (CI, online) zizmor with GitHub's API (GH_TOKEN): impostor commits, pins that are not their tag
	$(RUN) zizmor --collect=workflows,actions,dependabot .

workflows-lint: install ## Audit workflows, actions, dependabot, pre-commit config (zizmor offline, schemas)
	$(RUN) zizmor --offline --collect=workflows,actions,dependabot,pre-commit .
	$(RUN) check-jsonschema --builtin-schema vendor.github-workflows $(GH_WORKFLOWS)
	$(if $(GH_ACTIONS),$(RUN) check-jsonschema --builtin-schema vendor.github-actions $(GH_ACTIONS))
	$(RUN) check-jsonschema --builtin-schema vendor.dependabot .github/dependabot.yml
	$(RUN) pre-commit validate-config .pre-commit-config.yaml

hooks: install ## Install the git hooks of .pre-commit-config.yaml (lint, hygiene, dvc push/checkout)
	$(RUN) pre-commit install

bench-pipeline: install ## Time and measure peak memory of every stage at 100k and 1M rows (slow)
	$(RUN) python benchmarks/pipeline.py

# Batch scoring of a whole table of records. INPUT: a .csv / .parquet file or a directory
# of .parquet files; OUTPUT: a directory (scores.parquet, quarantine.parquet, summary.json),
# replaced whole and only when the run succeeds. ENGINE=spark runs the same scoring on Spark
# (the optional `spark` group), on MASTER (default local[2]).
INPUT ?=
OUTPUT ?=
ENGINE ?= pandas
MASTER ?= local[2]
ROWS ?=
OUT ?=
.PHONY: sample score bench-scoring

sample: install ## Write unlabelled sample records to score: make sample ROWS=3500000 OUT=data/records.parquet
	@test -n "$(OUT)" || { echo "sample: give OUT=<file.parquet|.csv> (ROWS= defaults to data.sample.n_rows)"; exit 2; }
	$(RUN) python -m mlops_template.sample --out "$(OUT)" $(if $(ROWS),--rows "$(ROWS)")

score: install ## Score a whole table: make score INPUT=... OUTPUT=... [ENGINE=pandas|spark] [MASTER=local[2]]
	@test -n "$(INPUT)" && test -n "$(OUTPUT)" || { echo "score: give INPUT=<file or directory> OUTPUT=<directory>"; exit 2; }
	$(RUN) $(if $(filter spark,$(ENGINE)),--group spark) python -m mlops_template.scoring \
		--input "$(INPUT)" --output "$(OUTPUT)" --engine "$(ENGINE)" --master "$(MASTER)"

bench-scoring: install ## Batch scoring at 350k and 3.5M rows vs in-process predict_proba, and on Spark local[2] (slow)
	$(RUN) --group spark python benchmarks/scoring.py

# Explanations (README "Explanations"): per record, the model's probability and decision and
# the TOP_K largest feature contributions to its log-odds (exact TreeSHAP / linear terms).
# INPUT: .csv, .parquet or .json ({"records": [...]}, like the example request); OUTPUT:
# .json (as /explain answers) or .parquet (one row per record and contribution).
TOP_K ?=
.PHONY: explain bench-explain

explain: install ## Explain a file's records: make explain INPUT=examples/request.json OUTPUT=reports/explanations.json [TOP_K=5]
	@test -n "$(INPUT)" && test -n "$(OUTPUT)" || { echo "explain: give INPUT=<.csv|.parquet|.json records> OUTPUT=<.json|.parquet>"; exit 2; }
	$(RUN) python -m mlops_template.pipeline.explain --input "$(INPUT)" --output "$(OUTPUT)" $(if $(TOP_K),--top-k "$(TOP_K)")

bench-explain: bento ## /explain latency, 1 and 100 records: in process and through `bentoml serve` -> benchmarks/results/explain.*
	$(RUN) python benchmarks/explain.py

# Serving (BentoML). The model store and bentos live in ./bentoml_home unless BENTOML_HOME is set.
export BENTOML_HOME ?= $(CURDIR)/bentoml_home
HOST ?= 127.0.0.1
PORT ?= 3000
BENTO_REQUIREMENTS := build/requirements.txt
BENTO_INFO := build/bento.json
BENTO_ARCHIVE := build/bento.bento
# A shadow challenger for the bento (off when empty): a model file with its card next to it, a
# directory holding both, or a BentoML model tag. Its answers are logged, never returned.
CHALLENGER ?=
.PHONY: bento serve bench-serving

bento: install ## Import the DVC-tracked model into the BentoML store; build the bento (version = model hash) [CHALLENGER=model file|dir|tag]
	@mkdir -p build
	$(UV) export --locked --no-default-groups --no-emit-project --no-hashes --quiet \
		--format requirements-txt -o $(BENTO_REQUIREMENTS)
	$(RUN) python -m mlops_template.serving.build.bento --requirements $(BENTO_REQUIREMENTS) \
		--out $(BENTO_INFO) --export $(BENTO_ARCHIVE) $(if $(CHALLENGER),--challenger "$(CHALLENGER)")

serve: bento ## Build the bento and serve it on http://127.0.0.1:3000 (HOST=, PORT= to change)
	$(RUN) bentoml serve "$$($(RUN) python -c 'import json; print(json.load(open("$(BENTO_INFO)"))["tag"])')" \
		--host $(HOST) --port $(PORT)

bench-serving: bento ## Throughput and p50/p99: in-process model, naive FastAPI, this service with its prediction logs on and off (loopback)
	$(RUN) python benchmarks/serving.py

# Container. IMAGE = the image to build / test; BASE_IMAGE overrides the pinned python:3.11-slim
# of docker/base-image/Dockerfile (an internal mirror, or a local stand-in without Docker Hub).
# The build context is build/container/ (see .dockerignore): the runtime requirements exported
# from uv.lock with their hashes (no pipeline or dev groups), and the bento exported from the
# store with its model.
# IMAGE defaults to params.yaml project (`<name>-service:dev`), read only when a target needs it.
IMAGE ?=
IMAGE_NAME = $(or $(IMAGE),$(shell $(RUN) python -m mlops_template.serving.build.container image-name))
BASE_IMAGE ?=
CONTAINER_DIR := build/container
.PHONY: container-context container smoke bench-container release-meta save-image push-image promote-tags attestations-unavailable sign deploy

container-context: bento ## Stage build/container/: hashed runtime requirements (uv.lock) + the exported bento
	@mkdir -p $(CONTAINER_DIR)
	$(UV) export --locked --no-default-groups --no-emit-project --quiet --format requirements-txt \
		-o $(CONTAINER_DIR)/requirements.txt
	$(RUN) python -m mlops_template.serving.build.container context --bento-info $(BENTO_INFO) --bento $(CONTAINER_DIR)/bento

# The build args carry BASE_IMAGE: the environment's (a mirror), else docker/base-image/Dockerfile's.
export BASE_IMAGE
container: container-context ## Build the serving image: make container [IMAGE=name:tag] [BASE_IMAGE=...]
	docker build --tag "$(IMAGE_NAME)" \
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

push-image: ## (CI) Load build/image.tar, push it as PUSH_TAG only, append digest= to $GITHUB_OUTPUT
	docker load --input $(IMAGE_TAR)
	@tag="$${PUSH_TAG:?PUSH_TAG is empty}"; docker tag "$(IMAGE_NAME)" "$$tag"; \
	docker push --quiet "$$tag"; ref=$$(docker image inspect --format '{{index .RepoDigests 0}}' "$$tag"); \
	echo "push-image: pushed $$ref as $$tag"; \
	echo "digest=$${ref#*@}" >> "$${GITHUB_OUTPUT:?GITHUB_OUTPUT is not set}"

# Only after the SBOM, provenance and signature of IMAGE_REF exist: the tags people pull by.
promote-tags: ## (CI) Point each of PROMOTE_TAGS (:model-<version>, :latest) at IMAGE_REF (image@sha256:...)
	@case "$${IMAGE_REF:-}" in *@sha256:*) ;; *) echo "promote-tags: IMAGE_REF must be image@sha256:<digest>"; exit 1;; esac
	@set -- $${PROMOTE_TAGS:?PROMOTE_TAGS is empty}; for tag in "$$@"; do \
		docker buildx imagetools create --tag "$$tag" "$$IMAGE_REF"; echo "promote-tags: $$tag -> $$IMAGE_REF"; done

attestations-unavailable: ## (CI) Say why the release has no attestations (a private repo without the plan for them)
	@echo "::notice title=No attestations::GitHub stores artifact attestations for public repositories, and for private ones on GitHub Enterprise Cloud. This release is signed (cosign) but has no SBOM or provenance attestation: make the repository public, or set the repository variable ATTESTATIONS=true if your plan includes them."

sign: ## (CI) Keyless cosign signature of IMAGE_REF (an image@sha256:... digest reference)
	@case "$${IMAGE_REF:-}" in *@sha256:*) ;; *) echo "sign: IMAGE_REF must be image@sha256:<digest>"; exit 1;; esac
	cosign sign --yes "$${IMAGE_REF}"

# Kubernetes (deploy/k8s: a kustomize base, overlays staging and prod). The render injects the
# names (params.yaml project), the image by digest and the model's lineage: the bento's
# (build/bento.json), or MODEL_VERSION, MODEL_SHA256 and REVISION together. The shell reads these
# variables (command line or environment); make never expands them.
export OVERLAY IMAGE_DIGEST IMAGE_REPO MODEL_VERSION MODEL_SHA256 REVISION
K8S := $(RUN) python -m mlops_template.serving.build.k8s
K8S_RENDER = $(K8S) render --overlay "$${OVERLAY:-staging}" --digest "$${IMAGE_DIGEST:-}" \
	$${IMAGE_REPO:+--image-repo "$$IMAGE_REPO"} $${MODEL_VERSION:+--model-version "$$MODEL_VERSION"} \
	$${MODEL_SHA256:+--model-sha256 "$$MODEL_SHA256"} $${REVISION:+--revision "$$REVISION"}
.PHONY: k8s-manifests

k8s-manifests: install ## Render deploy/k8s by digest: IMAGE_DIGEST=sha256:... [OVERLAY=staging|prod] [IMAGE_REPO=] -> build/k8s/
	$(K8S_RENDER)

# Checks first (no kubeconfig, no cosign: nothing happens), then the signature, then the apply.
# The signature must come from this repository's release workflow on main (the job that signed
# it), whichever workflow deploys: SIGNER_IDENTITY names it (override it for a fork or a mirror).
RELEASE_WORKFLOW := .github/workflows/release.yml@refs/heads/main
SIGNER_IDENTITY ?= $${GITHUB_SERVER_URL:-https://github.com}/$${GITHUB_REPOSITORY}/$(RELEASE_WORKFLOW)
deploy: install ## (CI) Verify IMAGE_REF's signature (this repo's release workflow), render OVERLAY for it, kubectl apply, wait
	@case "$${IMAGE_REF:-}" in *@sha256:*) ;; *) echo "deploy: IMAGE_REF must be image@sha256:<digest>"; exit 1;; esac
	@case "$${OVERLAY:-}" in "") echo "deploy: set OVERLAY (staging or prod): the environment of this cluster"; exit 1;; esac
	@found=; IFS=:; for f in $${KUBECONFIG:-$$HOME/.kube/config}; do if [ -f "$$f" ]; then found=1; fi; done; \
	if [ -z "$$found" ]; then echo "deploy: no kubeconfig: set KUBECONFIG to the cluster's kubeconfig file, or create ~/.kube/config"; exit 1; fi
	@command -v cosign >/dev/null || { echo "deploy: cosign is not installed: the image's signature is verified before anything is applied"; exit 1; }
	@case "$(SIGNER_IDENTITY)" in *//.github/*) echo "deploy: GITHUB_REPOSITORY is not set: it names the release workflow that must have signed the image (or set SIGNER_IDENTITY)"; exit 1;; esac
	cosign verify "$${IMAGE_REF}" --output text \
		--certificate-oidc-issuer https://token.actions.githubusercontent.com \
		--certificate-identity "$(SIGNER_IDENTITY)"
	export IMAGE_REPO="$${IMAGE_REF%@*}" IMAGE_DIGEST="$${IMAGE_REF#*@}"; $(K8S_RENDER)
	$(RUN) kubectl apply -f "build/k8s/$$OVERLAY.yaml"
	$(RUN) kubectl rollout status --timeout=5m "$$($(K8S) deployment --overlay "$$OVERLAY")"

# Model registry (GTO tags in this repository; README "Model registry") and the audit pack.
# The shell reads these variables (command line or environment); make never expands them.
export VERSION STAGE AT FORMAT REF MESSAGE PUSH TAG
REGISTRY := $(RUN) python -m mlops_template.governance.registry
.PHONY: register assign registry deploy-resolve audit

register: install ## Register a commit of main as a model version (semver, bump rule in README): [VERSION=] [REF=HEAD] [MESSAGE=] [PUSH=1]
	$(REGISTRY) register --ref "$${REF:-HEAD}" $${VERSION:+--version "$$VERSION"} $${MESSAGE:+--message "$$MESSAGE"} $${PUSH:+--push}

assign: install ## Assign a stage to a version; pushing the tag deploys it (deploy.yml): STAGE=prod VERSION=v1.2.0 [MESSAGE=] [PUSH=1]
	@test -n "$${STAGE:-}" && test -n "$${VERSION:-}" || { echo "assign: give STAGE=<stage> VERSION=<registered version>, e.g. STAGE=prod VERSION=v1.2.0"; exit 2; }
	$(REGISTRY) assign --stage "$$STAGE" --version "$$VERSION" $${MESSAGE:+--message "$$MESSAGE"} $${PUSH:+--push}

registry: install ## Every model version, its stage history and who is in production: [AT=2026-11-01] [FORMAT=json]
	@$(REGISTRY) show $${AT:+--at "$$AT"} --format "$${FORMAT:-text}"

deploy-resolve: install ## (CI, deploy.yml) The stage tag TAG -> the version, its image by digest, overlay and lineage -> $GITHUB_OUTPUT
	$(RUN) python -m mlops_template.governance.deploy --tag "$${TAG:?TAG is empty: the pushed stage tag, e.g. model#prod#3}"

audit: install ## Audit pack (Markdown + HTML) of the work tree's model, or of VERSION=v1.2.0 from git + the DVC remote
	$(RUN) python -m mlops_template.governance.audit $${VERSION:+--version "$$VERSION"} $${IMAGE_DIGEST:+--image-digest "$$IMAGE_DIGEST"}

# Monitoring (README "Monitoring"): the deployed model against the data it was built from.
# LOGS: the service's log directory (default: service.log_dir under BENTOML_HOME); OUTCOMES:
# the outcome file drop (default: monitor.outcomes). Not DVC stages: their input is production's.
SCENARIO ?= none
LOGS ?=
OUTCOMES ?=
MONITOR_ARGS = $(if $(LOGS),--logs "$(LOGS)") $(if $(OUTCOMES),--outcomes "$(OUTCOMES)")
.PHONY: simulate monitor monitor-check monitor-fetch monitor-issue retrain retrain-token bench-monitoring

simulate: install ## A production log window + its outcomes, offline: make simulate SCENARIO=none|data_drift|concept_drift|quality_break [ROWS=]
	$(RUN) python -m mlops_template.monitoring.simulate --scenario "$(SCENARIO)" $(if $(ROWS),--rows "$(ROWS)") $(MONITOR_ARGS)

monitor: install ## Compact the logs, compare with the model's training data, apply the retraining rule -> reports/monitoring/ (exit 0)
	$(RUN) python -m mlops_template.monitoring.monitor $(MONITOR_ARGS)

monitor-check: install ## `make monitor`, exiting 3 when the rule says retrain (for CI)
	$(RUN) python -m mlops_template.monitoring.monitor --check $(MONITOR_ARGS)

monitor-fetch: install ## (CI) Download the window from MONITOR_LOGS_URL (+ MONITOR_OUTCOMES_URL) with `dvc get-url`
	$(RUN) python -m mlops_template.monitoring.publish fetch

monitor-issue: install ## (CI) Open or update the ONE open issue labelled model-monitoring with the summary (gh, GH_TOKEN)
	$(RUN) python -m mlops_template.monitoring.publish issue

# NO_BRANCH=1 (CI): leave the changes in the work tree for the pull-request step.
retrain: install ## Add the labelled window to the training data (dvc add), retrain, champion vs challenger on the fresh records, commit on a branch [FORCE=1] [NO_BRANCH=1]
	$(RUN) python -m mlops_template.monitoring.retrain $(if $(FORCE),--force) $(if $(NO_BRANCH),--no-branch) $(if $(OUTCOMES),--outcomes "$(OUTCOMES)")

retrain-token: ## (CI) Fail, saying what to set up, when neither the GitHub App token nor RETRAIN_PAT is there
	@test -n "$${APP_TOKEN:-}$${RETRAIN_PAT:-}" || { echo "::error title=No token for the retrain pull request::A pull request opened with the default GITHUB_TOKEN triggers no workflow, so the retrain PR needs a GitHub App (repository variable MONITORING_APP_CLIENT_ID + secret MONITORING_APP_PRIVATE_KEY; contents and pull-requests: write) or a fine-grained PAT (secret RETRAIN_PAT; same permissions). README, 'Monitoring'."; exit 1; }
	@echo "retrain-token: $(if $(APP_TOKEN),GitHub App token,fine-grained PAT (RETRAIN_PAT))"

bench-monitoring: install ## Calibration (false alarms, detection rates by window size) and compute cost of `make monitor` vs Evidently -> benchmarks/results/
	$(RUN) python benchmarks/monitoring.py $(if $(EVIDENTLY_PYTHON),--evidently-python "$(EVIDENTLY_PYTHON)")

gate: install ## Check the metrics against the floors in params.yaml; BASE=main: also vs that revision
	@if [ -n "$${BASE:-}" ]; then \
		$(RUN) python -m mlops_template.review.gate --base "$$BASE" --base-name "$${BASE_NAME:-$$BASE}"; \
	else \
		$(RUN) python -m mlops_template.review.gate; \
	fi

# Experiments through DVC's queue: the grid is params.yaml `experiments` (README "Experiments").
# Each experiment is a git ref (refs/exps/...): `dvc exp show` lists them, `dvc exp push origin
# <name>` shares one (its data goes to the DVC remote), `dvc exp branch <name> <branch>` promotes.
.PHONY: experiments experiments-table bench-uncertainty

experiments: install ## Run the params.yaml `experiments` grid on this commit through DVC's queue (dvc exp run --queue)
	$(RUN) python -m mlops_template.pipeline.check
	$(RUN) python -m mlops_template.review.experiments run

experiments-table: install ## Rank this commit's experiments by expected profit, with intervals vs the baseline -> reports/experiments.md
	$(RUN) python -m mlops_template.review.experiments table

bench-uncertainty: install ## Cost of the paired bootstrap (1k-1M test rows) -> benchmarks/results/uncertainty.*
	$(RUN) python benchmarks/uncertainty.py

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

pull-data: install ## Fetch only the DVC-tracked source data (.dvc files); fail naming what is missing and the remote
	$(RUN) python -m mlops_template.pipeline.pull

rename: ## Make the template yours: make rename NAME=acme_churn (package, distribution, names)
	@test -n "$(NAME)" || { echo "rename: give the new package name, e.g. make rename NAME=acme_churn"; exit 2; }
	$(PYTHON) scripts/rename.py "$(NAME)"

clean: ## Remove caches and build leftovers (keeps .venv, .tools and DVC data)
	rm -rf .pytest_cache .mypy_cache .ruff_cache dist build
