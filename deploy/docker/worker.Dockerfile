# syntax=docker/dockerfile:1
# The outbox worker (connectors/outbox_worker.py): retries queued CRM/ERP writes and tells the
# customer their fate. Its /health and /ready listen on loopback inside the container: only this
# HEALTHCHECK and Kubernetes' exec probes ask them. The same image runs the migrations
# (`python -m bot.migrations upgrade`). Build from the repository's root:
#   docker build -f deploy/docker/worker.Dockerfile -t autoservicio-worker:<version> .
FROM python:3.10.13-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONPATH=/app \
    BOT_ENV=production \
    OUTBOX_WORKER_PORT=5056 \
    SQLALCHEMY_SILENCE_UBER_WARNING=1

WORKDIR /app
RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --home-dir /app --shell /usr/sbin/nologin app

# The same pinned lock as `make install` (and as the other images: Docker shares these layers).
COPY requirements.lock ./
RUN pip install --no-cache-dir -r requirements.lock

COPY bot/ bot/
COPY connectors/ connectors/
COPY domain.yml ./

USER 10001:10001
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/ready' % os.environ['OUTBOX_WORKER_PORT'], timeout=4)"]
ENTRYPOINT ["python", "-m", "connectors.outbox_worker"]
