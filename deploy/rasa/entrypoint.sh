#!/bin/sh
# Starts the Rasa server of the image (deploy/docker/rasa.Dockerfile) the way `make run` does
# (scripts/stack.py, rasa_run_arguments): the token joined with "=", since one may start with "-".
# Extra arguments are passed on to `rasa run`.
set -eu
: "${RASA_TOKEN:?RASA_TOKEN must be set: the secret of Rasa's HTTP API (docs/deploy.md, Secrets)}"
# The placeholders Rasa's Helm chart puts in RASA_TOKEN when it is given none: not secrets.
case "${RASA_TOKEN}" in
    UNSET | rasaToken)
        echo "error: RASA_TOKEN is the Helm chart's placeholder; give the real secret (docs/deploy.md)" >&2
        exit 1
        ;;
esac
exec python -m connectors.rasa_launcher run \
    --model "${MODEL_PATH:-models}" \
    --endpoints config/endpoints.yml \
    --credentials config/credentials.yml \
    --interface "${RASA_HOST}" \
    --port "${RASA_PORT}" \
    --enable-api \
    "--auth-token=${RASA_TOKEN}" \
    "$@"
