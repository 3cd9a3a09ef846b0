# The serving image: the bento (model, service code, lineage) on a slim Python, nothing else.
#
#   make container [IMAGE=name:tag] [BASE_IMAGE=...]    # prepares the context, then docker build
#
# The build context is the repository, cut down by .dockerignore to what `make container-context`
# writes under build/container/:
#   requirements.txt  the runtime dependencies exported from uv.lock, each with its sha256
#   bento/            the bento archive `make bento` exports, unpacked: model included
# Lineage (git revision, model version and sha256, dvc.lock digest, metrics) arrives as build
# arguments and ends up in OCI labels, so `docker inspect` tells where the model came from.
# Works with the classic builder and with BuildKit (no BuildKit-only syntax).

# The base image comes from docker/base-image/Dockerfile (python:3.11-slim pinned by digest, kept
# fresh by Dependabot): `make container` and the release workflow pass it. Override it for an
# internal registry or an air-gapped mirror: make container BASE_IMAGE=registry/python@sha256:...
ARG BASE_IMAGE

# --- builder: a virtualenv with exactly the locked runtime packages -------------------------
FROM ${BASE_IMAGE} AS builder

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_ROOT_USER_ACTION=ignore \
    PYTHONDONTWRITEBYTECODE=1

COPY build/container/requirements.txt /tmp/requirements.txt

# Wheels only (no compiler anywhere) and every file checked against the hash in uv.lock.
# Then drop what a server never runs: pip/setuptools, the packages' own test suites.
# Bytecode is compiled here, once, so workers start without compiling (and the non-root user
# could not write __pycache__ anyway).
RUN python -m venv /opt/venv \
 && /opt/venv/bin/pip install --no-deps --require-hashes --only-binary=:all: --no-compile \
      -r /tmp/requirements.txt \
 && /opt/venv/bin/pip uninstall --yes --quiet pip setuptools \
 && find /opt/venv/lib -depth -type d -name tests -path '*/site-packages/*/*' -exec rm -rf {} + \
 && python -m compileall -q -j 0 /opt/venv/lib

# --- runtime ----------------------------------------------------------------------------------
FROM ${BASE_IMAGE}

# A numeric USER lets Kubernetes' runAsNonRoot verify it without reading /etc/passwd.
RUN groupadd --system --gid 10001 app \
 && useradd --system --uid 10001 --gid app --create-home --home-dir /home/app \
      --shell /usr/sbin/nologin app

COPY --from=builder /opt/venv /opt/venv
COPY build/container/bento /app/bento

# BENTOML_CONTAINERIZED: BentoML does not respawn a worker that dies, so a worker that cannot
# start (a tampered model fails its sha256 check) ends the container with exit code 1 instead
# of being retried forever behind a never-ready server; the orchestrator sees a failed start.
ENV PATH=/opt/venv/bin:${PATH} \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    BENTOML_HOME=/home/app/bentoml \
    BENTOML_DO_NOT_TRACK=True \
    BENTOML_CONTAINERIZED=true \
    BENTOML_HOST=0.0.0.0 \
    BENTOML_PORT=3000

USER 10001:10001
WORKDIR /home/app
EXPOSE 3000

# Ready = the model is loaded and verified (BentoML's /readyz). Python's urllib, no curl needed.
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request as u; u.urlopen('http://127.0.0.1:' + os.environ['BENTOML_PORT'] + '/readyz', timeout=2)"]

CMD ["bentoml", "serve", "/app/bento"]

# Lineage last: these change with every model and commit, the layers above do not.
ARG BASE_IMAGE
ARG SOURCE=""
ARG REVISION=""
ARG GIT_DIRTY=""
ARG CREATED=""
ARG VERSION=""
ARG BENTO_TAG=""
ARG MODEL_VERSION=""
ARG MODEL_SHA256=""
ARG DVC_LOCK_SHA256=""
ARG METRICS=""
ARG TITLE="model-service"
LABEL org.opencontainers.image.title="${TITLE}" \
      org.opencontainers.image.description="Model service (BentoML): probability of the positive label and a profit-maximising contact decision" \
      org.opencontainers.image.licenses="MIT" \
      org.opencontainers.image.base.name="${BASE_IMAGE}" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.version="${VERSION}" \
      mlops.git.dirty="${GIT_DIRTY}" \
      mlops.bento.tag="${BENTO_TAG}" \
      mlops.model.version="${MODEL_VERSION}" \
      mlops.model.sha256="${MODEL_SHA256}" \
      mlops.dvc-lock.sha256="${DVC_LOCK_SHA256}" \
      mlops.metrics="${METRICS}"
