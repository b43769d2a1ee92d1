"""Conversations written as Rasa events, the way the tracker store hands them to the event broker:
what the KPI tests' fixtures, the demo generator (scripts/kpi_demo.py) and the benchmark are made of.

A development tool, outside the product: each method appends the events Rasa 3.6 writes for one
step (`action_session_start` + `session_started`, a customer message with its NLU parse and the
Twilio channel's metadata, an action and its bot message, a pause while a person answers).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any


class Conversation:
    """The events of one conversation, on a clock that moves a few seconds per step."""

    def __init__(
        self, phone: str, channel: str = "whatsapp", step: timedelta = timedelta(seconds=20)
    ) -> None:
        self.sender_id = phone
        self.phone = phone
        self.channel = channel
        self.step = step
        self.events: list[dict[str, Any]] = []
        self.now: datetime | None = None

    def _at(self, moment: datetime | None) -> float:
        if moment is not None:
            self.now = moment
        elif self.now is None:
            raise ValueError("start the conversation with session(at=...)")
        else:
            self.now += self.step
        return self.now.timestamp()

    def _add(self, event: dict[str, Any]) -> Conversation:
        # Rasa stamps each event with its own time.time(): no two events of a step share a moment.
        if self.events and event["timestamp"] <= self.events[-1]["timestamp"]:
            event["timestamp"] = round(self.events[-1]["timestamp"] + 0.001, 6)
        self.events.append(event)
        return self

    def session(self, at: datetime) -> Conversation:
        moment = self._at(at)
        self._add({"event": "action", "timestamp": moment, "name": "action_session_start"})
        self._add({"event": "session_started", "timestamp": moment})
        return self._add({"event": "action", "timestamp": moment, "name": "action_listen"})

    def says(
        self,
        text: str,
        intent: str,
        confidence: float = 0.93,
        at: datetime | None = None,
        entities: dict[str, str] | None = None,
    ) -> Conversation:
        ranking = [{"name": intent, "confidence": confidence}]
        found = [{"entity": name, "value": value} for name, value in (entities or {}).items()]
        return self._add(
            {
                "event": "user",
                "timestamp": self._at(at),
                "text": text,
                "parse_data": {
                    "text": text,
                    "intent": ranking[0],
                    "intent_ranking": ranking,
                    "entities": found,
                },
                "input_channel": "twilio",
                "message_id": f"SM{len(self.events):030d}",
                "metadata": {"channel": self.channel, "phone": self.phone},
            }
        )

    def answers(
        self, action: str, utter: str | None = None, buttons: list[str] | None = None
    ) -> Conversation:
        moment = self._at(None)
        self._add({"event": "action", "timestamp": moment, "name": action})
        if utter or buttons:
            self._add(
                {
                    "event": "bot",
                    "timestamp": moment,
                    "text": "…",
                    "data": {"buttons": [{"title": p, "payload": p} for p in buttons or []]},
                    "metadata": {"utter_action": utter or action},
                }
            )
        return self._add({"event": "action", "timestamp": moment, "name": "action_listen"})

    def asks_feedback(self, flow: str, variant: str, experiment: str = "pregunta_feedback") -> Conversation:
        """The flow's last action also asks "¿Te sirvió?" (actions/feedback.py), in the customer's
        A/B variant of the question (connectors/nlg.py records both on the bot event)."""
        moment = self.events[-1]["timestamp"]
        metadata = {"utter_action": "utter_ask_feedback", "rated_flow": flow}
        metadata |= {"experiment": experiment, "variant": variant, "id": variant}
        buttons = [
            {"title": t, "payload": f'/flow_feedback{{"feedback_useful":"{v}"}}'}
            for t, v in (("Sí", "yes"), ("No", "no"))
        ]
        # Before the action_listen that closed the action's turn, as Rasa logs them.
        listen = self.events.pop() if self.events and self.events[-1].get("name") == "action_listen" else None
        self._add(
            {
                "event": "bot",
                "timestamp": moment,
                "text": "¿Te sirvió?",
                "data": {"buttons": buttons},
                "metadata": metadata,
            }
        )
        return self._add(listen) if listen else self

    def answers_feedback(self, useful: str) -> Conversation:
        """The customer taps (or types) Sí / No: the payload, then action_record_feedback."""
        self.says(
            f'/flow_feedback{{"feedback_useful":"{useful}"}}',
            "flow_feedback",
            1.0,
            entities={"feedback_useful": useful},
        )
        thanks = "utter_feedback_thanks" if useful == "yes" else "utter_feedback_sorry"
        return self.answers("action_record_feedback", thanks)

    def pause(self) -> Conversation:
        return self._add({"event": "pause", "timestamp": self._at(None)})

    def resume(self) -> Conversation:
        return self._add({"event": "resume", "timestamp": self._at(None)})

    def delivered(self) -> list[dict[str, Any]]:
        """The events as the broker publishes them: each with the conversation's `sender_id`."""
        return [{"sender_id": self.sender_id, **event} for event in self.events]
