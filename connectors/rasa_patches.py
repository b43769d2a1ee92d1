"""Rasa 3.6's repeated computations done once, the loaded model kept out of the garbage
collector's full passes, and a turn failed when the action server is down: patches of Rasa
internals, applied once when the Rasa process starts (`connectors/rasa_launcher.py`, which
`make run`, `make shell` and `make bench` start instead of the bare `rasa` command). And one
patch that is not about speed: Rasa's HTTP API scoped to reads (`scope_http_api`, at the end),
applied by the launcher whatever RASA_PATCHES says and on any Rasa version, since turning it off
would open the server rather than slow it.

`make bench` profiled the Rasa process holding the GIL (py-spy --gil) while 20 customers wrote:
- 22% of it validated each action server answer with `jsonschema.validate`, which checks the
  schema itself against the JSON Schema meta-schema on every call before checking the answer;
- 8% rebuilt the dialogue states of the whole conversation, which each policy asks for
  separately (Memoization, Rule several times, TED) on every prediction, replaying every
  event of the session each time;
- 3% recomputed, on every graph run, which nodes the run needs (a recursive walk that visits
  shared dependencies again and again).
The fourth patch releases the model that `warm_up_and_freeze` froze when another replaces it.
The fifth is not about speed: when the action server cannot be reached (refused, reset, a 5xx,
a timeout: a kill -9 and restart), Rasa 3.6 logs the exception and goes on without the action's
events, so the customer gets no answer and the turn is saved as if it were complete. Patched,
such a turn raises `ActionServerUnavailable` instead, before the processor's only save point of
the turn (`handle_message` saves at its end): the tracker is left as it was, and the Twilio
channel retries the message from its journal after a backoff.
The sixth is about memory: Rasa builds a loaded TensorFlow model (DIET, ResponseSelector, TED)
by training it one step on an example, which creates the optimizer's state (Adam's two moments:
twice the weights, 160 MB for this model) and traces the training graph, then restores the
weights and the optimizer's moments over them; a server only predicts. Patched, a model is
built by its first prediction instead, after its weights are restored (restored as each
variable is created): the same weights, so the same predictions (tests/unit/test_rasa_patches.py),
without the optimizer, the training graph or the peak of that training step. Fine-tuning
(`rasa train --finetune`, never through this launcher) keeps Rasa's way.

Each patch computes exactly what Rasa computes, keyed on everything the result depends on, so
predictions, validation errors and events are unchanged (tests/unit/test_rasa_patches.py compares
them with Rasa's own functions). They replace Rasa's functions by name and `_add_turn` repeats
the loop body of `Domain.states_for_tracker_history`, so they are written for one Rasa minor
version (`WRITTEN_FOR`): on another, `apply()` logs a warning and patches nothing, and the
assistant runs on Rasa as shipped, only slower. `RASA_PATCHES=off` does the same on purpose
(to tell whether a problem comes from them). When upgrading Rasa, re-read the four functions,
run the equivalence test, then move `WRITTEN_FOR`.
"""

from __future__ import annotations

import contextvars
import functools
import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

WRITTEN_FOR = (3, 6)  # the Rasa minor version whose internals these patches replace

logger = logging.getLogger(__name__)
_applied = False
_DOMAIN_STATES: Any = None  # Rasa's Domain.states_for_tracker_history, which part 2 replays
_apply_lock = threading.Lock()


def is_applied() -> bool:
    return _applied


