"""Notifications through the whole stack as `make run` starts it (the intake and the worker as
processes of their own), with the fake Twilio."""

from __future__ import annotations

import json
import time
from datetime import datetime

import pytest
import requests

from bot.notifications.signature import signed_headers
from tests.conftest import CLOCK, STACK_NOTIFY_SECRET
from tests.notification_helpers import event


@pytest.mark.integration
def test_make_run_receives_an_event_and_its_worker_sends_it(stack, fake_twilio):
    """The whole stack as `make run` starts it: the intake on its port, the worker beside it."""
    stranger = "+525500000077"  # not a customer: the greeting has no name
    body = json.dumps(
        event("stack-1", stranger, kind="out_for_delivery", occurred_at=CLOCK.now().isoformat())
    )
    url = f"http://127.0.0.1:{stack.notify_port}/events"
    deadline = time.monotonic() + 60
    while True:  # the intake may still be starting
        try:
            headers = {
                "Content-Type": "application/json",
                **signed_headers(body.encode(), STACK_NOTIFY_SECRET, datetime.now().astimezone()),
            }
            answer = requests.post(url, data=body, headers=headers, timeout=5)
            break
        except requests.ConnectionError:
            assert time.monotonic() < deadline, "the notification intake did not start"
            time.sleep(0.5)
    assert answer.status_code in (200, 202), answer.text

    [message] = fake_twilio.wait_for(stranger, timeout_s=30)
    assert (
        message.body
        == "¡Hola! Tu pedido PED-1001 sale hoy a reparto. Asegúrate de que alguien pueda recibirlo."
    )
