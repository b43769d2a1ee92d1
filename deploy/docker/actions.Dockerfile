# syntax=docker/dockerfile:1
# The action server: rasa_sdk running actions/ behind connectors.action_server, which answers only
# ACTION_SERVER_TOKEN (and /health without it). Build from the repository's root:
#   docker build -f deploy/docker/actions.Dockerfile -t autoservicio-actions:<version> .
FROM python:3.10.13-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONPATH=/app \
    BOT_ENV=production \
    ACTION_HOST=0.0.0.0 \
    ACTION_PORT=5055 \
    TF_CPP_MIN_LOG_LEVEL=2 \
    SQLALCHEMY_SILENCE_UBER_WARNING=1

WORKDIR /app
RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --home-dir /app --shell /usr/sbin/nologin app

# The same pinned lock as `make install` (and as the other images: Docker shares these layers).
COPY requirements.lock ./
RUN pip install --no-cache-dir -r requirements.lock

COPY bot/ bot/
COPY connectors/ connectors/
COPY actions/ actions/
COPY kb/ kb/
COPY domain.yml ./
# var/: the knowledge base's sentence-vector cache.
RUN mkdir -p var && chown app:app var

USER 10001:10001
EXPOSE 5055
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health' % os.environ['ACTION_PORT'], timeout=4)"]
ENTRYPOINT ["python", "-m", "connectors.action_server"]
