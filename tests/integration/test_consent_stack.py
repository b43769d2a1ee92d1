"""A notification that opens its flow, through the whole stack as `make run` starts it: an event
posted to the intake, the notice with its quick replies at the local Messages API, the tap back
through the Twilio webhook, and the reschedule form asking its window step for that order, or
the one-time code and then the payment link of the notified invoice only. Outside WhatsApp's
24-hour window the notice is its approved template, whose button carries the same signed link."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
import redis

from bot.adapters.sql import SqlStore
from bot.deep_links import link_token
from bot.messaging.inbound import Channel
from bot.messaging.store import MessagingStore
from bot.payments import verify_payment_link
from tests.conftest import CLOCK, LUCIA_MX, MARIANA_MX, STACK_PAYMENT_LINK_SECRET, STACK_REDIS_URL
from tests.handoff_helpers import release
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


def test_tapping_pagar_ahora_on_a_due_invoice_notice_sends_that_invoices_link_after_the_code(
    stack, fake_twilio
):
    fake_twilio.reset()
    shared = redis.Redis.from_url(STACK_REDIS_URL)  # code limits outlive a test session
    stale = list(shared.scan_iter("autoservicio:otp:*"))
    if stale:
        shared.delete(*stale)
    shared.close()
    release(stack, MARIANA_MX)
    stack.say(MARIANA_MX, "/restart", command=True)
    # Mariana owes F-2001 (due in 5 days) and F-2002 (overdue); the notice is about F-2001.
    write(stack, fake_twilio, MARIANA_MX, "hola")
    fake_twilio.wait_for(MARIANA_MX, 1, timeout_s=60)
    before = len(fake_twilio.messages_to(MARIANA_MX))
    variables = {"invoice_id": "F-2001", "amount": "1234.50", "currency": "MXN", "due_date": "2026-12-01"}
    answer = post_event(
        stack,
        event(
            "stack-pay-1", MARIANA_MX, kind="invoice_due_soon", channel="whatsapp",
            occurred_at=CLOCK.now().isoformat(), variables=variables,
        ),
    )  # fmt: skip
    assert answer.status_code == 202, answer.text

    notice = until(fake_twilio, MARIANA_MX, lambda body: "F-2001 por $1,234.50" in body, before, 60)
    kind, shown = fake_twilio.options_of(notice)
    assert kind == "twilio/quick-reply" and [title for title, _ in shown] == ["Pagar ahora"]
    [(title, tapped)] = shown

    after_notice = len(fake_twilio.messages_to(MARIANA_MX))
    write(stack, fake_twilio, MARIANA_MX, title, ButtonPayload=tapped, ButtonText=title)
    sms = until(fake_twilio, MARIANA_MX, lambda body: re.search(r"\b\d{6}\b", body), after_notice, 60)
    assert sms.from_ == "+15005550006"  # the code, by SMS to the number on file
    code = re.search(r"\b(\d{6})\b", sms.body).group(1)

    after_code = len(fake_twilio.messages_to(MARIANA_MX))
    write(stack, fake_twilio, MARIANA_MX, code)
    paid = until(fake_twilio, MARIANA_MX, lambda body: "pagos.example.com" in body, after_code, 60)
    until(fake_twilio, MARIANA_MX, lambda body: "sirvió" in body or "resolver" in body, after_code, 60)
    later = fake_twilio.messages_to(MARIANA_MX)[after_code:]
    urls = [url for m in later for url in re.findall(r"https://pagos\.example\.com/pagar/\S+", m.body or "")]
    assert [verify_payment_link(url, STACK_PAYMENT_LINK_SECRET, CLOCK.now()).invoice_id for url in urls] == [
        "F-2001"
    ]  # not F-2002, though it is open too
    assert "F-2001" in paid.body and "F-2002" not in "".join(m.body or "" for m in later)
    stack.say(MARIANA_MX, "/restart", command=True)


def test_outside_the_window_the_templates_button_opens_the_reschedule_form_at_the_window_step(
    stack, fake_twilio
):
    fake_twilio.reset()
    stack.say(LUCIA_MX, "/restart", command=True)
    # Lucía last wrote two days ago: the notice can only be its approved template.
    MessagingStore(SqlStore(stack.database_url), CLOCK).record_inbound(
        LUCIA_MX, Channel.WHATSAPP, f"whatsapp:{LUCIA_MX}", at=CLOCK.now() - timedelta(days=2)
    )
    variables = {"order_id": "PED-1010", "delivery_date": "2026-11-27", "window": "14:00 y 18:00"}
    answer = post_event(
        stack,
        event(
            "stack-template-1", LUCIA_MX, kind="delivery_tomorrow", channel="whatsapp",
            occurred_at=CLOCK.now().isoformat(), variables=variables,
        ),
    )  # fmt: skip
    assert answer.status_code == 202, answer.text

    notice = until(fake_twilio, LUCIA_MX, lambda body: "PED-1010 llega mañana" in body, 0, 60)
    assert notice.content_sid  # the template entrega_manana, complete: nothing held
    _, shown = fake_twilio.options_of(notice)
    (title, tapped), _ = shown
    assert title == "Cambiar la entrega" and link_token(tapped)

    after_notice = len(fake_twilio.messages_to(LUCIA_MX))
    write(stack, fake_twilio, LUCIA_MX, title, ButtonPayload=tapped, ButtonText=title)
    asked = until(fake_twilio, LUCIA_MX, lambda body: body.startswith("Paso"), after_notice, 60)
    assert asked.body.startswith("Paso 2 de 3") and "PED-1010" in asked.body
    stack.say(LUCIA_MX, "/restart", command=True)
