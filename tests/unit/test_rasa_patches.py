"""connectors/rasa_patches.py computes what Rasa computes, only once: each patched function is
compared with Rasa's own on the project's real domain, stories and rules. And the patches are
applied only when they should be: once, on the Rasa they were written for, unless turned off."""

from __future__ import annotations

import asyncio
import copy
import gc
import importlib
import logging
import random
from pathlib import Path

import jsonschema
import pytest
from rasa.core.actions.action import RemoteAction
from rasa.core.training import load_data
from rasa.engine.graph import GraphSchema, SchemaNode
from rasa.shared.core.constants import RULE_ONLY_LOOPS, RULE_ONLY_SLOTS
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import (
    ActionExecuted,
    Event,
    SlotSet,
    UserUtteranceReverted,
    UserUttered,
)
from rasa.shared.core.trackers import DialogueStateTracker

from connectors import rasa_patches

ROOT = Path(__file__).resolve().parents[2]

rasa_patches.apply()
RASA_STATES = rasa_patches._DOMAIN_STATES  # Rasa's own Domain.states_for_tracker_history


@pytest.fixture(scope="module")
def domain() -> Domain:
    return Domain.load(str(ROOT / "domain.yml"))


@pytest.fixture(scope="module")
def conversations(domain) -> list[list[Event]]:
    """Every story, rule and conversation test of the project as a list of events."""
    paths = [str(ROOT / "data"), str(ROOT / "tests" / "stories")]
    trackers = []
    for path in paths:
        trackers += load_data(path, domain, augmentation_factor=0)
    assert len(trackers) > 50
    return [list(tracker.events) for tracker in trackers]


def argument_sets(domain: Domain) -> list[dict]:
    rule_only = {
        RULE_ONLY_SLOTS: [slot.name for slot in domain.slots[:3]],
        RULE_ONLY_LOOPS: domain.form_names[:2],
    }
    return [
        {},
        {"omit_unset_slots": True},
        {"ignore_rule_only_turns": True, "rule_only_data": rule_only},
        {"ignore_rule_only_turns": True, "rule_only_data": None},
    ]


def as_stored(events: list[Event]) -> list[Event]:
    """The same events as the tracker store hands them back: equal, but new objects."""
    return [Event.from_parameters(event.as_dict()) for event in events]


def test_states_match_rasa_at_every_turn_of_every_conversation(domain, conversations):
    rng = random.Random(7)
    rasa_patches._histories.clear()
    checked = 0
    for number, events in enumerate(conversations):
        events = copy.deepcopy(events)
        for event in events:  # turns the RulePolicy predicted are hidden from the ML policies
            if isinstance(event, ActionExecuted) and rng.random() < 0.3:
                event.hide_rule_turn = True
        sender = f"conversation-{number}"
        tracker = DialogueStateTracker.from_events(sender, [], domain.slots)
        for index, event in enumerate(events):
            tracker.update(event)
            if rng.random() < 0.2:  # a new message: the tracker is rebuilt from storage
                tracker = DialogueStateTracker.from_events(
                    sender, as_stored(events[: index + 1]), domain.slots
                )
            for arguments in rng.sample(argument_sets(domain), 2):
                assert tracker.past_states(domain, **arguments) == RASA_STATES(domain, tracker, **arguments)
                checked += 1
    assert checked > 1000


def test_a_rewound_conversation_is_replayed_anew(domain):
    sender = "rewound"
    events = [
        ActionExecuted("action_listen"),
        UserUttered("hola", {"name": "greet"}),
        ActionExecuted("utter_greet"),
        SlotSet("order_id", "PED-1001"),
        ActionExecuted("action_listen"),
        UserUttered("donde esta mi pedido", {"name": "order_status"}),
    ]
    tracker = DialogueStateTracker.from_events(sender, events, domain.slots)
    assert tracker.past_states(domain) == RASA_STATES(domain, tracker)
    # The last message is taken back (as action_back / two-stage fallback do) and another follows.
    tracker.update(UserUtteranceReverted())
    tracker.update(ActionExecuted("action_listen"))
    tracker.update(UserUttered("gracias", {"name": "thank"}))
    assert tracker.past_states(domain) == RASA_STATES(domain, tracker)
    # A different conversation under the same id (another replica stored it) is not confused.
    other = DialogueStateTracker.from_events(sender, [ActionExecuted("action_listen")], domain.slots)
    assert other.past_states(domain) == RASA_STATES(domain, other)


