# syntax=docker/dockerfile:1
# The Rasa server: the trained model, the Twilio/REST/console channels and the SQL/Redis stores
# (connectors/), started through connectors.rasa_launcher. Build from the repository's root after
# `make train` (docs/deploy.md):
#   docker build -f deploy/docker/rasa.Dockerfile --build-arg MODEL=models/<hash>.tar.gz -t autoservicio-rasa:<version> .
FROM python:3.10.13-slim-bookworm

# TF_*_PARALLELISM_THREADS: one TensorFlow thread per pool, as scripts/stack.py's RASA_THREAD_ENV
# (README, "Benchmark"): replicas, not threads, use more cores.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONPATH=/app \
    BOT_ENV=production \
    RASA_HOST=0.0.0.0 \
    RASA_PORT=5005 \
    RASA_TELEMETRY_ENABLED=false \
    TF_CPP_MIN_LOG_LEVEL=2 \
    TF_INTRA_OP_PARALLELISM_THREADS=1 \
    TF_INTER_OP_PARALLELISM_THREADS=1 \
    SQLALCHEMY_SILENCE_UBER_WARNING=1 \
    MPLCONFIGDIR=/tmp/matplotlib

WORKDIR /app
RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --home-dir /app --shell /usr/sbin/nologin app

# The same pinned lock as `make install`, so the image runs what the tests ran.
COPY requirements.lock ./
RUN pip install --no-cache-dir -r requirements.lock

COPY bot/ bot/
COPY connectors/ connectors/
COPY kb/ kb/
COPY domain.yml ./
# The channels, and the deployment's endpoints (the action server at ACTION_SERVER_URL: a load
# balancer or a Service). Under config/: Rasa's Helm chart mounts files of its own over
# /app/endpoints.yml and /app/credentials.yml, which this image does not read.
COPY credentials.yml deploy/rasa/endpoints.yml config/
COPY deploy/rasa/entrypoint.sh ./
ARG MODEL
COPY ${MODEL} models/
RUN mkdir -p var && chown app:app var

USER 10001:10001
EXPOSE 5005
# Readiness without a credential: the model is loaded and the journal processed (docs/deploy.md).
HEALTHCHECK --interval=15s --timeout=5s --start-period=180s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/webhooks/twilio/ready' % os.environ['RASA_PORT'], timeout=4)"]
ENTRYPOINT ["sh", "/app/entrypoint.sh"]
