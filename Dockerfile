# syntax=docker/dockerfile:1
# opsloop's production image. One image runs every role; the command picks it:
#   opsloop api (the default) · opsloop worker · opsloop beat · opsloop migrate
# docker-compose.yml runs the whole stack; alone:
#   docker build -t opsloop . && docker run -e OPSLOOP_API_TOKEN=... -e DATABASE_URL=... opsloop

ARG PYTHON_IMAGE=python:3.11-slim

# ---------------------------------------------------------------- build
# uv comes from PyPI (pip), pinned; it installs exactly the locked dependencies and opsloop
# itself (as a wheel, not editable) into /app/.venv. Only that venv reaches the final image.
FROM ${PYTHON_IMAGE} AS build

ARG UV_VERSION=0.13.9
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PYTHON=/usr/local/bin/python3 \
    UV_PROJECT_ENVIRONMENT=/app/.venv
RUN pip install "uv==${UV_VERSION}"

WORKDIR /app
# Dependencies first, in their own layer: rebuilt only when the lock changes.
COPY pyproject.toml uv.lock README.md ./
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --locked --no-dev --no-install-project
# The source: every package of the wheel (pyproject's [tool.hatch.build.targets.wheel]).
COPY bot ./bot
COPY channels ./channels
COPY agents ./agents
COPY workers ./workers
COPY prompts ./prompts
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --locked --no-dev --no-editable

# ---------------------------------------------------------------- runtime
FROM ${PYTHON_IMAGE}

# A fixed uid/gid, so volume ownership is predictable across rebuilds. /data is the home
# (OPSLOOP_HOME): the scheduler's state lives in /data/.opsloop; a new named volume mounted
# there starts as a copy of it, owner included.
RUN groupadd --system --gid 10001 opsloop \
    && useradd --system --uid 10001 --gid opsloop --home-dir /data --no-create-home \
        --shell /usr/sbin/nologin opsloop \
    && mkdir -p /data/.opsloop \
    && chown -R opsloop:opsloop /data

# Owned by root: the running user can read the code but not change it.
COPY --from=build /app/.venv /app/.venv

ENV PATH=/app/.venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    OPSLOOP_HOME=/data \
    OPSLOOP_BIND=0.0.0.0:8000

WORKDIR /app
USER opsloop
VOLUME ["/data"]
EXPOSE 8000
CMD ["opsloop", "api"]
