"""The payment, verification and contact-data actions with rasa_sdk trackers, over the demo data
on SQLite and PostgreSQL, codes in memory and SMS in the local outbox."""

from __future__ import annotations

import asyncio
import re
from datetime import timedelta

import pytest
from cryptography.fernet import Fernet
from rasa_sdk import Tracker
from rasa_sdk.events import ActiveLoop, SlotSet
from rasa_sdk.executor import CollectingDispatcher

from actions import verification as verification_module
from actions.contact_data import ActionUpdateContact, ValidateContactForm
from actions.payments import ActionAttachReceipt, ActionCompleteFlow, ActionReportPayment
from actions.verification import ActionAskOtpCode, ActionStopFlow, ValidateVerificationForm
from bot.adapters.base import BackendUnavailable
from bot.adapters.sql import SqlErp, SqlOtpSecrets
from bot.backends import Backends
from bot.clock import local_day
from bot.deep_links import LINK_METADATA as DEEP_LINK
from bot.demo import load_demo
from bot.identity import IDENTIFIED, VERIFIED, IdentitySigner
from bot.messaging.sender import MessageSender, OutboxTransport
from bot.messaging.store import MessagingStore
from bot.payments import PaymentLinkSigner, verify_payment_link
from bot.records import CaseKind
from bot.settings import DEFAULT_DEMO_DATA
from bot.verification import CodeVerifier, MemoryAttemptStore
from tests.action_helpers import DOMAIN, verified_identity
from tests.conftest import CLOCK, JULIAN_AR, MARIANA_MX, ROSA_PE, STRANGER, TEST_IDENTITY_SECRET

LINK_SECRET = "test-link-secret"


@pytest.fixture
def world(wire, store, demo, settings):
    # The actions read the real clock: anchor the demo's days on the real today.
    load_demo(
        store,
        DEFAULT_DEMO_DATA,
        settings,
        today=local_day(CLOCK.now(), settings.bot_timezone),
        force=True,
    )
    signer = PaymentLinkSigner(LINK_SECRET, "https://pagos.example.test/pagar", timedelta(hours=24))
    backends = Backends(crm=demo.crm, erp=SqlErp(store, signer), cases=demo.cases, outbox=demo.outbox)
    verifier = CodeVerifier(SqlOtpSecrets(store), MemoryAttemptStore(CLOCK), Fernet.generate_key().decode())
    messages = MessagingStore(store, CLOCK)
    sender = MessageSender(settings, messages, OutboxTransport(), clock=CLOCK)
    wire(backends=backends, verifier=verifier, message_sender=sender, messaging=messages)
    return backends, messages


def tracker(sender: str, text: str = "", intent: str = "inform", slots=None, metadata=None) -> Tracker:
    """A tracker after the customer's message; the answer to the requested slot is what the
    form validates (as Rasa sets it since the latest user message)."""
    slots = dict(slots or {})
    events = [{"event": "user", "text": text}]
    requested = slots.get("requested_slot")
    if requested and slots.get(requested) is not None:
        events.append({"event": "slot", "name": requested, "value": slots[requested]})
    return Tracker(
        sender_id=sender,
        slots=slots,
        latest_message={
            "text": text,
            "intent": {"name": intent, "confidence": 0.99},
            "entities": [],
            "metadata": metadata or {},
        },
        events=events,
        paused=False,
        followup_action=None,
        active_loop={},
        latest_action_name="action_listen",
    )


def run(action, action_tracker: Tracker):
    dispatcher = CollectingDispatcher()
    events = asyncio.run(action.run(dispatcher, action_tracker, DOMAIN))
    return [m.get("response") for m in dispatcher.messages], dispatcher.messages, events


def slots_of(events) -> dict:
    return {event["name"]: event["value"] for event in events if event.get("event") == "slot"}


def sent_code(messages: MessagingStore, phone: str) -> str:
    body = messages.outbound(phone)[-1].body
    return re.search(r"\b(\d{6})\b", body).group(1)


def claim_in(state: dict, sender: str, kind: str = VERIFIED):
    """The identity claim the actions left in `state` for `sender`, checked as they check it."""
    slot = "verified_identity" if kind == VERIFIED else "identified_identity"
    return IdentitySigner(TEST_IDENTITY_SECRET).verify(state.get(slot), kind, sender, CLOCK.now())


