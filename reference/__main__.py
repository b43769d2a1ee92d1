"""`python -m reference` (what `make crm-server` runs): the reference CRM/ERP server on CRM_SERVER_PORT.

Its database (CRM_SERVER_DATABASE_URL) gets the CRM/ERP tables from the assistant's migrations and
the demo data by the same rule as the assistant's; the server adds its own table itself.
"""

from __future__ import annotations

import argparse
import logging
import sys

from bot.adapters.sql import SqlStore
from bot.clock import SystemClock, local_day
from bot.demo import FixtureError, load_demo
from bot.migrations import migrate
from bot.settings import Settings, SettingsError
from reference.server import Credentials, ReferenceServer, link_signer


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m reference", description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, help="default CRM_SERVER_PORT (8090)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)
    try:
        settings = Settings.from_env()
    except SettingsError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    database_url = settings.crm_server_database_url
    migrate(database_url)
    store = SqlStore(database_url)
    if settings.crm_server_demo_data is not None:
        try:
            today = local_day(SystemClock(settings.clock_shift).now(), settings.bot_timezone)
            result = load_demo(store, settings.crm_server_demo_data, settings, today)
        except FixtureError as error:
            print(f"error: demo data {settings.crm_server_demo_data}: {error}", file=sys.stderr)
            return 1
        print(f"Demo data: {result.customers} customers, {result.orders} orders.", flush=True)
    credentials = Credentials.from_settings(settings)
    server = ReferenceServer(
        store, credentials, port=args.port or settings.crm_server_port, link_signer=link_signer(settings)
    )
    auth = "open (no CRM_TOKEN/ERP_TOKEN/CRM_API_KEY/ERP_API_KEY set)" if credentials.open else "required"
    print(
        f"Reference CRM/ERP server on {server.url}  (database {database_url}; auth {auth})\n"
        f"  Point the bot at it: CRM_BACKEND=rest CRM_URL={server.url} "
        f"ERP_BACKEND=rest ERP_URL={server.url} make run",
        flush=True,
    )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.httpd.server_close()
        store.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