def test_callers_may_change_the_states_they_get(domain):
    events = [ActionExecuted("action_listen"), UserUttered("hola", {"name": "greet"}, message_id="1")]
    tracker = DialogueStateTracker.from_events("mutating", events, domain.slots)
    first = tracker.past_states(domain)
    first[-1]["user"].clear()  # as the featurizers do with the text of the message
    assert tracker.past_states(domain) == RASA_STATES(domain, tracker)


def test_action_server_answers_are_validated_as_rasa_does():
    action = RemoteAction("action_order_status", None)
    assert action._validate_action_result({"events": [], "responses": [{"text": "hola"}]})
    wrong = {"events": "not a list", "responses": []}
    with pytest.raises(jsonschema.ValidationError) as ours:
        action._validate_action_result(wrong)
    with pytest.raises(jsonschema.ValidationError) as theirs:
        jsonschema.validate(wrong, RemoteAction.action_response_format_spec())
    assert ours.value.message.startswith(theirs.value.message + ". Failed to validate Action server")


def test_minimal_graph_schemas_are_rasas():
    def node(needs: dict) -> SchemaNode:
        return SchemaNode(needs=needs, uses=object, constructor_name="create", fn="run", config={})

    schema = GraphSchema(
        {"a": node({}), "b": node({"x": "a"}), "c": node({"x": "b", "y": "a"}), "d": node({})}
    )
    fresh = GraphSchema(dict(schema.nodes))
    for targets in (["c"], ["b"], ["d", "a"], None):
        assert schema.minimal_graph_schema(targets) == GraphSchema.minimal_graph_schema.__wrapped__(
            fresh, targets
        )
        assert schema.minimal_graph_schema(targets) is schema.minimal_graph_schema(targets)


def test_loaded_objects_are_frozen_out_of_the_garbage_collector():
    try:
        asyncio.run(rasa_patches.warm_up_and_freeze(None))
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()


def test_a_model_loaded_later_releases_the_frozen_one(tmp_path):
    from rasa.core.agent import Agent

    try:
        asyncio.run(rasa_patches.warm_up_and_freeze(None))
        assert gc.get_freeze_count() > 0
        with pytest.raises(Exception):  # noqa: B017 (any failure to load: the unfreeze came first)
            Agent().load_model(tmp_path / "no-such-model.tar.gz")
        assert gc.get_freeze_count() == 0
    finally:
        gc.unfreeze()


# --- when the patches are applied --------------------------------------------------------------


def patched_functions() -> dict[str, object]:
    """What Rasa's classes hold now under every name the patches replace."""
    functions = {}
    for target in rasa_patches.PATCHED:
        module, qualified = target.split(":")
        owner, name = qualified.split(".")
        functions[target] = vars(getattr(importlib.import_module(module), owner))[name]
    return functions


def wrapped(function: object) -> object:
    """What a patch wraps: Rasa's own function, or Rasa's own classmethod (RasaModel.load)."""
    if isinstance(function, classmethod):
        return function.__func__.__wrapped__
    return getattr(function, "__wrapped__", function)


@pytest.fixture
def unpatched_rasa(monkeypatch) -> dict[str, object]:
    """Rasa's own functions back in place (this module patched them at import) for one test."""
    originals = {}
    for target, function in patched_functions().items():
        module, qualified = target.split(":")
        owner, name = qualified.split(".")
        original = wrapped(function)
        monkeypatch.setattr(getattr(importlib.import_module(module), owner), name, original)
        originals[target] = original
    monkeypatch.setattr(rasa_patches, "_applied", False)
    monkeypatch.setattr(rasa_patches, "_DOMAIN_STATES", None)
    return originals


def test_rasa_patches_off_leaves_rasa_untouched(unpatched_rasa):
    assert rasa_patches.apply(enabled=False) is False
    assert patched_functions() == unpatched_rasa
    assert not rasa_patches.is_applied()


