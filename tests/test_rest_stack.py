"""End to end in `rest` mode: `scripts/stack.py run` with CRM_BACKEND=rest ERP_BACKEND=rest against
the reference server as a process of its own; customers write on WhatsApp (signed webhooks) and
replies are observed where Twilio's Messages API would receive them. The CRM is killed in the
middle of the conversation and started again."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from bot.adapters.sql import cases
from tests.conftest import JULIAN_AR, MARIANA_MX, PUBLIC_URL, STACK_REDIS_URL
from tests.harness import Stack, is_response
from tests.rest_fixtures import TOKEN, ServerProcess
from tests.test_twilio_channel import write

pytestmark = pytest.mark.integration

CASE_ID = re.compile(r"GES-[2-9A-HJKMNP-Z]{8}")


@pytest.fixture(scope="module")
def crm(tmp_path_factory) -> Iterator[ServerProcess]:
    server = ServerProcess(tmp_path_factory.mktemp("crm")).start()
    yield server
    server.kill()


@pytest.fixture(scope="module")
def rest_stack(tmp_path_factory, fake_twilio, crm) -> Iterator[Stack]:
    """The assistant with its CRM and ERP behind the reference server, and nothing of them in SQL."""
    rest = {
        f"{system}_{name}": value
        for system in ("CRM", "ERP")
        for name, value in {
            "BACKEND": "rest",
            "URL": crm.url,
            "TOKEN": TOKEN,
            "CONNECT_TIMEOUT_S": "1",
            "READ_RETRIES": "1",
            "CIRCUIT_COOLDOWN_S": "2",  # the CRM comes back within the test
        }.items()
    }
    running = Stack(
        tmp_path_factory.mktemp("rest-stack"),
        {
            **rest,
            "TWILIO_ACCOUNT_SID": fake_twilio.account_sid,
            "TWILIO_AUTH_TOKEN": fake_twilio.auth_token,
            "TWILIO_API_BASE": fake_twilio.url,
            "TWILIO_WHATSAPP_NUMBER": "+14155238886",
            "TWILIO_SMS_NUMBER": "+15005550006",
            "PUBLIC_URL": PUBLIC_URL,
            "REDIS_URL": STACK_REDIS_URL,
        },
    )
    try:
        running.wait_ready()
        yield running
    finally:
        running.stop()


def crm_cases(crm: ServerProcess) -> list[str]:
    engine = sa.create_engine(crm.database_url)
    with engine.connect() as conn:
        found = list(conn.execute(sa.select(cases.c.id)).scalars())
    engine.dispose()
    return found


def test_status_comes_from_the_crm_server_and_a_crm_down_mid_conversation_loses_nothing(
    rest_stack, fake_twilio, crm
):
    fake_twilio.reset()
    assert "CRM            rest http://127.0.0.1" in rest_stack.log.read_text()

    write(rest_stack, fake_twilio, MARIANA_MX, "hola, donde esta mi pedido?")
    [status] = fake_twilio.wait_for(MARIANA_MX, timeout_s=60)
    assert "PED-1001" in status.body and "Estafeta" in status.body
    assert "GET /v1/customers?phone=%2B525512345678" in crm.log.read_text()

    crm.kill()  # the CRM/ERP goes down in the middle of the conversation
    write(rest_stack, fake_twilio, JULIAN_AR, "y mis compras cuando llegan?")
    [apology] = fake_twilio.wait_for(JULIAN_AR, timeout_s=60)
    assert is_response(apology.body, "utter_systems_down")

    write(rest_stack, fake_twilio, JULIAN_AR, "quiero hablar con una persona")
    queued = fake_twilio.wait_for(JULIAN_AR, count=2, timeout_s=60)[1]
    assert is_response(queued.body, "utter_case_queued")
    case_id = CASE_ID.search(queued.body).group()

    crm.start()  # it comes back: the outbox worker applies the case once and confirms it
    confirmation = fake_twilio.wait_for(JULIAN_AR, count=3, timeout_s=90)[2]
    assert is_response(confirmation.body, "utter_write_confirmed") and case_id in confirmation.body
    assert crm_cases(crm).count(case_id) == 1
