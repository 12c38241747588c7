# syntax=docker/dockerfile:1
# The payments-ml image: the package and its runtime dependencies on a slim Python, run as
# a non-root user (uid 1000), with the Kedro project files (pyproject.toml, conf/base,
# conf/cluster) under /app. The default command serves the scorer (Ray Serve, port 8000)
# with the `cluster` configuration; any other command runs in the same environment:
#   docker build -t payments-ml:0.1.0 .
#   docker run --rm --shm-size=2g -p 8000:8000 -v /shared/payments-ml:/app/data
#     -e MLFLOW_TRACKING_URI=... -e REDIS_URL=... payments-ml:0.1.0   (one command)
#   docker run --rm --shm-size=2g -v ... -e ... payments-ml:0.1.0 kedro run --env cluster --pipelines features
# (/app/data holds the datasets and the Feast registry the scorer reads.)
# It is also the image of the KubeRay pods (deploy/kuberay/): it has bash, wget (KubeRay's
# default probes call it), and the same Python (3.11) and Ray as the project.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# --- build: install the package (no dev extras) under /install ------------------------------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore
WORKDIR /build
COPY pyproject.toml README.md ./
COPY src ./src
# --prefix, not a virtualenv: the runtime stage copies it into /usr/local, whose bin/ is on
# the PATH that Debian's /etc/profile sets for login shells. KubeRay starts Ray with
# `/bin/bash -lc`, which would drop a virtualenv's bin/ from the PATH.
RUN pip install --no-cache-dir --prefix=/install .

# --- runtime -----------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime
# libgomp1: LightGBM's OpenMP runtime. wget: KubeRay's default readiness and liveness
# probes. tini: PID 1 that reaps the many processes Ray starts (docker run).
# Unpinned on purpose: bookworm's security updates replace these versions.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgomp1 tini wget \
    && rm -rf /var/lib/apt/lists/*
RUN groupadd --gid 1000 ray \
    && useradd --uid 1000 --gid 1000 --create-home --shell /bin/bash ray
COPY --from=build /install /usr/local
WORKDIR /app
# The Kedro project around the installed package: `kedro run` needs pyproject.toml, conf/
# and src/ (Kedro checks that the source folder exists). conf/local stays empty: settings
# and credentials come from the environment. data/ is where `data_root` points by default
# (mount shared storage there, or set PAYMENTS_ML_DATA_ROOT).
COPY pyproject.toml ./
COPY src ./src
COPY conf/base ./conf/base
COPY conf/cluster ./conf/cluster
COPY conf/logging.yml ./conf/logging.yml
RUN mkdir -p conf/local data logs \
    && chown ray:ray conf/local data logs
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    KEDRO_DISABLE_TELEMETRY=true \
    DO_NOT_TRACK=1 \
    RAY_USAGE_STATS_ENABLED=0 \
    RAY_SERVE_ENABLE_HA_PROXY=1 \
    RAY_SERVE_THROUGHPUT_OPTIMIZED=1 \
    RAY_SERVE_DEFAULT_HTTP_HOST=0.0.0.0
USER 1000:1000
# 8000 scorer (Serve), 8265 Ray dashboard, 6379 Ray GCS, 10001 Ray client.
EXPOSE 8000 8265 6379 10001
# Healthy when the scorer answers /health with status "ok" (model loaded, online store up).
HEALTHCHECK --interval=30s --timeout=5s --start-period=180s --retries=3 \
    CMD ["python", "-c", "import json, sys, urllib.request as u; health = json.load(u.urlopen('http://127.0.0.1:8000/health', timeout=4)); sys.exit(health.get('status') != 'ok')"]
ENTRYPOINT ["tini", "--"]
CMD ["serve", "run", "--name", "fraud-scorer", "payments_ml.serving.app:build_app", "project_path=/app", "env=cluster"]