def test_another_rasa_version_is_skipped_with_a_warning(unpatched_rasa, monkeypatch, caplog):
    import rasa

    monkeypatch.setattr(rasa, "__version__", "3.7.2")
    with caplog.at_level(logging.WARNING, logger=rasa_patches.__name__):
        assert rasa_patches.apply() is False
    assert patched_functions() == unpatched_rasa
    assert "Rasa 3.7.2 is not the Rasa 3.6.x" in caplog.text and "skipped" in caplog.text


def test_the_version_check_reads_major_and_minor():
    assert rasa_patches.is_written_for("3.6.21")
    assert rasa_patches.is_written_for("3.6.0rc1")
    assert not rasa_patches.is_written_for("3.7.0")
    assert not rasa_patches.is_written_for("4.6.1")
    assert not rasa_patches.is_written_for("3")
    assert not rasa_patches.is_written_for("3.x")


def test_applying_twice_patches_once(unpatched_rasa):
    assert rasa_patches.apply() is True
    first = patched_functions()
    assert rasa_patches.apply() is True
    assert patched_functions() == first
    for target, function in first.items():
        assert function is not unpatched_rasa[target]
        assert wrapped(function) is unpatched_rasa[target]  # one wrapper, around Rasa's own


def test_without_the_patches_the_model_is_warmed_up_but_not_frozen(unpatched_rasa):
    gc.unfreeze()
    asyncio.run(rasa_patches.warm_up_and_freeze(None))
    assert gc.get_freeze_count() == 0


def test_the_launcher_applies_the_patches_as_the_setting_says(unpatched_rasa, monkeypatch):
    from connectors import rasa_launcher

    monkeypatch.setenv("RASA_PATCHES", "off")
    assert rasa_launcher.apply_patches().startswith("Rasa patches off")
    assert patched_functions() == unpatched_rasa
    monkeypatch.setenv("RASA_PATCHES", "on")
    assert rasa_launcher.apply_patches().startswith("Rasa patches applied to Rasa 3.6.")
    assert rasa_patches.is_applied()
    monkeypatch.setenv("RASA_PATCHES", "sometimes")
    with pytest.raises(SystemExit, match="RASA_PATCHES='sometimes'"):
        rasa_launcher.apply_patches()


# --- the HTTP API's scope (security: applied whatever RASA_PATCHES says) --------------------------


@pytest.fixture
def unscoped_rasa_server(monkeypatch):
    """rasa.server.create_app as Rasa ships it, put back after the test."""
    import rasa.server
    from sanic import Sanic

    original = getattr(rasa.server.create_app, "__wrapped__", rasa.server.create_app)
    monkeypatch.setattr(rasa.server, "create_app", original)
    monkeypatch.setattr(Sanic, "test_mode", True)  # every test builds an app named rasa_server
    return rasa.server


@pytest.mark.parametrize(
    ("method", "path", "refused"),
    [
        ("GET", "", False),
        ("GET", "status", False),
        ("GET", "version", False),
        ("GET", "conversations/<conversation_id:path>/tracker", False),
        ("POST", "model/parse", False),
        ("PUT", "model", True),
        ("DELETE", "model", True),
        ("POST", "model/train", True),
        ("POST", "conversations/<conversation_id:path>/tracker/events", True),
        ("PUT", "conversations/<conversation_id:path>/tracker/events", True),
        ("POST", "conversations/<conversation_id:path>/execute", True),
        ("POST", "conversations/<conversation_id:path>/trigger_intent", True),
        ("POST", "conversations/<conversation_id:path>/predict", True),
        ("POST", "conversations/<conversation_id:path>/messages", True),
        ("POST", "model/test/stories", True),
    ],
)
def test_the_http_api_reads_and_refuses_everything_else(method, path, refused):
    assert rasa_patches.refuses(method, path) is refused


def _api_request(app, method: str, name: str):
    route = next(route for route in app.router.routes if route.name == f"rasa_server.{name}")
    return type("Request", (), {"route": route, "method": method, "path": "/" + route.path})()


def _scope_middleware(app):
    return [m for m in app.request_middleware if getattr(m, "__name__", "") == "refuse_api_writes"]