def verify(sender: str, messages, phone_on_file: str, slots=None) -> dict:
    """Ask for the code, read it from the outbox, answer it: the slots after the form's check."""
    _, _, asked = run(ActionAskOtpCode(), tracker(sender, slots=slots))
    assert slots_of(asked)["otp_sent"] is True
    code = sent_code(messages, phone_on_file)
    state = {**(slots or {}), "otp_sent": True, "otp_code": code, "requested_slot": "otp_code"}
    _, _, events = run(ValidateVerificationForm(), tracker(sender, code, slots=state))
    return {**state, **slots_of(events)}


def test_the_code_goes_by_sms_to_the_number_on_file(world):
    _, messages = world
    responses, sent, events = run(ActionAskOtpCode(), tracker(MARIANA_MX))
    assert responses == ["utter_otp_sent"] and sent[0]["last_digits"] == "78"
    record = messages.outbound(MARIANA_MX)[-1]
    assert record.channel == "sms" and re.search(r"\b\d{6}\b", record.body)
    assert slots_of(events) == {"otp_sent": True}


def test_a_right_code_verifies_the_session_and_the_slot_never_keeps_it(world):
    _, messages = world
    state = verify(MARIANA_MX, messages, MARIANA_MX)
    assert state["otp_code"] is None
    claim = claim_in(state, MARIANA_MX)
    assert (claim.customer_id, claim.how, state["verification_status"]) == ("C-001", "sms_code", "ok")
    assert claim.expires_at > CLOCK.now().timestamp() + 59 * 60
    # Bound to this conversation: the same text read for another sender is worth nothing.
    assert claim_in(state, STRANGER) is None
    # Verified: the form needs no more steps in this session.
    steps = asyncio.run(
        ValidateVerificationForm().required_slots(
            [], CollectingDispatcher(), tracker(MARIANA_MX, slots=state), DOMAIN
        )
    )
    assert steps == []


def test_wrong_codes_explain_after_the_second_and_lock_at_the_third(world):
    _, messages = world
    run(ActionAskOtpCode(), tracker(MARIANA_MX))
    code = sent_code(messages, MARIANA_MX)
    bad = f"{(int(code) + 1) % 1_000_000:06d}"
    said = []
    state = {"otp_sent": True, "requested_slot": "otp_code"}
    for _ in range(3):
        responses, _, events = run(
            ValidateVerificationForm(), tracker(MARIANA_MX, bad, slots={**state, "otp_code": bad})
        )
        said.append(responses)
        state.update(slots_of(events))
    assert said == [["utter_otp_wrong"], ["utter_otp_wrong", "utter_otp_help"], ["utter_otp_locked"]]
    assert state["verification_status"] == "locked" and state.get("verified_identity") is None
    # Locked: the form ends, and asking again sends no code.
    responses, _, events = run(ActionAskOtpCode(), tracker(MARIANA_MX))
    assert responses == ["utter_otp_locked"] and ActiveLoop(None) in events


def test_words_instead_of_a_code_do_not_spend_a_try(world):
    responses, _, events = run(
        ValidateVerificationForm(),
        tracker(
            MARIANA_MX,
            "y cuanto era?",
            slots={"otp_code": "y cuanto era?", "otp_sent": True, "requested_slot": "otp_code"},
        ),
    )
    assert responses == ["utter_ask_otp_code"]


def test_balance_after_verification_shows_open_invoices_with_overdue_marked(world):
    _, messages = world
    state = verify(MARIANA_MX, messages, MARIANA_MX, {"pending_flow": "balance"})
    responses, sent, events = run(ActionCompleteFlow(), tracker(MARIANA_MX, slots=state))
    assert responses == ["utter_balance_overdue", "utter_ask_feedback"]
    assert "F-2002: $899.00" in sent[0]["lines"] and "vencida" in sent[0]["lines"]
    assert sent[0]["total"] == "$2,133.50"
    assert slots_of(events)["pending_flow"] is None and "verified_identity" not in slots_of(events)