def apply(enabled: bool = True) -> bool:
    """Patch Rasa, once per process; whether the patches are in place afterwards.

    `enabled` is the RASA_PATCHES setting. On a Rasa other than `WRITTEN_FOR` nothing is
    patched: a replaced function that no longer matches Rasa's would change predictions.
    Calling it again does nothing (the functions are not wrapped twice).
    """
    global _applied, _DOMAIN_STATES
    with _apply_lock:
        if _applied:
            return True
        if not enabled:
            logger.info("RASA_PATCHES=off: Rasa runs as shipped")
            return False
        import rasa

        if not is_written_for(rasa.__version__):
            logger.warning(
                "Rasa %s is not the Rasa %s the patches in connectors/rasa_patches.py were written "
                "for: they are skipped and Rasa runs as shipped (slower). Check them against this "
                "version (tests/unit/test_rasa_patches.py) and update WRITTEN_FOR.",
                rasa.__version__,
                ".".join(map(str, WRITTEN_FOR)) + ".x",
            )
            return False
        from rasa.shared.core.domain import Domain

        _validate_action_results_with_a_compiled_schema()
        _DOMAIN_STATES = Domain.states_for_tracker_history
        _remember_past_states_per_tracker()
        _remember_minimal_graph_schemas()
        _unfreeze_when_a_model_is_replaced()
        _fail_the_turn_when_the_action_server_is_unreachable()
        _load_models_for_prediction_only()
        _applied = True
        logger.info("Rasa %s patched: %s", rasa.__version__, ", ".join(PATCHED))
        return True


def is_written_for(version: str) -> bool:
    """Whether `version` (like "3.6.21") is the minor version the patches were written for."""
    parts = version.split(".")
    try:
        return tuple(int(part) for part in parts[:2]) == WRITTEN_FOR
    except ValueError:  # a version we cannot read is not the one we know
        return False


# What apply() replaces, as "module:Class.function": tests check that nothing else is touched.
PATCHED = (
    "rasa.core.actions.action:RemoteAction._validate_action_result",
    "rasa.shared.core.trackers:DialogueStateTracker.past_states",
    "rasa.engine.graph:GraphSchema.minimal_graph_schema",
    "rasa.core.agent:Agent.load_model",
    "rasa.core.actions.action:RemoteAction.run",
    "rasa.core.processor:MessageProcessor._run_action",
    "rasa.utils.tensorflow.models:RasaModel.load",
)


# --- 1. action server answers ---------------------------------------------------------------


def _validate_action_results_with_a_compiled_schema() -> None:
    from jsonschema import ValidationError
    from jsonschema.exceptions import best_match
    from jsonschema.validators import validator_for
    from rasa.core.actions.action import RemoteAction
    from rasa.shared.constants import DOCS_BASE_URL

    schema = RemoteAction.action_response_format_spec()
    validator_class = validator_for(schema)
    validator_class.check_schema(schema)  # what jsonschema.validate does on every call
    validator = validator_class(schema)

    @functools.wraps(RemoteAction._validate_action_result)
    def _validate_action_result(self: RemoteAction, result: dict[str, Any]) -> bool:
        # jsonschema.validate raises the best match among all errors; so does this.
        error = best_match(validator.iter_errors(result))
        if error is None:
            return True
        if not isinstance(error, ValidationError):  # pragma: no cover (jsonschema's own type)
            raise error
        error.message += (
            ". Failed to validate Action server response from API, "
            "make sure your response from the Action endpoint is valid. "
            f"For more information about the format visit {DOCS_BASE_URL}/custom-actions"
        )
        raise error

    RemoteAction._validate_action_result = _validate_action_result


# --- 2. dialogue states of a tracker ----------------------------------------------------------
#
# `Domain.states_for_tracker_history` replays the whole conversation from its first event to
# compute one state per turn, for every policy, on every prediction. Two levels of memory:
# - on each tracker (trackers compare by value, so they cannot key a dictionary): the states
#   already computed for its current events, by arguments, so the policies of one prediction
#   asking with the same arguments get them at once;
# - per conversation and arguments (`_Histories`): the replayed tracker and the states of the
#   turns so far, so a prediction replays only the events added since the previous one.
# A tracker only grows (events are appended, never edited): its event count and last event
# identify its content. What a conversation's history holds is reused only when the tracker's
# applied events start with exactly the events it replayed (the same objects, or events equal
# in every serialised field); anything else (a rewind, a restart, another model) replays anew.

_STATES_ATTRIBUTE = "_tuning_past_states"
_states_lock = threading.Lock()


