"""Notifications through the whole stack as `make run` starts it (the intake and the worker as
processes of their own), with the fake Twilio."""

from __future__ import annotations

import pytest

from tests.conftest import CLOCK
from tests.notification_helpers import event
from tests.stack_helpers import post_event


@pytest.mark.integration
def test_make_run_receives_an_event_and_its_worker_sends_it(stack, fake_twilio):
    """The whole stack as `make run` starts it: the intake on its port, the worker beside it."""
    stranger = "+525500000077"  # not a customer: the greeting has no name
    answer = post_event(
        stack, event("stack-1", stranger, kind="out_for_delivery", occurred_at=CLOCK.now().isoformat())
    )
    assert answer.status_code in (200, 202), answer.text

    [message] = fake_twilio.wait_for(stranger, timeout_s=30)
    assert (
        message.body
        == "¡Hola! Tu pedido PED-1001 sale hoy a reparto. Asegúrate de que alguien pueda recibirlo."
    )
