"""What the forms share about where the conversation stands (reschedule_form, return_form)."""

from __future__ import annotations

from rasa_sdk import Tracker


def unread_message(tracker: Tracker, form: str) -> bool:
    """Whether the customer's latest message is still unanswered, so the form must read it.

    Rasa runs the validation on a copy of the tracker that ends with the form's own execution
    (then the slots being extracted and validated), so `latest_action_name` is always the form:
    look behind that. A user message comes first when it is fresh; an action
    (action_order_status, utter_faq…) when the form resumes after it.
    """
    events = list(tracker.events)
    while events and events[-1].get("event") == "slot":
        events.pop()
    if events and events[-1].get("event") == "action" and events[-1].get("name") == form:
        events.pop()
    for event in reversed(events):
        kind = event.get("event")
        if kind == "user":
            return True
        if kind == "action" and event.get("name") != "action_listen":
            return False
    return True