def _copy_states(states: list[dict]) -> list[dict]:
    """States are {part: {feature: str | tuple}}; the featurizers delete keys from them."""
    return [{part: dict(features) for part, features in state.items()} for state in states]


def _same_event(replayed: Any, current: Any) -> bool:
    if replayed is current:
        return True
    if type(replayed) is not type(current):
        return False
    try:
        return replayed.as_dict() == current.as_dict()
    except Exception:  # noqa: BLE001 (an event that cannot serialise is not known to be equal)
        return False


@dataclass
class _History:
    domain: Any
    applied: list  # the applied events replayed into `replay`
    replay: Any  # a DialogueStateTracker after those events
    states: list  # one state per ActionExecuted among them (as Rasa computes it)
    last_ml_action_sub_state: Any = None
    turn_was_hidden: bool = False


class _Histories:
    """Per conversation and arguments: where the replay of its states stopped."""

    # About 250 conversations with the policies' four sets of arguments: the ones being written
    # in right now. An entry holds a state per turn of the session (about 1 kB each), so this
    # stays in the tens of megabytes; a conversation that falls out is replayed in full once.
    MAX_ENTRIES = 1000

    def __init__(self) -> None:
        self._entries: OrderedDict[tuple, _History] = OrderedDict()
        self._lock = threading.Lock()

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def states(
        self,
        tracker: Any,
        domain: Any,
        omit_unset_slots: bool,
        ignore_rule_only_turns: bool,
        rule_only_data: dict[str, Any] | None,
    ) -> list[dict]:
        from rasa.shared.core.events import ActionExecuted

        key = (
            tracker.sender_id,
            tracker.is_rule_tracker,
            tracker._max_event_history,
            id(domain),
            omit_unset_slots,
            ignore_rule_only_turns,
            repr(sorted((rule_only_data or {}).items())),
        )
        applied = tracker.applied_events()
        with self._lock:
            history = self._entries.pop(key, None)
        if (
            history is None
            or history.domain is not domain
            or len(history.applied) > len(applied)
            or not all(map(_same_event, history.applied, applied))
        ):
            history = _History(domain, [], tracker.init_copy(), [])
        arguments = (domain, omit_unset_slots, ignore_rule_only_turns, rule_only_data)
        for event in applied[len(history.applied) :]:
            if isinstance(event, ActionExecuted):
                _add_turn(history, history.replay, event.hide_rule_turn, *arguments)
            history.replay.update(event)
        history.applied = applied
        # The state after the last event: computed for this call only, the next event may
        # not be an ActionExecuted.
        final = _History(
            domain, [], None, list(history.states), history.last_ml_action_sub_state, history.turn_was_hidden
        )
        _add_turn(final, history.replay, False, *arguments)
        with self._lock:
            self._entries[key] = history
            while len(self._entries) > self.MAX_ENTRIES:
                self._entries.popitem(last=False)
        return _copy_states(final.states)


def _add_turn(
    history: _History,
    tr: Any,
    hide_rule_turn: bool,
    domain: Any,
    omit_unset_slots: bool,
    ignore_rule_only_turns: bool,
    rule_only_data: dict[str, Any] | None,
) -> None:
    """One pass of the loop in Rasa 3.6's `Domain.states_for_tracker_history`, unchanged."""
    from rasa.shared.core.constants import PREVIOUS_ACTION

    states = history.states
    if ignore_rule_only_turns:
        if not history.turn_was_hidden:
            history.last_ml_action_sub_state = domain._get_prev_action_sub_state(tr)
        if not tr.followup_action and tr.latest_action_name != tr.active_loop_name:
            history.turn_was_hidden = hide_rule_turn
        if history.turn_was_hidden:
            return
    state = domain.get_active_state(tr, omit_unset_slots=omit_unset_slots)
    if ignore_rule_only_turns:
        domain._remove_rule_only_features(state, rule_only_data)
        if states:
            domain._substitute_rule_only_user_input(state, states[-1])
        if history.last_ml_action_sub_state:
            state[PREVIOUS_ACTION] = history.last_ml_action_sub_state
    states.append(domain._clean_state(state))