def test_payment_links_are_signed_and_verifiable(world):
    _, messages = world
    state = verify(MARIANA_MX, messages, MARIANA_MX, {"pending_flow": "payment_link"})
    responses, sent, _ = run(ActionCompleteFlow(), tracker(MARIANA_MX, slots=state))
    assert responses == ["utter_payment_link", "utter_payment_link", "utter_ask_feedback"]
    link = verify_payment_link(sent[0]["url"], LINK_SECRET, CLOCK.now())
    assert (link.invoice_id, str(link.amount)) == ("F-2002", "899.00")


def handed_over(events) -> tuple[str | None, str | None]:
    """(reason, detail) when the action's events hand the chat to a person, else (None, None)."""
    if not any(e.get("event") == "followup" and e.get("name") == "action_handoff" for e in events):
        return None, None
    slots = slots_of(events)
    return slots.get("handoff_reason"), slots.get("handoff_detail")


def test_an_amount_above_the_threshold_goes_to_a_person_through_the_handoff(world):
    backends, messages = world
    state = verify(JULIAN_AR, messages, JULIAN_AR, {"pending_flow": "payment_link"})
    responses, sent, events = run(ActionCompleteFlow(), tracker(JULIAN_AR, slots=state))
    assert responses == ["utter_payment_link", "utter_payment_with_person"]
    assert sent[1]["invoice_id"] == "F-2004" and "case_id" not in sent[1]
    reason, detail = handed_over(events)
    assert reason == "amount_over_threshold" and detail.startswith("F-2004: ")
    assert slots_of(events)["pending_flow"] is None  # the flow is over; the person takes it from here
    since = CLOCK.now() - timedelta(minutes=5)
    # No case: a person answers in this chat.
    assert backends.cases.recent_open_cases(JULIAN_AR, CaseKind.PAYMENT_REVIEW, since) == []


def test_links_below_the_threshold_do_not_hand_over(world):
    _, messages = world
    state = verify(MARIANA_MX, messages, MARIANA_MX, {"pending_flow": "payment_link"})
    _, _, events = run(ActionCompleteFlow(), tracker(MARIANA_MX, slots=state))
    assert handed_over(events) == (None, None)


def test_without_verification_nothing_is_shown(world):
    responses, _, _ = run(
        ActionCompleteFlow(),
        tracker(MARIANA_MX, slots={"pending_flow": "balance", "verification_status": "locked"}),
    )
    assert responses == []


def test_a_number_not_on_file_is_identified_by_order_and_document_and_the_code_goes_to_the_number_on_file(
    world,
):
    _, messages = world
    form = ValidateVerificationForm()
    steps = asyncio.run(form.required_slots([], CollectingDispatcher(), tracker(STRANGER), DOMAIN))
    assert steps == ["identity_order_id", "identity_document", "otp_code"]
    _, _, events = run(
        form,
        tracker(
            STRANGER,
            "PED-1004",
            slots={"identity_order_id": "PED-1004", "requested_slot": "identity_order_id"},
        ),
    )
    state = {"requested_slot": "identity_document", **slots_of(events)}
    _, _, events = run(
        form, tracker(STRANGER, "termina en 3456", slots={**state, "identity_document": "termina en 3456"})
    )
    state.update(slots_of(events))
    assert claim_in(state, STRANGER, IDENTIFIED).customer_id == "C-002" and state["identity_document"] is None
    state = verify(STRANGER, messages, JULIAN_AR, state)
    assert messages.outbound(STRANGER) == []  # never to the number asking
    claim = claim_in(state, STRANGER)
    assert (claim.customer_id, claim.how) == ("C-002", "order_document+sms_code")


def test_wrong_identity_twice_ends_with_the_offer_of_a_person(world):
    form = ValidateVerificationForm()
    said = []
    state = {"identity_order_id": "PED-1004", "requested_slot": "identity_document"}
    for _ in range(2):
        responses, _, events = run(
            form, tracker(STRANGER, "1111", slots={**state, "identity_document": "1111"})
        )
        said.append(responses)
        state = {**state, **slots_of(events), "identity_order_id": "PED-1004"}
    assert said == [["utter_identity_mismatch"], ["utter_identity_failed"]]
    assert state["verification_status"] == "failed"