def test_an_api_app_refuses_writes_with_403_naming_the_setting(unscoped_rasa_server):
    rasa_patches.scope_http_api(writes_allowed=False)
    app = unscoped_rasa_server.create_app(auth_token="t")
    [refuse] = _scope_middleware(app)
    answer = asyncio.run(refuse(_api_request(app, "PUT", "load_model")))
    assert answer.status == 403 and b"RASA_API_WRITES=on" in answer.body
    assert asyncio.run(refuse(_api_request(app, "GET", "retrieve_tracker"))) is None
    assert asyncio.run(refuse(_api_request(app, "POST", "parse"))) is None
    # A route added after the API (an input channel's) is not the API's to scope.
    channel = type("Request", (), {"route": type("Route", (), {"name": "x.webhook"})(), "method": "POST"})()
    assert asyncio.run(refuse(channel)) is None


def test_writes_turned_on_leave_the_api_as_shipped(unscoped_rasa_server):
    rasa_patches.scope_http_api(writes_allowed=True)
    try:
        assert _scope_middleware(unscoped_rasa_server.create_app(auth_token="t")) == []
    finally:
        rasa_patches.scope_http_api(writes_allowed=False)


def test_the_launcher_scopes_the_api_even_with_the_patches_off(
    unpatched_rasa, unscoped_rasa_server, monkeypatch
):
    from connectors import rasa_launcher

    monkeypatch.setenv("RASA_PATCHES", "off")
    monkeypatch.delenv("RASA_API_WRITES", raising=False)
    said = rasa_launcher.apply_patches()
    assert "Rasa's HTTP API reads only (RASA_API_WRITES=off)" in said
    assert rasa_patches.is_http_api_scoped()
    assert _scope_middleware(unscoped_rasa_server.create_app(auth_token="t"))


# --- 5. an unreachable action server fails the turn ---------------------------------------------


def run_remote_action(url: str, failure: Exception | None = None) -> tuple[DialogueStateTracker, object]:
    """Rasa's processor running one custom action against `url`; (tracker, the outcome)."""
    from rasa.core.channels.channel import CollectingOutputChannel
    from rasa.core.policies.policy import PolicyPrediction
    from rasa.core.processor import MessageProcessor
    from rasa.utils.endpoints import EndpointConfig

    processor = MessageProcessor.__new__(MessageProcessor)  # only what _run_action reads
    processor.domain = Domain.empty()
    tracker = DialogueStateTracker.from_events("+525512345678", [UserUttered("hola", message_id="SM1")])
    action = RemoteAction("action_order_status", EndpointConfig(url))
    prediction = PolicyPrediction([], "RulePolicy")

    async def run() -> object:
        try:
            return await processor._run_action(action, tracker, CollectingOutputChannel(), None, prediction)
        except Exception as error:  # noqa: BLE001 (the outcome is what the test looks at)
            return error

    return tracker, asyncio.run(run())


def test_an_unreachable_action_server_fails_the_turn_instead_of_going_on_without_it():
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]  # nothing listens there once the probe closes
    _, outcome = run_remote_action(f"http://127.0.0.1:{closed_port}/webhook")
    assert isinstance(outcome, rasa_patches.ActionServerUnavailable)
    assert rasa_patches._unreachable.get() is None  # nothing left over for the next turn


def test_only_an_outage_fails_the_turn_and_rasas_own_refusals_are_left_to_rasa():
    import aiohttp
    from rasa.shared.exceptions import RasaException

    def raised_from(cause: BaseException) -> RasaException:
        try:
            raise cause
        except BaseException:
            try:
                raise RasaException("Failed to execute custom action")  # as RemoteAction.run does
            except RasaException as error:
                return error

    info = aiohttp.RequestInfo(aiohttp.client.URL("http://actions/webhook"), "POST", {})
    assert rasa_patches.is_action_server_unreachable(raised_from(aiohttp.ServerDisconnectedError()))
    assert rasa_patches.is_action_server_unreachable(
        raised_from(aiohttp.ClientResponseError(info, (), status=502))
    )
    assert not rasa_patches.is_action_server_unreachable(
        raised_from(aiohttp.ClientResponseError(info, (), status=403))  # a wrong token: not an outage
    )
    assert not rasa_patches.is_action_server_unreachable(RasaException("no endpoint is configured"))


def test_the_channel_retries_an_action_server_outage_without_a_limit():
    from connectors.twilio_channel import is_outage

    assert is_outage(rasa_patches.ActionServerUnavailable("action_order_status: refused"))
    assert not is_outage(KeyError("a bug in the channel"))