_histories = _Histories()


def _remember_past_states_per_tracker() -> None:
    from rasa.shared.core.trackers import DialogueStateTracker

    original = DialogueStateTracker.past_states

    @functools.wraps(original)
    def past_states(
        self: DialogueStateTracker,
        domain: Any,
        omit_unset_slots: bool = False,
        ignore_rule_only_turns: bool = False,
        rule_only_data: dict[str, Any] | None = None,
    ) -> list[dict]:
        if type(self) is not DialogueStateTracker or type(domain).states_for_tracker_history is not (
            _DOMAIN_STATES
        ):
            # Training's trackers cache their own states; a custom domain computes its own.
            return original(self, domain, omit_unset_slots, ignore_rule_only_turns, rule_only_data)
        events = self.events
        version = (len(events), id(events[-1]) if events else None)
        arguments = (
            id(domain),
            omit_unset_slots,
            ignore_rule_only_turns,
            repr(sorted((rule_only_data or {}).items())),
        )
        with _states_lock:
            known = self.__dict__.get(_STATES_ATTRIBUTE)
            if known is not None and known[0] == version and arguments in known[1]:
                return _copy_states(known[1][arguments])
        states = _histories.states(self, domain, omit_unset_slots, ignore_rule_only_turns, rule_only_data)
        with _states_lock:
            known = self.__dict__.get(_STATES_ATTRIBUTE)
            if known is None or known[0] != version:
                known = (version, {})
                self.__dict__[_STATES_ATTRIBUTE] = known
            known[1][arguments] = _copy_states(states)
        return states

    DialogueStateTracker.past_states = past_states


# --- 3. the nodes a graph run needs -----------------------------------------------------------


def _remember_minimal_graph_schemas() -> None:
    from rasa.engine.graph import GraphSchema

    original = GraphSchema.minimal_graph_schema
    lock = threading.Lock()

    @functools.wraps(original)
    def minimal_graph_schema(self: GraphSchema, targets: list[str] | None = None) -> GraphSchema:
        # A loaded model's schema is never changed; its minimal schemas are kept on it.
        key = tuple(targets) if targets else None
        with lock:
            per_schema = self.__dict__.setdefault("_tuning_minimal_schemas", {})
            if key in per_schema:
                return per_schema[key]
        schema = original(self, targets)
        with lock:
            per_schema[key] = schema
        return schema

    GraphSchema.minimal_graph_schema = minimal_graph_schema


# --- 4. the garbage collector's full passes -----------------------------------------------------


async def warm_up_and_freeze(agent: Any) -> None:
    """Run the model once, then exempt everything loaded so far from the garbage collector.

    A loaded model is millions of long-lived Python objects. Python's full collections walk
    all of them: `make bench` saw 200–450 ms pauses of the whole process, every such pause
    delaying every conversation in flight. `gc.freeze()` moves the objects alive now (model,
    TensorFlow's traced functions, caches) out of the collector's sight; it still collects
    everything created afterwards. The warm-up parse and prediction trace TensorFlow's
    functions before the first customer's message instead of during it.

    The freeze needs the fourth patch (a replaced model would otherwise stay frozen in memory
    for good): without the patches (RASA_PATCHES=off, another Rasa) the model is only warmed up.
    """
    import gc

    from rasa.shared.core.events import ActionExecuted, SessionStarted, UserUttered
    from rasa.shared.core.trackers import DialogueStateTracker

    if agent is not None and agent.is_ready():
        try:
            parse_data = await agent.parse_message("hola")
            tracker = DialogueStateTracker.from_events(
                "warm-up",
                [
                    ActionExecuted("action_session_start"),
                    SessionStarted(),
                    ActionExecuted("action_listen"),
                    UserUttered("hola", parse_data.get("intent"), parse_data.get("entities"), parse_data),
                ],
                agent.domain.slots,
            )
            agent.predict_next_with_tracker(tracker)  # not stored: nothing reaches the tracker store
        except Exception:  # noqa: BLE001 (a warm-up failing must not stop the server)
            logger.exception("model warm-up failed; the first message will be slower")
    if not _applied:
        logger.info("model warmed up; not frozen out of garbage collection (Rasa patches not applied)")
        return
    gc.collect()
    gc.freeze()
    logger.info("model warmed up; %d objects exempt from garbage collection", gc.get_freeze_count())


