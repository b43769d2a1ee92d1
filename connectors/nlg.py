"""The assistant's NLG: Rasa's templated responses, with A/B variants assigned per customer.

endpoints.yml names this class (`nlg: type: connectors.nlg.ExperimentNaturalLanguageGenerator`):
Rasa 3.6 builds any `nlg.type` that is not `callback` or `response` from its module path, with
`endpoint_config` and `domain` (rasa/core/nlg/generator.py, `_load_from_module_name_in_endpoint_config`).
Both the responses Rasa's policies predict (`utter_*` actions) and those custom actions name
(`dispatcher.utter_message(response=...)`, rendered by Rasa through `nlg.generate`) pass here.

For a response whose variations declare an experiment (bot/experiments.py), the variation is the
customer's variant instead of a random one, and the bot event's metadata gets `experiment` and
`variant` (Rasa's `create_bot_utterance` keeps every key of the generated message it does not
render as metadata), which the event broker carries to analytics. Other responses are Rasa's own.
"""

from __future__ import annotations

import copy
from typing import Any

from rasa.core.nlg.generator import ResponseVariationFilter
from rasa.core.nlg.response import TemplatedNaturalLanguageGenerator
from rasa.shared.core.domain import Domain
from rasa.shared.core.trackers import DialogueStateTracker
from rasa.utils.endpoints import EndpointConfig

from bot.experiments import EXPERIMENT_KEY, VARIANT_KEY, pick_variation


class ExperimentNaturalLanguageGenerator(TemplatedNaturalLanguageGenerator):
    def __init__(self, endpoint_config: EndpointConfig | None = None, domain: Domain | None = None) -> None:
        super().__init__((domain or Domain.empty()).responses)

    async def generate(
        self,
        utter_action: str,
        tracker: DialogueStateTracker,
        output_channel: str,
        **kwargs: Any,
    ) -> dict[str, Any] | None:
        filled_slots = tracker.current_slot_values()
        if utter_action in self.responses:
            suitable = ResponseVariationFilter(self.responses).responses_for_utter_action(
                utter_action, output_channel, filled_slots
            )
            picked = pick_variation(tracker.sender_id, suitable)
            if picked is not None:
                variation, experiment, variant = picked
                response = copy.deepcopy(dict(variation))
                response[EXPERIMENT_KEY], response[VARIANT_KEY] = experiment, variant
                return self._fill_response(response, filled_slots, **kwargs)
        return self.generate_from_slots(utter_action, filled_slots, output_channel, **kwargs)
