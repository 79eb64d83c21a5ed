# citygrid worker image: `docker build -t ghcr.io/citygrid/citygrid:0.1.0 .`
#
# The entrypoint is the `citygrid` command, so the same image runs a worker (the default command),
# `topics create`, `registry load` and `simulate`. Every setting is a CITYGRID_* variable
# (README, "Settings"); the ones set here are what a container needs to differ from a laptop.

# --- builder: a virtualenv holding citygrid and its dependencies --------------------------------
FROM python:3.11.11-slim-bookworm AS builder

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1

RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

WORKDIR /src
COPY pyproject.toml README.md ./
COPY schemas ./schemas
COPY streams ./streams
COPY agents ./agents
# Not editable: the runtime image gets the installed package, not this source tree.
RUN pip install .

# --- runtime: the same base, the venv and the data files, a fixed non-root user -----------------
FROM python:3.11.11-slim-bookworm AS runtime

# A fixed uid/gid so Kubernetes (runAsUser, fsGroup) and volume owners can name it.
RUN groupadd --system --gid 10001 citygrid \
    && useradd --system --uid 10001 --gid 10001 --create-home --home-dir /home/citygrid \
        --shell /usr/sbin/nologin citygrid \
    && mkdir -p /var/lib/citygrid \
    && chown 10001:10001 /var/lib/citygrid

COPY --from=builder /opt/venv /opt/venv

WORKDIR /app
COPY deploy/registry /app/deploy/registry
COPY deploy/calendar /app/deploy/calendar
COPY deploy/scenarios /app/deploy/scenarios
# streams.registry.DEMO_REGISTRY (the default of `registry load` and the road list `simulate`
# places its traffic on) is looked up next to the installed package, i.e. in site-packages/deploy.
RUN ln -s /app/deploy /opt/venv/lib/python3.11/site-packages/deploy

# CITYGRID_WEB_HOST: the default (127.0.0.1) would hide /metrics, /health and /ready from
# Prometheus, probes and the HEALTHCHECK's neighbours. The data dir holds the RocksDB tables:
# mount a volume there.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    CITYGRID_WEB_HOST=0.0.0.0 \
    CITYGRID_WEB_PORT=6066 \
    CITYGRID_DATA_DIR=/var/lib/citygrid

USER 10001:10001

EXPOSE 6066

# slim has no curl: python's urllib fails (non-zero exit) on a refused connection or a non-2xx.
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('CITYGRID_WEB_PORT', '6066') + '/health', timeout=4)"]

ENTRYPOINT ["citygrid"]
CMD ["worker", "-l", "info"]
