"""action_kb_answer: answers a customer's question from the knowledge base (kb/, bot/kb).

It runs on the faq intent (also in the middle of a reschedule, which then asks its step again),
as a second chance on out_of_scope, and on kb_article, the payload of an article the customer
picked from the options it offered. It searches the customer's own words for their country and
channel, and acts on the search's verdict:

- "answer": the article as the channel shows it (WhatsApp: the short answer, its steps and link;
  SMS: the short answer and link). An article tied to a flow then offers it ("Sí" carries the
  flow's intent, as any picked option does; "No" ends politely).
- "options": the top titles as options, each carrying its article id (/kb_article{...}).
- "none": no article for that, and the offer of a person.

On out_of_scope only a confident answer is given; otherwise the usual out-of-scope reply. Inside
a form only a confident answer is given, never options or a flow: the form's own question comes
right after. The knowledge base is local, so the CRM being down only costs the customer's
country on record (the phone's country is used). If the knowledge base cannot be loaded at all,
a frequent question gets the ResponseSelector's old answer (utter_faq/<topic>).

The article shown is recorded in the slot kb_article_id and in the bot message's metadata, for
analytics.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher

from actions.feedback import ask_feedback
from actions.order_status import sender_phone
from actions.verification import identified_customer_id, session_verified_customer
from bot.adapters.base import BackendUnavailable
from bot.handoff.rules import Reason
from bot.kb import Article, knowledge_base
from bot.messaging.inbound import Channel
from bot.phone import phone_country
from bot.wiring import wiring

logger = logging.getLogger(__name__)

ARTICLE_INTENT = "kb_article"  # the payload of a picked option: /kb_article{"kb_article_id": "..."}
ARTICLE_ENTITY = ARTICLE_SLOT = "kb_article_id"
OUT_OF_SCOPE_INTENT = "out_of_scope"
RETRIEVAL_INTENT = "faq"
OLD_FAQ_RESPONSE = "utter_faq"  # utter_faq/<topic>: the answers from before the knowledge base
ANSWER = "answer"
OPTIONS = "options"
NONE = "none"
OPTION_COUNT = 3
# How sure the ResponseSelector must be of a migrated FAQ topic (faq/<topic>) for its article to
# be answered when the search only offers options that include it: two readings that agree.
FAQ_TOPIC_SURE = 0.95
DECLINE_PAYLOAD = "/deny"


def conversation_channel(tracker: Tracker) -> str:
    """whatsapp or sms, as the Twilio channel marked the customer's latest message; any other
    channel (REST, the console, the shell) gets WhatsApp's rendering. A message an action put in
    the customer's mouth (a picked option) has no channel: the one before it says."""
    metadata = tracker.latest_message.get("metadata") or {}
    if metadata.get("channel") in (Channel.WHATSAPP.value, Channel.SMS.value):
        return str(metadata["channel"])
    for event in reversed(tracker.events):
        if event.get("event") != "user":
            continue
        channel = (event.get("metadata") or {}).get("channel")
        if channel in (Channel.WHATSAPP.value, Channel.SMS.value):
            return str(channel)
        if event.get("input_channel"):
            return Channel.WHATSAPP.value
    return Channel.WHATSAPP.value


async def customer_country(tracker: Tracker) -> str:
    """The country whose articles apply: the identified customer's on record, else the sender's
    phone number's, else the business's default country."""
    customer_id = session_verified_customer(tracker) or identified_customer_id(tracker)
    if customer_id:
        try:
            customer = await asyncio.to_thread(wiring().backends.crm.customer_by_id, customer_id)
        except BackendUnavailable:
            logger.warning("knowledge base: the CRM is unavailable; the country comes from the phone")
            customer = None
        if customer is not None and customer.country:
            return customer.country.upper()
    phone = sender_phone(tracker)
    return (phone_country(phone) if phone else None) or wiring().settings.default_country.upper()


def label(domain: dict[str, Any], response: str) -> str:
    """One variation of a label response (the text of an option's button)."""
    variations = (domain.get("responses") or {}).get(response) or []
    return random.choice([variation["text"] for variation in variations])  # noqa: S311 (a wording)


def article_payload(article_id: str) -> str:
    return f"/{ARTICLE_INTENT}{json.dumps({ARTICLE_ENTITY: article_id})}"


def sure_faq_topic(tracker: Tracker) -> str | None:
    """The FAQ topic (faq/<topic>) the ResponseSelector is sure of, if it is."""
    selector = tracker.latest_message.get("response_selector") or {}
    chosen = (selector.get(RETRIEVAL_INTENT) or {}).get("response") or {}
    topic = chosen.get("intent_response_key")
    return str(topic) if topic and float(chosen.get("confidence") or 0) >= FAQ_TOPIC_SURE else None


def old_faq_response(tracker: Tracker, domain: dict[str, Any]) -> str | None:
    """The ResponseSelector's answer to a frequent question (utter_faq/<topic>), if it gave one."""
    selector = tracker.latest_message.get("response_selector") or {}
    chosen = (selector.get(RETRIEVAL_INTENT) or selector.get("default") or {}).get("response") or {}
    name = str(chosen.get("utter_action") or "")
    known = name.startswith(f"{OLD_FAQ_RESPONSE}/") and name in (domain.get("responses") or {})
    return name if known else None


