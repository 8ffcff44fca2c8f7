# syntax=docker/dockerfile:1
#
# Two images from one file (needs BuildKit, the default builder since Docker 23):
#
#   docker build --target train -t tiered-train .   # torch (CPU); its command builds the family into /models
#   docker build -t tiered-serve .                  # the last stage, `serve`: onnxruntime, no torch
#
# docker-compose.yml wires both together (train once into a named volume, then serve it read-only).

# One pinned base for every stage, so the trainer and the server run the same Python.
FROM python:3.11.14-slim-bookworm AS base
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore \
    TIERED_MODELS_DIR=/models
# The same uid in both images (USER names it by number, so hosts and runAsNonRoot can check it): the
# volume the trainer fills is readable by the server without a chown.
RUN groupadd --system --gid 10001 tiered \
    && useradd --system --uid 10001 --gid tiered --create-home --shell /usr/sbin/nologin tiered \
    && install -d -o tiered -g tiered /models


# Builds the project wheel; nothing from this stage but the wheel reaches an image.
FROM base AS builder
WORKDIR /src
COPY pyproject.toml README.md cli.py ./
COPY app/ app/
COPY market/ market/
COPY models/ models/
COPY training/ training/
RUN pip wheel --no-deps --wheel-dir /dist .


# The training job: `docker run -v tiered-models:/models tiered-train` writes a family and its CURRENT.
FROM base AS train
# torch comes from the CPU index: PyPI's Linux wheels pull in gigabytes of CUDA libraries.
RUN pip install --index-url https://download.pytorch.org/whl/cpu torch==2.13.0
# The wheel's file name carries the version pyproject.toml sets, so it is found by glob, not pinned twice;
# torch==2.13.0 (the train extra's pin) is already satisfied by the CPU build above.
# hadolint ignore=DL3013
RUN --mount=type=bind,from=builder,source=/dist,target=/dist \
    for wheel in /dist/tiered-*.whl; do pip install "${wheel}[train]"; done
# matplotlib (training reports) wants a writable config directory.
ENV MPLCONFIGDIR=/tmp/matplotlib
VOLUME ["/models"]
USER 10001:10001
WORKDIR /home/tiered
CMD ["tiered", "train", "--out", "/models"]


# The service: the wheel without extras (onnxruntime, FastAPI, uvicorn), no torch, no compilers, not root.
FROM base AS serve
RUN --mount=type=bind,from=builder,source=/dist,target=/dist \
    pip install /dist/tiered-*.whl
# Settings are read by `tiered serve` from TIERED_* variables; these are the container's defaults.
# One worker per container: scale out with replicas (`--scale api=3`), each with its own health.
ENV TIERED_HOST=0.0.0.0 \
    TIERED_PORT=8000 \
    TIERED_WORKERS=1
VOLUME ["/models"]
USER 10001:10001
WORKDIR /home/tiered
EXPOSE 8000
# /readyz answers 200 when the family is loaded (or degraded) and 503 when none is; urlopen raises on 503.
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ['TIERED_PORT'] + '/readyz', timeout=2)"]
CMD ["tiered", "serve"]