def test_identity_guesses_stay_bounded_across_form_runs_and_a_hit_then_is_refused(world):
    form = ValidateVerificationForm()
    fresh_run = {"identity_order_id": "PED-1004", "requested_slot": "identity_document"}
    said = []
    for _ in range(5):  # each run starts over: only the number's count carries on
        responses, _, events = run(
            form, tracker(STRANGER, "1111", slots={**fresh_run, "identity_document": "1111"})
        )
        said.append(responses)
    assert said[:4] == [["utter_identity_mismatch"]] * 4
    assert said[4] == ["utter_identity_too_many_guesses"]
    assert slots_of(events)["verification_status"] == "guesses"
    right = {**fresh_run, "identity_document": "3456"}
    responses, _, events = run(form, tracker(STRANGER, "3456", slots=right))
    assert responses == ["utter_identity_too_many_guesses"] and "identified_identity" not in slots_of(events)
    # The next run is told at the order number, before it names an order.
    asked = {"identity_order_id": "PED-1001", "requested_slot": "identity_order_id"}
    responses, _, events = run(form, tracker(STRANGER, "PED-1001", slots=asked))
    assert responses == ["utter_identity_too_many_guesses"]
    state = slots_of(events)
    assert (state["identity_order_id"], state["verification_status"]) == (None, "guesses")


def test_ya_pague_found_confirms_date_and_amount(world):
    responses, sent, events = run(ActionReportPayment(), tracker(ROSA_PE, "ya pague", "report_payment"))
    assert responses == ["utter_payment_found"]
    assert sent[0]["amount"] == "S/ 189.90" and sent[0]["invoice_id"] == "F-2005"
    assert slots_of(events) == {"awaiting_receipt": False}


def test_ya_pague_not_found_asks_for_the_receipt_which_opens_a_case(world):
    backends, _ = world
    responses, _, events = run(ActionReportPayment(), tracker(JULIAN_AR, "pague ayer", "report_payment"))
    assert responses == ["utter_payment_not_found"] and slots_of(events) == {"awaiting_receipt": True}
    media = {
        "media": [
            {
                "url": "https://api.twilio.com/2010-04-01/Accounts/AC1/Messages/MM1/Media/ME1",
                "content_type": "image/jpeg",
            }
        ]
    }
    responses, sent, events = run(
        ActionAttachReceipt(), tracker(JULIAN_AR, "/share_media", "share_media", metadata=media)
    )
    assert responses == ["utter_receipt_received"]
    case = backends.cases.case(sent[0]["case_id"])
    assert case.kind is CaseKind.PAYMENT_RECEIPT
    assert (case.details["media_url"], case.details["content_type"]) == (
        media["media"][0]["url"],
        "image/jpeg",
    )


def test_contact_form_asks_verification_then_the_field_value_district_and_confirmation(world):
    form = ValidateContactForm()
    steps = asyncio.run(
        form.required_slots(
            [], CollectingDispatcher(), tracker(ROSA_PE, slots={"contact_field": "address"}), DOMAIN
        )
    )
    assert steps == ["otp_code", "contact_field", "contact_value", "contact_district", "contact_confirmed"]
    verified = {"verified_identity": verified_identity(ROSA_PE, "C-003"), "contact_field": "email"}
    steps = asyncio.run(
        form.required_slots([], CollectingDispatcher(), tracker(ROSA_PE, slots=verified), DOMAIN)
    )
    assert steps == ["contact_field", "contact_value", "contact_confirmed"]


@pytest.mark.parametrize("status", sorted(verification_module.STOPPED))
def test_contact_form_asks_nothing_more_once_verification_stopped(world, status):
    # "left" too: the customer who said "salir" at the code is not asked for the new e-mail.
    slots = {"verification_status": status, "contact_field": "email"}
    steps = asyncio.run(
        ValidateContactForm().required_slots(
            [], CollectingDispatcher(), tracker(ROSA_PE, slots=slots), DOMAIN
        )
    )
    assert steps == []


