"""Checks on domain.yml and data/ that `rasa data validate` leaves as warnings."""

import re
from pathlib import Path

import yaml

from actions.order_status import NO_ORDER_RESPONSES

ROOT = Path(__file__).parents[2]
DOMAIN = yaml.safe_load((ROOT / "domain.yml").read_text())
# Every dialogue file under data/ (rules.yml, stories.yml and each flow's own file).
DIALOGUE = [yaml.safe_load(path.read_text()) for path in sorted((ROOT / "data").glob("*.yml"))]
# Responses are sent by custom actions, by the Twilio channel (opt-out confirmations) and by the
# outbox worker in bot/ (confirmations of writes that were queued).
ACTION_SOURCES = "\n".join(
    path.read_text() for folder in ("actions", "connectors", "bot") for path in (ROOT / folder).glob("*.py")
)


FORM_SLOTS = {slot for form in (DOMAIN.get("forms") or {}).values() for slot in form["required_slots"]}


def dialogue_steps():
    for document in DIALOGUE:
        for block in document.get("rules", []) + document.get("stories", []):
            yield from block["steps"]


def test_every_intent_is_handled_by_a_rule_or_story():
    used = {step["intent"] for step in dialogue_steps() if "intent" in step}
    assert set(DOMAIN["intents"]) - used == set()


def test_every_response_is_used_by_the_dialogue_or_sent_by_an_action():
    used = {step["action"] for step in dialogue_steps() if "action" in step}
    sent = set(NO_ORDER_RESPONSES.values()) | set(re.findall(r'"(utter_\w+)"', ACTION_SOURCES))
    prefixes = re.findall(r'f"(utter_\w+_)\{', ACTION_SOURCES)  # utter_order_{situation}
    unused = {
        name
        for name in DOMAIN["responses"]
        if name not in used | sent
        and not any(name.startswith(prefix) for prefix in prefixes)
        # utter_faq/<topic>: sent by utter_faq, or by action_kb_answer as its fallback
        and name.split("/")[0] not in used | sent
        and name.removeprefix("utter_ask_") not in FORM_SLOTS  # a form asks for its slots
    }
    assert unused == set()


def test_every_response_has_at_least_two_variations_short_enough_for_a_phone():
    for name, variations in DOMAIN["responses"].items():
        assert len(variations) >= 2, name
        for variation in variations:
            assert len(variation["text"]) <= 320, name


def test_responses_use_neutral_latin_american_spanish():
    vosotros = re.compile(r"\b(vosotros|vuestro|vuestra|tenéis|podéis|queréis|sois)\b", re.IGNORECASE)
    for name, variations in DOMAIN["responses"].items():
        for variation in variations:
            assert not vosotros.search(variation["text"]), name


def test_buttons_lead_to_intents_and_fit_whatsapp():
    for name, variations in DOMAIN["responses"].items():
        for variation in variations:
            for button in variation.get("buttons", []):
                # "/intent" or "/intent{...entities}"
                assert button["payload"].removeprefix("/").split("{")[0] in DOMAIN["intents"], name
                assert len(button["title"]) <= 20, (name, button["title"])


def test_options_fit_a_whatsapp_list():
    for name, variations in DOMAIN["responses"].items():
        for variation in variations:
            assert len(variation.get("buttons", [])) <= 10, name  # a list holds at most 10 rows


def test_the_menu_offers_every_flow_a_customer_can_start():
    flows = {"order_status", "reschedule_delivery", "check_balance", "report_payment", "cancel_order",
             "return_request", "update_contact_data", "human_handoff"}  # fmt: skip
    for variation in DOMAIN["responses"]["utter_menu"]:
        offered = {button["payload"].removeprefix("/") for button in variation["buttons"]}
        assert offered == flows


def test_responses_with_buttons_do_not_number_them_in_the_text_too():
    # The channel numbers the buttons under the text (WhatsApp/SMS): numbering them in the text
    # as well showed every option twice.
    for name, variations in DOMAIN["responses"].items():
        for variation in variations:
            if variation.get("buttons"):
                assert not re.search(r"^\s*\d\.", variation["text"], re.MULTILINE), name


def test_option_labels_name_real_intents():
    labelled = {
        name.removeprefix("utter_option_") for name in DOMAIN["responses"] if name.startswith("utter_option_")
    }
    assert labelled <= set(DOMAIN["intents"])


def test_option_labels_fit_a_whatsapp_button():
    # action_clarify sends each label as a button's title (capitalised), action_kb_answer its
    # "Sí" and "No" (utter_kb_button_*): 20 characters at most.
    for name, variations in DOMAIN["responses"].items():
        if name.startswith(("utter_option_", "utter_kb_button_")):
            for variation in variations:
                assert len(variation["text"]) <= 20, (name, variation["text"])