class ActionKbAnswer(Action):
    """Search the knowledge base with the customer's words and answer, offer options or a person."""

    def name(self) -> str:
        return "action_kb_answer"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[EventType]:
        intent = (tracker.latest_message.get("intent") or {}).get("name")
        in_form = bool((tracker.active_loop or {}).get("name"))
        text = str(tracker.latest_message.get("text") or "")
        country, channel = await customer_country(tracker), conversation_channel(tracker)
        try:
            kb = await asyncio.to_thread(knowledge_base, wiring().settings.kb_dir)
            if intent == ARTICLE_INTENT:
                article_id = next(tracker.get_latest_entity_values(ARTICLE_ENTITY), None)
                if article_id and kb.get(str(article_id)) is not None:
                    article = kb.resolve(str(article_id), country=country, channel=channel)
                    return self.answer(
                        dispatcher, domain, article, channel, offer_flow=not in_form, tracker=tracker
                    )
                logger.warning("knowledge base: no article %r to answer the pick", article_id)
                return self.nothing_fits(dispatcher, text)
            result = await kb.search_async(text, country=country, channel=channel, limit=OPTION_COUNT)
        except Exception:  # noqa: BLE001 (any failure of the knowledge base, not of the conversation)
            # A knowledge base that never loaded (a broken article at start) must not silence the
            # assistant: the answers it had before the knowledge base existed.
            logger.exception("knowledge base unavailable; answering without it")
            return self.without_knowledge_base(dispatcher, tracker, domain, intent)

        if result.verdict == ANSWER and result.hits:
            article = result.hits[0].article
            return self.answer(dispatcher, domain, article, channel, offer_flow=not in_form, tracker=tracker)
        # A migrated FAQ topic NLU is sure of, among the search's options: answered as before the
        # knowledge base ("con qué tarjetas puedo pagar" stays the payment methods, not options).
        # Not when the search found nothing: its hits are then only the least unlikely articles
        # (no word in common), and which of them make the top three is a matter of decimals.
        topic = sure_faq_topic(tracker) if intent == RETRIEVAL_INTENT and result.verdict != NONE else None
        tied = kb.by_intent(topic) if topic else None
        agreed = next((hit for hit in result.hits if tied and hit.article.id == tied.id), None)
        if agreed is not None:
            return self.answer(
                dispatcher, domain, agreed.article, channel, offer_flow=not in_form, tracker=tracker
            )
        if intent == OUT_OF_SCOPE_INTENT:
            return self.out_of_scope(dispatcher)
        if in_form:
            # The form asks its step right after: options here would be lost under its question.
            dispatcher.utter_message(response="utter_kb_unsure_in_form")
            return [SlotSet(ARTICLE_SLOT, None)]
        if result.verdict == OPTIONS and result.hits:
            hits = result.hits[:OPTION_COUNT]
            buttons = [
                {"title": hit.article.title, "payload": article_payload(hit.article.id)} for hit in hits
            ]
            dispatcher.utter_message(
                response="utter_kb_options", buttons=buttons, kb_offered=[hit.article.id for hit in hits]
            )
            return [SlotSet(ARTICLE_SLOT, None)]
        return self.nothing_fits(dispatcher, text)

    @staticmethod
    def answer(
        dispatcher: CollectingDispatcher,
        domain: dict[str, Any],
        article: Article,
        channel: str,
        *,
        offer_flow: bool,
        tracker: Tracker | None = None,
    ) -> list[EventType]:
        """The article's answer, then its flow offered (when it has one) or, given the
        conversation (`tracker`), "¿Te sirvió?" (never both: one set of options on screen)."""
        dispatcher.utter_message(
            response="utter_kb_answer", answer=article.render(channel), kb_article_id=article.id
        )
        flow = article.flow
        if tracker is not None and not (offer_flow and flow and flow in (domain.get("intents") or [])):
            ask_feedback(dispatcher, tracker, f"kb:{article.id}")
        if offer_flow and flow:
            if flow in (domain.get("intents") or []):
                buttons = [
                    {"title": label(domain, "utter_kb_button_yes"), "payload": f"/{flow}"},
                    {"title": label(domain, "utter_kb_button_no"), "payload": DECLINE_PAYLOAD},
                ]
                dispatcher.utter_message(response="utter_kb_offer_flow", buttons=buttons)
            else:
                logger.warning("knowledge base: article %s names a flow with no intent: %s", article.id, flow)
        return [SlotSet(ARTICLE_SLOT, article.id)]

    @staticmethod
    def nothing_fits(dispatcher: CollectingDispatcher, text: str) -> list[EventType]:
        # "Sí" to the offer is /human_handoff: action_handoff reads why from the slots.
        dispatcher.utter_message(response="utter_kb_none")
        return [
            SlotSet(ARTICLE_SLOT, None),
            SlotSet("handoff_reason", Reason.CANNOT_COMPLETE.value),
            SlotSet("handoff_detail", text or None),
        ]

    @staticmethod
    def out_of_scope(dispatcher: CollectingDispatcher) -> list[EventType]:
        dispatcher.utter_message(response="utter_out_of_scope")
        dispatcher.utter_message(response="utter_menu")
        return [SlotSet(ARTICLE_SLOT, None)]

    def without_knowledge_base(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any], intent: str | None
    ) -> list[EventType]:
        old = old_faq_response(tracker, domain) if intent == RETRIEVAL_INTENT else None
        if old is None:
            return self.out_of_scope(dispatcher)
        dispatcher.utter_message(response=old)
        return [SlotSet(ARTICLE_SLOT, None)]