def test_a_bad_email_twice_explains_and_offers_a_person(world):
    form = ValidateContactForm()
    state = {
        "contact_field": "email",
        "requested_slot": "contact_value",
        "verified_identity": verified_identity(ROSA_PE, "C-003"),
    }
    responses, _, events = run(form, tracker(ROSA_PE, "rosa@", slots={**state, "contact_value": "rosa@"}))
    assert responses == ["utter_contact_email_invalid"]
    state.update(slots_of(events))
    responses, _, _ = run(
        form, tracker(ROSA_PE, "rosa arroba", slots={**state, "contact_value": "rosa arroba"})
    )
    assert responses == ["utter_contact_email_invalid", "utter_contact_help"]


def test_a_confirmed_change_is_written_and_audited(world):
    backends, _ = world
    state = {
        "verified_identity": verified_identity(ROSA_PE, "C-003"),
        "contact_field": "address",
        "contact_value": "Av. Arequipa 1234",
        "contact_district": "Miraflores",
        "contact_confirmed": True,
    }
    responses, sent, _ = run(
        ActionUpdateContact(), tracker(ROSA_PE, "si", "affirm", slots=state, metadata={"channel": "whatsapp"})
    )
    assert (
        responses == ["utter_contact_updated", "utter_ask_feedback"]
        and sent[0]["new"] == "Av. Arequipa 1234, Miraflores"
    )
    audit = backends.crm.contact_changes("C-003")[0]
    assert (audit.old, audit.channel, audit.verified_how) == ("Jr. Huancavelica 321", "whatsapp", "sms_code")


def test_a_refused_change_writes_nothing(world):
    backends, _ = world
    state = {
        "verified_identity": verified_identity(ROSA_PE, "C-003"),
        "contact_field": "email",
        "contact_value": "x@y.com",
        "contact_confirmed": False,
    }
    responses, _, _ = run(ActionUpdateContact(), tracker(ROSA_PE, "no", "deny", slots=state))
    assert responses == ["utter_contact_not_changed"]
    assert backends.crm.contact_changes("C-003") == []


def test_leaving_a_form_forgets_its_answers_but_keeps_the_verification(world):
    _, _, events = run(ActionStopFlow(), tracker(MARIANA_MX))
    assert events[0] == ActiveLoop(None)
    names = {event["name"] for event in events if event.get("event") == "slot"}
    assert "otp_code" in names and "verified_identity" not in names
    assert SlotSet("pending_flow", None) in events


def test_a_promise_to_pay_on_a_later_day_is_recorded_instead_of_a_link(world, store):
    import sqlalchemy as sa

    from bot.adapters.sql import payment_promises

    _, messages = world
    state = verify(
        MARIANA_MX, messages, MARIANA_MX, {"pending_flow": "payment_link", "promise_date": "pasado mañana"}
    )
    responses, sent, events = run(ActionCompleteFlow(), tracker(MARIANA_MX, slots=state))
    assert responses == ["utter_promise_recorded", "utter_ask_feedback"] and sent[0]["day"].startswith(
        "pasado mañana"
    )
    with store.connect() as conn:
        row = conn.execute(sa.select(payment_promises)).one()
    assert (row.customer_id, row.invoice_id) == ("C-001", "F-2002")
    assert slots_of(events)["promise_date"] is None


def test_a_promise_for_today_just_sends_the_links(world):
    _, messages = world
    state = verify(MARIANA_MX, messages, MARIANA_MX, {"pending_flow": "payment_link", "promise_date": "hoy"})
    responses, _, _ = run(ActionCompleteFlow(), tracker(MARIANA_MX, slots=state))
    assert responses == ["utter_payment_link", "utter_payment_link", "utter_ask_feedback"]


@pytest.mark.parametrize(
    ("flow", "asked", "response", "reason"),
    [
        ("balance", "no reconozco este cobro", "utter_payment_dispute_person", "dispute"),
        (
            "payment_link",
            "quiero pagar en cuotas lo que debo",
            "utter_installments_person",
            "cannot_complete",
        ),
    ],
)
def test_disputes_and_installment_plans_go_to_a_person_through_the_handoff(
    world, flow, asked, response, reason
):
    _, messages = world
    state = verify(MARIANA_MX, messages, MARIANA_MX, {"pending_flow": flow, "payment_request": asked})
    responses, _, events = run(ActionCompleteFlow(), tracker(MARIANA_MX, slots=state))
    assert responses == [response]
    assert handed_over(events) == (reason, asked)
    assert slots_of(events)["payment_request"] is None