def _unfreeze_when_a_model_is_replaced() -> None:
    """A model loaded while the server runs (PUT /model, a model server) replaces the frozen
    one, which would stay in memory for good: unfreeze first, so the old model can be freed.
    Full collections walk the new model until the next restart freezes it again."""
    import gc

    from rasa.core.agent import Agent

    original = Agent.load_model

    @functools.wraps(original)
    def load_model(self: Agent, *args: Any, **kwargs: Any) -> None:
        if gc.get_freeze_count():
            gc.unfreeze()
            logger.info(
                "a new model replaces the running one: the old one is released from gc.freeze() "
                "(restart the server to freeze the new one)"
            )
        original(self, *args, **kwargs)

    Agent.load_model = load_model


# --- 5. an unreachable action server fails the turn ---------------------------------------------


class ActionServerUnavailable(Exception):
    """A custom action could not be run because the action server could not be reached; the
    message is to be handled again later, not answered without the action."""


_unreachable: contextvars.ContextVar[ActionServerUnavailable | None] = contextvars.ContextVar(
    "action_server_unreachable", default=None
)


def is_action_server_unreachable(error: BaseException) -> bool:
    """Whether RemoteAction.run failed because the server was down, restarting or overwhelmed
    (connection refused or reset, a 5xx, a timeout), not because it refused the request."""
    import asyncio

    import aiohttp

    cause = error.__cause__ or error.__context__ or error
    if isinstance(cause, aiohttp.ClientResponseError):
        return cause.status >= 500
    return isinstance(
        cause, (aiohttp.ClientConnectionError, aiohttp.ClientError, asyncio.TimeoutError, OSError)
    )


def _fail_the_turn_when_the_action_server_is_unreachable() -> None:
    from rasa.core.actions.action import RemoteAction
    from rasa.core.processor import MessageProcessor

    original_run = RemoteAction.run
    original_run_action = MessageProcessor._run_action

    @functools.wraps(original_run)
    async def run(self: RemoteAction, *args: Any, **kwargs: Any) -> Any:
        try:
            return await original_run(self, *args, **kwargs)
        except Exception as error:
            # Rasa's _run_action catches every exception: the failure is noted for the wrapper
            # below (same task, same context), which raises it once Rasa's code returns.
            if is_action_server_unreachable(error):
                _unreachable.set(ActionServerUnavailable(f"action {self.name()}: {error}"))
            raise

    @functools.wraps(original_run_action)
    async def _run_action(self: MessageProcessor, *args: Any, **kwargs: Any) -> bool:
        token = _unreachable.set(None)
        try:
            result = await original_run_action(self, *args, **kwargs)
            failure = _unreachable.get()
        finally:
            _unreachable.reset(token)
        if failure is not None:
            raise failure
        return result

    RemoteAction.run = run
    MessageProcessor._run_action = _run_action


# --- 6. models loaded for prediction only ------------------------------------------------------


