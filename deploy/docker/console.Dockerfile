# syntax=docker/dockerfile:1
# The agent console (connectors/console): agents log in, answer handed-over conversations and hand
# them back. Put it behind a TLS proxy for agents (docs/agents.md). Build from the repository's root:
#   docker build -f deploy/docker/console.Dockerfile -t autoservicio-console:<version> .
FROM python:3.10.13-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONPATH=/app \
    BOT_ENV=production \
    CONSOLE_HOST=0.0.0.0 \
    CONSOLE_PORT=8080 \
    SQLALCHEMY_SILENCE_UBER_WARNING=1

WORKDIR /app
RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --home-dir /app --shell /usr/sbin/nologin app

# The same pinned lock as `make install` (and as the other images: Docker shares these layers).
COPY requirements.lock ./
RUN pip install --no-cache-dir -r requirements.lock

COPY bot/ bot/
COPY connectors/ connectors/
COPY kb/ kb/
COPY domain.yml ./
RUN mkdir -p var && chown app:app var

USER 10001:10001
EXPOSE 8080
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/ready' % os.environ['CONSOLE_PORT'], timeout=4)"]
ENTRYPOINT ["python", "-m", "connectors.console"]
CMD ["serve"]
