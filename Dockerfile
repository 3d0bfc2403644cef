# syntax=docker/dockerfile:1
# citcon-sim in a container: `citcon-sim serve`, configured by CITCON_SIM_* variables.
#
#   docker build -t citcon-sim .
#   docker run --rm -p 8080:8080 citcon-sim
#   docker run --rm -p 8080:8080 \
#     -v ./merchants.yaml:/config/merchants.yaml:ro -e CITCON_SIM_MERCHANTS=/config/merchants.yaml \
#     -e CITCON_SIM_PUBLIC_URL=http://localhost:8080 citcon-sim
#   docker run --rm citcon-sim serve --help     # every option and its variable
#
# tests/test_dockerfile.py checks this file without a Docker engine; keep it in step.

ARG BASE=python:3.12-slim

# -- build: the project's wheel and wheels of everything it needs ---------------------------
FROM ${BASE} AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY citcon_sim ./citcon_sim
# tzdata: slim Debian images may ship no /usr/share/zoneinfo; zoneinfo then uses this package.
RUN pip wheel --no-cache-dir --wheel-dir /wheels . tzdata

# -- runtime: those wheels installed, no source tree, no wheel files, no pip cache ----------
FROM ${BASE}
LABEL org.opencontainers.image.title="citcon-sim" \
      org.opencontainers.image.description="A local, stateful simulator of Citcon's merchant APIs (Online API, CHOP, UPI v1)" \
      org.opencontainers.image.licenses="MIT"
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
# The wheels are mounted for this one step only, so they never become an image layer.
# Faker's locale modules the simulator never loads (20 MB) are removed in the same step:
# scripts/trim-faker.py.
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    --mount=type=bind,source=scripts/trim-faker.py,target=/tmp/trim-faker.py \
    pip install --no-cache-dir --no-index /wheels/*.whl \
    && python /tmp/trim-faker.py \
    && useradd --system --uid 10001 --user-group --no-create-home --shell /usr/sbin/nologin \
       citcon
# Mount merchants and scenario files here, e.g. -v ./merchants.yaml:/config/merchants.yaml:ro
WORKDIR /config

USER 10001:10001
ENV CITCON_SIM_HOST=0.0.0.0 \
    CITCON_SIM_PORT=8080
EXPOSE 8080
# Python's standard library only: slim images have no curl.
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/_sim/health' % os.environ.get('CITCON_SIM_PORT', '8080'), timeout=2)"]
ENTRYPOINT ["citcon-sim"]
CMD ["serve"]
