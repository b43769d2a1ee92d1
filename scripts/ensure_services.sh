#!/usr/bin/env bash
# Makes sure PostgreSQL, Redis and RabbitMQ answer on 127.0.0.1 for the tests: starts a stopped one where
# this machine knows how, and otherwise fails loudly. Tests never skip for a missing service.
set -uo pipefail

pg_host="${TEST_PG_HOST:-127.0.0.1}"; pg_port="${TEST_PG_PORT:-5432}"
redis_host="${TEST_REDIS_HOST:-127.0.0.1}"; redis_port="${TEST_REDIS_PORT:-6379}"
amqp_host="${TEST_AMQP_HOST:-127.0.0.1}"; amqp_port="${TEST_AMQP_PORT:-5672}"

pg_up() { pg_isready -q -h "$pg_host" -p "$pg_port" 2>/dev/null; }
redis_up() { [ "$(redis-cli -h "$redis_host" -p "$redis_port" ping 2>/dev/null)" = "PONG" ]; }
# The AMQP handshake's first bytes: a listening RabbitMQ answers "AMQP" to a wrong header.
amqp_up() { timeout 3 bash -c "exec 3<>/dev/tcp/$amqp_host/$amqp_port && printf 'HELLO\r\n\r\n' >&3 && head -c 4 <&3" 2>/dev/null | grep -q AMQP; }
wait_for() { for _ in $(seq 1 30); do "$1" && return 0; sleep 1; done; return 1; }

if ! pg_up; then
  echo "==> PostgreSQL is not answering on $pg_host:$pg_port; trying to start it..."
  if command -v pg_ctlcluster >/dev/null 2>&1 && [ -d /etc/postgresql ]; then
    for version in $(ls /etc/postgresql); do
      pg_ctlcluster --skip-systemctl-redirect "$version" main start 2>&1 || true
    done
  fi
  wait_for pg_up || {
    echo "error: PostgreSQL is down on $pg_host:$pg_port and could not be started." >&2
    echo "  Start it (e.g. pg_ctlcluster <version> main start) with a database 'test' and trust auth." >&2
    exit 1
  }
fi

if ! redis_up; then
  echo "==> Redis is not answering on $redis_host:$redis_port; trying to start it..."
  if command -v redis-server >/dev/null 2>&1; then
    redis-server --daemonize yes --bind 127.0.0.1 --port "$redis_port" --save "" --appendonly no \
      --dir "${TMPDIR:-/tmp}" --logfile "${TMPDIR:-/tmp}/redis-autoservicio.log" 2>&1 || true
  fi
  wait_for redis_up || {
    echo "error: Redis is down on $redis_host:$redis_port and could not be started (redis-server)." >&2
    exit 1
  }
fi
if ! amqp_up; then
  echo "==> RabbitMQ is not answering on $amqp_host:$amqp_port; trying to start it..."
  if command -v rabbitmq-server >/dev/null 2>&1; then
    (service rabbitmq-server start || rabbitmq-server -detached) >/dev/null 2>&1 || true
  fi
  for _ in $(seq 1 60); do amqp_up && break; sleep 1; done
  amqp_up || {
    echo "error: RabbitMQ is down on $amqp_host:$amqp_port and could not be started." >&2
    echo "  Start it (service rabbitmq-server start) with the guest/guest user; the analytics test needs it." >&2
    exit 1
  }
fi
echo "==> PostgreSQL ($pg_host:$pg_port), Redis ($redis_host:$redis_port) and RabbitMQ ($amqp_host:$amqp_port) are up."
