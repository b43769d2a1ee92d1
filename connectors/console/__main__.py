"""Runs the agent console (`serve`, what `make run` starts) and manages agents (`agent`, `demo-agent`).

python -m connectors.console serve [--port 8080]
python -m connectors.console agent NAME [--role agent|supervisor]
                                              # asks the password twice, without echo
                                              # (AGENT_PASSWORD=... for scripts); for an existing
                                              # agent given --role, Enter keeps the password
python -m connectors.console demo-agent       # development only: a supervisor, random password
python -m connectors.console unlock NAME [--address IP]   # lifts a login lockout
"""

from __future__ import annotations

import argparse
import getpass
import logging
import os
import secrets
import sys

from bot.handoff.agents import AgentError, create_agent
from bot.handoff.store import ROLES, SUPERVISOR
from bot.settings import VAR_DIR, Settings, SettingsError, require_media_secret, required_token
from bot.wiring import build_wiring
from connectors.console.app import create_app
from connectors.console.rasa_api import RasaApi

SECRET_FILE = VAR_DIR / "console_secret"
DEMO_AGENT = "demo"


def console_secret(settings: Settings) -> str:
    """CONSOLE_SECRET, or in development a random one kept in var/console_secret."""
    if settings.console_secret:
        return settings.console_secret
    if not settings.is_development:
        raise SystemExit(
            "error: BOT_ENV=production needs CONSOLE_SECRET (a long random secret for sessions)."
        )
    if SECRET_FILE.exists():
        return SECRET_FILE.read_text().strip()
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_urlsafe(32)
    SECRET_FILE.write_text(secret + "\n")
    SECRET_FILE.chmod(0o600)
    return secret


def serve(settings: Settings, port: int) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s - %(message)s")
    try:
        # Its own credential to the Rasa server's console route, not Rasa's HTTP API token.
        token = required_token(settings, "CONSOLE_RASA_TOKEN")
        require_media_secret(settings)  # agents' attachments go out at signed URLs
    except SettingsError as error:
        raise SystemExit(f"error: {error}") from None
    rasa = RasaApi(settings.rasa_base_url, token)
    app = create_app(build_wiring(settings), console_secret(settings), rasa)
    # CONSOLE_HOST: loopback by default; 0.0.0.0 behind a proxy for agents on the network.
    app.run(host=settings.console_host, port=port, access_log=False, workers=1)
    return 0


def add_agent(settings: Settings, name: str, role: str | None = None) -> int:
    store = build_wiring(settings).handoff.store
    name = name.strip().lower()
    # Naming an existing agent a supervisor (or an agent again) need not change its password.
    keep = role is not None and store.agent_exists(name)
    password = os.environ.get("AGENT_PASSWORD")
    if password is None:
        hint = " (Enter keeps the current one)" if keep else ""
        password = getpass.getpass(f"Password for {name}{hint}: ")
        if (password or not keep) and getpass.getpass("Again: ") != password:
            print("error: the passwords differ.", file=sys.stderr)
            return 1
    try:
        create_agent(store, name, None if keep and not password else password, role)
    except AgentError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    shown = f" as {role}" if role else ""
    print(f"Agent {name} can log in to the console{shown}.")
    return 0


def demo_agent(settings: Settings) -> int:
    if not settings.is_development:
        print(
            "error: the demo agent exists only with BOT_ENV=development; use `make agent NAME=...`.",
            file=sys.stderr,
        )
        return 1
    password = secrets.token_urlsafe(12)
    # A supervisor, so a developer sees every page of the console (the KPI dashboard too).
    create_agent(build_wiring(settings).handoff.store, DEMO_AGENT, password, role=SUPERVISOR)
    print(
        f"Development agent created: user {DEMO_AGENT!r} (supervisor), password {password!r} "
        "(new on every call)."
    )
    return 0


def unlock(settings: Settings, name: str, address: str | None) -> int:
    if not settings.redis_url:
        # The counts then live inside the console process: nothing this process could clear.
        print(
            "error: without REDIS_URL the login counts live in the console process; restart the "
            f"console to lift every lockout, or wait {settings.console_login_window_minutes} minutes.",
            file=sys.stderr,
        )
        return 1
    build_wiring(settings).console_logins().unlock(name, address)
    lifted = f"agent {name.strip().lower()}" + (f" and address {address}" if address else "")
    print(f"Login lockout lifted for {lifted}; failed tries forgotten.")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m connectors.console", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("serve", help="serve the console")
    run.add_argument("--port", type=int, default=None, help="default: CONSOLE_PORT (8080)")
    agent = commands.add_parser("agent", help="create an agent, or set a new password")
    agent.add_argument("name")
    agent.add_argument("--role", choices=ROLES, default=None, help="agent or supervisor (sees the KPIs)")
    commands.add_parser("demo-agent", help="development: create agent 'demo' with a printed random password")
    lift = commands.add_parser("unlock", help="lift an agent's login lockout (and an address's)")
    lift.add_argument("name")
    lift.add_argument("--address", default=None, help="also clear this client address's failed tries")
    args = parser.parse_args(argv)
    try:
        settings = Settings.from_env()
    except SettingsError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    if args.command == "serve":
        return serve(settings, args.port or settings.console_port)
    if args.command == "agent":
        return add_agent(settings, args.name, args.role)
    if args.command == "unlock":
        return unlock(settings, args.name, args.address)
    return demo_agent(settings)


if __name__ == "__main__":
    sys.exit(main())