def test_asking_how_many_installments_are_left_is_a_balance_not_a_plan(world):
    _, messages = world
    state = verify(
        MARIANA_MX,
        messages,
        MARIANA_MX,
        {"pending_flow": "balance", "payment_request": "cuantas cuotas me faltan?"},
    )
    responses, _, _ = run(ActionCompleteFlow(), tracker(MARIANA_MX, slots=state))
    assert responses == ["utter_balance_overdue", "utter_ask_feedback"]


def test_a_disputed_payment_goes_to_a_person_through_the_handoff(world):
    responses, _, events = run(
        ActionReportPayment(), tracker(JULIAN_AR, "ya pague y me cobraron dos veces", "report_payment")
    )
    assert responses == ["utter_payment_dispute_person"]
    assert handed_over(events) == ("dispute", "ya pague y me cobraron dos veces")


@pytest.mark.parametrize("answer", ["cancelar", "Mejor no", "salir"])
def test_leaving_words_end_the_form_whatever_nlu_made_of_them(world, answer):
    state = {"otp_sent": True, "requested_slot": "otp_code", "otp_code": answer}
    responses, _, events = run(
        ValidateVerificationForm(), tracker(MARIANA_MX, answer, "cancel_order", slots=state)
    )
    assert responses == ["utter_flow_left"]
    assert SlotSet("requested_slot", None) in [
        SlotSet(e["name"], e["value"]) for e in events if e.get("event") == "slot"
    ]
    responses, _, _ = run(ActionCompleteFlow(), tracker(MARIANA_MX, slots={**state, **slots_of(events)}))
    assert responses == []


# --- the CRM/ERP down at the write: queued through the outbox, not lost --------------------------------


def test_a_contact_change_confirmed_while_the_crm_is_down_is_queued_and_applied_once_later(
    world, store, monkeypatch
):
    from bot.adapters.base import BackendUnavailable
    from bot.adapters.outbox_sql import Outbox
    from bot.adapters.sql import SqlCaseBook
    from bot.outbox_worker import OutboxWorker

    backends, _ = world
    state = {
        "verified_identity": verified_identity(ROSA_PE, "C-003"),
        "contact_field": "email",
        "contact_value": "rosa.q@example.pe",
        "contact_confirmed": True,
    }

    def down(*_args, **_kwargs):
        raise BackendUnavailable("CRM unavailable")

    working = backends.crm.update_contact
    monkeypatch.setattr(backends.crm, "update_contact", down)
    responses, sent, _ = run(
        ActionUpdateContact(), tracker(ROSA_PE, "si", "affirm", slots=state, metadata={"channel": "whatsapp"})
    )
    assert responses == ["utter_contact_queued", "utter_ask_feedback"]
    assert sent[0]["new"] == "rosa.q@example.pe" and sent[0]["case_id"].startswith("GES-")
    assert backends.crm.contact_changes("C-003") == []

    monkeypatch.setattr(backends.crm, "update_contact", working)  # the CRM is back
    told = []

    async def notify(phone, conversation_id, response, values):
        told.append((phone, response, values))

    later = lambda: CLOCK.now() + timedelta(hours=1)  # noqa: E731
    worker = OutboxWorker(Outbox(store), backends, SqlCaseBook(store), notify, clock=later)
    assert asyncio.run(worker.run_once()) == 1
    assert asyncio.run(worker.run_once()) == 0
    [audit] = backends.crm.contact_changes("C-003")
    assert (audit.old, audit.new, audit.verified_how) == (
        "rosa.quispe@example.com",
        "rosa.q@example.pe",
        "sms_code",
    )
    [(phone, response, values)] = told
    assert (phone, response, values["management_id"]) == (
        ROSA_PE,
        "utter_contact_confirmed_later",
        sent[0]["case_id"],
    )
    assert values["new"] == "rosa.q@example.pe" and values["field"] == "correo"