def _load_models_for_prediction_only() -> None:
    from rasa.utils.tensorflow.constants import RUN_EAGERLY
    from rasa.utils.tensorflow.models import RasaModel

    original = vars(RasaModel)["load"]  # the classmethod

    @functools.wraps(original.__func__)
    def load(
        cls: type,
        model_file_name: str,
        model_data_example: Any,
        predict_data_example: Any = None,
        finetune_mode: bool = False,
        *args: Any,
        **kwargs: Any,
    ) -> Any:
        if finetune_mode or predict_data_example is None:
            return original.__func__(
                cls, model_file_name, model_data_example, predict_data_example, finetune_mode, *args, **kwargs
            )
        model = cls(*args, **kwargs)
        if kwargs.get("config", {}).get(RUN_EAGERLY):
            model.run_eagerly = True
        # Restored now into the layers that exist, and into each variable as the first
        # prediction creates it; the optimizer's moments in the file have nothing to go to.
        status = model.load_weights(model_file_name)
        if status is not None:
            status.expect_partial()
        model.run_inference(predict_data_example)
        return model

    load.__wrapped__ = original  # Rasa's own classmethod, for the tests to put back
    RasaModel.load = classmethod(load)


# --- 7. Rasa's HTTP API, scoped to reads ------------------------------------------------------
#
# `rasa run --enable-api` puts the whole HTTP API on the server's port behind one token: replace
# the model (PUT /model), train, write any event into any conversation (a SlotSet forging a
# verified identity), run actions or intents. The assistant needs none of that from outside: the
# console writes through its own route (connectors/console_bridge.py). So unless an operator
# sets RASA_API_WRITES=on, every route of Rasa's API but its reads is refused with 403 before
# its handler (and its token check) runs. Reads: every GET (/, /version, /status, a tracker, a
# story, the domain) and POST /model/parse. Input channels (/webhooks/...) are not API routes:
# they are registered after the API and keep their own checks.

SCOPE_PATCHED = ("rasa.server:create_app",)  # replaced by scope_http_api, whatever RASA_PATCHES says
WRITES_SETTING = "RASA_API_WRITES"
_READING_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_READING_POSTS = frozenset({"model/parse"})  # a POST that only reads: NLU on a text
_api_writes = False


def is_http_api_scoped() -> bool:
    import rasa.server

    return hasattr(rasa.server.create_app, "_scoped_http_api")


def refuses(method: str, path: str) -> bool:
    """Whether a request to Rasa's API route `path` (as Sanic names it: "model", "conversations/
    <conversation_id:path>/tracker/events") is refused while writes are off."""
    if method.upper() in _READING_METHODS:
        return False
    return not (method.upper() == "POST" and path in _READING_POSTS)


def scope_http_api(writes_allowed: bool = False) -> None:
    """Make every Rasa HTTP API app built from now on refuse writes unless `writes_allowed`
    (RASA_API_WRITES). Calling it again changes the setting, never wraps twice."""
    global _api_writes
    import rasa.server

    with _apply_lock:
        _api_writes = writes_allowed
        if is_http_api_scoped():
            return
        original = rasa.server.create_app

        @functools.wraps(original)
        def create_app(*args: Any, **kwargs: Any) -> Any:
            app = original(*args, **kwargs)
            _refuse_writes(app)
            return app

        create_app._scoped_http_api = True
        rasa.server.create_app = create_app


def _refuse_writes(app: Any) -> None:
    from sanic import response

    # The API's own routes, named now, before any channel's blueprint is added.
    api_routes = {route.name for route in app.router.routes}
    if _api_writes:
        logger.warning(
            "%s=on: Rasa's HTTP API may replace the model and write into conversations "
            "(anyone holding RASA_TOKEN can forge a conversation's slots)",
            WRITES_SETTING,
        )
        return
    logger.info("Rasa's HTTP API reads only (%s=off): model and conversation writes get 403", WRITES_SETTING)

    @app.middleware("request")
    async def refuse_api_writes(request: Any) -> Any:
        route = getattr(request, "route", None)
        if route is None or route.name not in api_routes or not refuses(request.method, route.path):
            return None
        return response.json(
            {
                "error": (
                    f"forbidden: Rasa's HTTP API only reads here; {request.method} {request.path} "
                    f"is refused. An operator turns model and conversation writes on with "
                    f"{WRITES_SETTING}=on (README, Security)."
                ),
                "setting": WRITES_SETTING,
            },
            status=403,
        )
