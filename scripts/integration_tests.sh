#!/usr/bin/env bash
# `make integration`: pytest tests/integration in two processes side by side.
#
# The tests marked own_stack (a kill -9 round, the scale test behind HAProxy, the bench's short
# run, the REST stack) start a whole stack of their own and spend most of their minutes waiting
# on it: run one after the other with the rest, they doubled the suite's time while the two
# cores sat half idle. They run in a second pytest beside the rest, on a PostgreSQL database and
# Redis databases of their own (so neither process ever sees the other's rows or keys); their
# output is printed when both have ended, and either one failing fails the whole.
set -uo pipefail
cd "$(dirname "$0")/.."

pg_host="${TEST_PG_HOST:-127.0.0.1}"; pg_port="${TEST_PG_PORT:-5432}"
own_db="${OWN_STACK_DATABASE:-test_own_stack}"
own_redis="${OWN_STACK_REDIS_URL:-redis://127.0.0.1:6379/12}"
own_stack_redis="${OWN_STACK_STACK_REDIS_URL:-redis://127.0.0.1:6379/14}"

psql_test() { psql -q -X -h "$pg_host" -p "$pg_port" -U postgres -d test "$@"; }
if ! psql_test -tAc "select 1 from pg_database where datname = '$own_db'" | grep -q 1; then
  psql_test -c "create database \"$own_db\"" || {
    echo "error: could not create the PostgreSQL database $own_db for the own-stack tests" >&2
    echo "  (PostgreSQL on $pg_host:$pg_port with trust auth, as \`make services\` checks)." >&2
    exit 1
  }
fi

mkdir -p var
log="var/integration-own-stack.log"
echo "==> Tests with a stack of their own run beside the rest (their output follows the rest's; live in $log)"
TEST_DATABASE_URL="postgresql+psycopg2://postgres@$pg_host:$pg_port/$own_db" \
  TEST_REDIS_URL="$own_redis" TEST_STACK_REDIS_URL="$own_stack_redis" \
  .venv/bin/pytest tests/integration -m own_stack -p no:cacheprovider --durations=10 >"$log" 2>&1 &
own=$!
trap 'kill "$own" 2>/dev/null' INT TERM

.venv/bin/pytest tests/integration -m "not own_stack" --durations=25
rest=$?
wait "$own"
own_code=$?
echo
echo "==> The tests with a stack of their own ($log):"
cat "$log"
if [ "$rest" -ne 0 ] || [ "$own_code" -ne 0 ]; then
  echo "error: integration tests failed (the rest: exit $rest; the own-stack ones: exit $own_code)" >&2
  exit 1
fi