def test_a_promise_made_while_the_erp_is_down_is_queued_with_a_management_id(world, store, monkeypatch):
    import sqlalchemy as sa

    from bot.adapters.base import BackendUnavailable
    from bot.adapters.outbox_sql import Outbox
    from bot.adapters.sql import payment_promises

    backends, messages = world
    state = verify(
        MARIANA_MX, messages, MARIANA_MX, {"pending_flow": "payment_link", "promise_date": "pasado mañana"}
    )

    def down(*_args, **_kwargs):
        raise BackendUnavailable("ERP unavailable")

    monkeypatch.setattr(backends.erp, "record_promise", down)
    responses, sent, _ = run(ActionCompleteFlow(), tracker(MARIANA_MX, slots=state))
    assert responses == ["utter_promise_queued", "utter_ask_feedback"] and sent[0]["case_id"].startswith(
        "GES-"
    )
    [queued] = Outbox(store).entries("pending")
    assert (queued.kind, queued.payload["invoice_id"]) == ("billing.promise", "F-2002")
    with store.connect() as conn:
        assert conn.execute(sa.select(payment_promises)).all() == []


class Unreachable:
    """A CRM/ERP that does not answer, whatever is asked."""

    def __getattr__(self, name):
        def refuse(*_args, **_kwargs):
            raise BackendUnavailable(f"{name}: connection refused")

        return refuse


def test_a_crm_erp_down_after_the_code_offers_a_person_and_the_handoff_will_say_why(world, wire):
    backends, messages = world
    state = verify(MARIANA_MX, messages, MARIANA_MX, {"pending_flow": "balance"})
    down = Backends(crm=Unreachable(), erp=Unreachable(), cases=backends.cases)
    wire(backends=down)
    responses, _, events = run(ActionCompleteFlow(), tracker(MARIANA_MX, slots=state))
    assert responses == ["utter_systems_down"]
    assert slots_of(events)["handoff_reason"] == "backend_unavailable"
    responses, _, events = run(ActionReportPayment(), tracker(MARIANA_MX, "ya pague", "report_payment"))
    assert responses == ["utter_systems_down"] and slots_of(events) == {
        "handoff_reason": "backend_unavailable"
    }


def _request(text: str) -> Tracker:
    """The message that opens the form, with the ranking Rasa sends (rasa_sdk reads the intent there)."""
    opening = tracker(ROSA_PE, text, intent="update_contact_data")
    opening.latest_message["intent_ranking"] = [{"name": "update_contact_data", "confidence": 0.99}]
    return opening


def test_a_new_email_in_the_request_fills_the_field_and_the_value(world):
    # Issue 16, family 8: "cambiá mi mail a ..." is not asked for the e-mail again after the code.
    form = ValidateContactForm()
    responses, _, events = run(form, _request("hola, quiero cambiar mi mail a Rosa.Quispe@Gmail.com porfa"))
    slots = slots_of(events)
    assert (slots["contact_field"], slots["contact_value"]) == ("email", "rosa.quispe@gmail.com")
    assert slots["requested_slot"] == "otp_code"  # the code still comes first
    # An e-mail alone in the request says which field too.
    slots = slots_of(run(form, _request("actualicen mi contacto: rosa.q@example.pe"))[2])
    assert (slots["contact_field"], slots["contact_value"]) == ("email", "rosa.q@example.pe")
    # Without an e-mail in it, the request only names the field.
    slots = slots_of(run(form, _request("quiero cambiar mi direccion"))[2])
    assert slots["contact_field"] == "address" and "contact_value" not in slots


def after_a_tap(
    sender: str, invoice_id: str, slots: dict, *later: dict, code_intent: str = "inform"
) -> Tracker:
    """The tracker once the code is checked, the flow started by a reminder's "Pagar ahora":
    the channel opened its link and put the invoice in the message's metadata."""
    base = tracker(sender, slots=slots)
    tap = {
        "event": "user",
        "text": "/make_payment",
        "parse_data": {"intent": {"name": "make_payment", "confidence": 1.0}},
        "metadata": {DEEP_LINK: {"flow": "pay", "target": invoice_id}},
    }
    form = [{"event": "active_loop", "name": "verification_form"}]
    asked = {"event": "slot", "name": "requested_slot", "value": "otp_code"}
    # NLU may read a code as anything, make_payment included: an answer to the form never counts.
    code = {"event": "user", "text": "482913", "parse_data": {"intent": {"name": code_intent}}}
    done = [
        {"event": "slot", "name": "requested_slot", "value": None},
        {"event": "active_loop", "name": None},
    ]
    return Tracker(
        sender_id=base.sender_id, slots=base.slots, latest_message=base.latest_message,
        events=[tap, *later, *form, asked, code, *done], paused=False, followup_action=None,
        active_loop={}, latest_action_name="action_listen",
    )  # fmt: skip


