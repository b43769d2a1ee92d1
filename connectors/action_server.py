"""The action server: rasa_sdk's app, listening on ACTION_HOST, answering only Rasa.

`python -m connectors.action_server` is what `make run` starts instead of `python -m rasa_sdk`,
whose command line has no host option (it listens on 0.0.0.0) and no authentication. Here every
request but `/health` must carry ACTION_SERVER_TOKEN, which Rasa sends from endpoints.yml
(`Authorization: Bearer <token>`; rasa's own `token:` option, `?token=<token>`, works too);
anything else gets 403 before an action runs. The actions trust the tracker they are sent, so
whoever can reach this server unauthenticated could make up a verified customer.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import sys
from pathlib import Path

from rasa_sdk import utils
from rasa_sdk.endpoint import create_app as create_sdk_app
from rasa_sdk.plugin import plugin_manager
from sanic import Sanic, response
from sanic.request import Request
from sanic.response import HTTPResponse

from bot.kb import KBError, knowledge_base
from bot.settings import Settings, SettingsError

ACTIONS_PACKAGE = "actions"  # loaded by rasa_sdk by name: connectors/ does not import actions/
OPEN_PATHS = frozenset({"/health"})  # what a load balancer or `make run` polls, without a secret


def presented_token(request: Request) -> str | None:
    header = request.headers.get("Authorization", "")
    if header[:7].lower() == "bearer ":
        return header[7:].strip()
    return request.args.get("token")


def require_token(app: Sanic, token: str) -> None:
    """Refuse (403) every request but OPEN_PATHS that does not carry `token`."""
    expected = token.encode()

    async def check(request: Request) -> HTTPResponse | None:
        if request.path in OPEN_PATHS:
            return None
        given = presented_token(request)
        if given is None or not hmac.compare_digest(given.encode(), expected):
            return response.json({"error": "forbidden"}, status=403)
        return None

    app.register_middleware(check, "request")


def create_app(token: str, actions_package: str = ACTIONS_PACKAGE) -> Sanic:
    # No CORS: only Rasa calls this server, never a browser.
    app = create_sdk_app(actions_package, cors_origins=None)
    require_token(app, token)
    plugin_manager().hook.attach_sanic_app_extensions(app=app)
    return app


def load_knowledge_base_at_start(app: Sanic, folder: Path) -> None:
    """Load kb/ (and its sentence vectors) once the server is up, so the first customer's question
    does not wait for it, and a broken article shows in the log at start. A failure stops nothing:
    action_kb_answer answers without the knowledge base until it loads."""

    @app.listener("after_server_start")
    async def load(_app: Sanic, _loop: object) -> None:
        log = logging.getLogger(__name__)
        try:
            loaded = await asyncio.to_thread(knowledge_base, folder)
        except KBError as error:
            log.error(
                "the knowledge base could not be loaded; frequent questions get their old answers: %s", error
            )
            return
        log.info("knowledge base: %d articles from %s", len(loaded.articles), folder)


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s - %(message)s")
    try:
        settings = Settings.from_env()
    except SettingsError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    if not settings.action_server_token:
        print(
            "error: ACTION_SERVER_TOKEN must be set: the secret Rasa sends the action server "
            "(endpoints.yml). `make run` generates one into var/ in development.",
            file=sys.stderr,
        )
        return 1
    app = create_app(settings.action_server_token)
    load_knowledge_base_at_start(app, settings.kb_dir)
    # No access log: rasa's `token:` option puts the secret in the query string.
    logging.getLogger(__name__).info(
        "Action server on http://%s:%s (token required)", settings.action_host, settings.action_port
    )
    app.run(
        settings.action_host,
        settings.action_port,
        access_log=False,
        workers=utils.number_of_sanic_workers(),
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
