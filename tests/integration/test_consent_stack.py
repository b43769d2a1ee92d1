"""A notification that opens its flow, through the whole stack as `make run` starts it: an event
posted to the intake, the notice with its quick replies at the local Messages API, the tap back
through the Twilio webhook, and the reschedule form asking its window step for that order."""

from __future__ import annotations

import pytest

from tests.conftest import CLOCK, LUCIA_MX
from tests.notification_helpers import event
from tests.stack_helpers import post_event, until, write

pytestmark = pytest.mark.integration


def test_tapping_cambiar_fecha_on_a_delivery_notice_opens_the_reschedule_form_at_the_window_step(
    stack, fake_twilio
):
    fake_twilio.reset()
    # Lucía wrote a moment ago: the WhatsApp window is open, so the notice goes with its buttons.
    write(stack, fake_twilio, LUCIA_MX, "hola")
    fake_twilio.wait_for(LUCIA_MX, 1, timeout_s=60)
    before = len(fake_twilio.messages_to(LUCIA_MX))
    variables = {"order_id": "PED-1010", "delivery_date": "2026-11-27", "window": "14:00 y 18:00"}
    answer = post_event(
        stack,
        event(
            "stack-consent-1",
            LUCIA_MX,
            kind="delivery_tomorrow",
            channel="whatsapp",
            occurred_at=CLOCK.now().isoformat(),
            variables=variables,
        ),  # fmt: skip
    )
    assert answer.status_code == 202, answer.text

    notice = until(fake_twilio, LUCIA_MX, lambda body: "PED-1010 llega mañana" in body, before, 60)
    kind, shown = fake_twilio.options_of(notice)
    assert kind == "twilio/quick-reply"
    assert [title for title, _ in shown] == ["Cambiar fecha", "Está bien"]
    (title, tapped), _ = shown

    after_notice = len(fake_twilio.messages_to(LUCIA_MX))
    write(stack, fake_twilio, LUCIA_MX, title, ButtonPayload=tapped, ButtonText=title)

    # No "which order?": the link chose PED-1010, and the form asks for the window.
    asked = until(fake_twilio, LUCIA_MX, lambda body: body.startswith("Paso"), after_notice, 60)
    assert asked.body.startswith("Paso 2 de 3") and "PED-1010" in asked.body