def test_pagar_ahora_on_a_reminder_sends_the_link_of_that_invoice_only(world):
    _, messages = world
    state = verify(MARIANA_MX, messages, MARIANA_MX, {"pending_flow": "payment_link"})
    responses, sent, events = run(ActionCompleteFlow(), after_a_tap(MARIANA_MX, "F-2001", state))
    assert responses == ["utter_payment_link", "utter_ask_feedback"]  # not F-2002, also open
    link = verify_payment_link(sent[0]["url"], LINK_SECRET, CLOCK.now())
    assert (link.invoice_id, str(link.amount)) == ("F-2001", "1234.50")
    assert sent[0]["invoice_id"] == "F-2001" and sent[0]["amount"] == "$1,234.50"
    assert slots_of(events)["pending_flow"] is None


def test_a_code_that_nlu_reads_as_make_payment_does_not_undo_the_reminders_invoice(world):
    _, messages = world
    state = verify(MARIANA_MX, messages, MARIANA_MX, {"pending_flow": "payment_link"})
    tapped = after_a_tap(MARIANA_MX, "F-2001", state, code_intent="make_payment")
    responses, sent, _ = run(ActionCompleteFlow(), tapped)
    assert responses == ["utter_payment_link", "utter_ask_feedback"] and sent[0]["invoice_id"] == "F-2001"


def test_a_reminder_for_a_paid_invoice_says_so_and_sends_no_link(world):
    _, messages = world
    state = verify(ROSA_PE, messages, ROSA_PE, {"pending_flow": "payment_link"})
    responses, sent, _ = run(ActionCompleteFlow(), after_a_tap(ROSA_PE, "F-2005", state))
    assert responses == [None, "utter_ask_feedback"]
    assert "F-2005 ya figura como pagada" in sent[0]["text"] and "http" not in sent[0]["text"]


def test_a_reminder_naming_someone_elses_invoice_tells_nothing_of_it(world):
    _, messages = world
    state = verify(MARIANA_MX, messages, MARIANA_MX, {"pending_flow": "payment_link"})
    responses, sent, events = run(ActionCompleteFlow(), after_a_tap(MARIANA_MX, "F-2003", state))
    assert responses == [None]  # no link, no "¿Te sirvió?"
    assert "No encuentro la factura F-2003 a tu nombre" in sent[0]["text"]
    assert "45" not in sent[0]["text"] and "http" not in sent[0]["text"]  # not its amount, no link
    assert slots_of(events)["pending_flow"] is None


def test_an_invoice_above_the_threshold_from_a_reminder_goes_to_a_person(world):
    _, messages = world
    state = verify(JULIAN_AR, messages, JULIAN_AR, {"pending_flow": "payment_link"})
    responses, sent, events = run(ActionCompleteFlow(), after_a_tap(JULIAN_AR, "F-2004", state))
    assert responses == ["utter_payment_with_person"]
    assert handed_over(events)[0] == "amount_over_threshold"


def test_asking_to_pay_after_the_tap_sends_every_open_invoice_again(world):
    _, messages = world
    state = verify(MARIANA_MX, messages, MARIANA_MX, {"pending_flow": "payment_link"})
    typed = {"event": "user", "text": "quiero pagar todo", "parse_data": {"intent": {"name": "make_payment"}}}
    responses, sent, _ = run(ActionCompleteFlow(), after_a_tap(MARIANA_MX, "F-2001", state, typed))
    assert responses == ["utter_payment_link", "utter_payment_link", "utter_ask_feedback"]
    assert [item["invoice_id"] for item in sent[:2]] == ["F-2002", "F-2001"]
