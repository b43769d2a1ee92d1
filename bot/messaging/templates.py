"""The approved WhatsApp templates, declared once in the file designers edit
(bot/whatsapp_templates.yml): what may be sent outside WhatsApp's 24-hour window, and which
template stands in for which message.

Every process that sends loads it at start-up (bot/wiring.py), and a wrong file stops the start
with a message naming the file and the key: an unknown template, variables that do not match the
template's text or the values its sender has, a quick reply WhatsApp would refuse. The
notification rules name their templates here too (bot/notifications/rules.py checks them).
"""

from __future__ import annotations

import logging
import re
import string
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from bot.deep_links import Flow
from bot.responses import domain_responses

logger = logging.getLogger(__name__)

DEFAULT_TEMPLATES = Path(__file__).resolve().parents[1] / "whatsapp_templates.yml"
CONTENT_SID = re.compile(r"^HX[0-9a-fA-F]{32}$")
PLACEHOLDER = re.compile(r"\{\{\s*(\d+)\s*\}\}")
MAX_QUICK_REPLIES = 3  # WhatsApp's limit for quick-reply buttons
MAX_QUICK_REPLY_TITLE = 20
MAX_QUICK_REPLY_ID = 200  # a Content API quick reply's id, variables filled in
# The shipped SIDs: "HX", 24 zeros, then a number. A real one is 32 random hex digits.
PLACEHOLDER_SID = re.compile(r"^HX0{24}[0-9a-fA-F]{8}$")
# What the senders that are not a domain response can fill a template with.
SENDER_VALUES: dict[str, frozenset[str]] = {
    # An agent's reply from the console: nothing (an agent's login is not for customers to see).
    "console_reply": frozenset(),
    # An agent moved a case's status (connectors/console/cases.py): its management ID.
    "case_update": frozenset({"management_id"}),
}


class TemplatesError(ValueError):
    """The templates file is wrong; the message names the file, the key and what to write."""


@dataclass(frozen=True)
class QuickReply:
    title: str
    payload: str  # its id as approved; for a reply that opens a flow, what fills the id without a link
    opens: Flow | None = None  # the flow whose signed link fills its id (approved as a variable)
    id_variable: str | None = None  # that variable's number ("5" for an id "{{5}}")


def link_value(flow: Flow) -> str:
    """The name under which a sender gives a template the signed link of `flow`'s reply."""
    return f"link:{flow.value}"


@dataclass(frozen=True)
class Template:
    name: str
    content_sid: str
    language: str
    text: str  # what the approved template says, {{1}}… for its variables (recorded, printed)
    variables: tuple[str, ...] = ()  # the names that fill {{1}}, {{2}}… in this order
    quick_replies: tuple[QuickReply, ...] = ()
    # True: the template says all the message it stands for says, so nothing is held back.
    complete: bool = False

    def content_variables(self, values: Mapping[str, str]) -> dict[str, str]:
        """ContentVariables for a send: {"1": …, "2": …} in the declared order, then the ids of
        the quick replies that open a flow: the signed link given as `link:<flow>`, else the
        reply's plain payload."""
        filled = {str(number): str(values.get(name, "")) for number, name in enumerate(self.variables, 1)}
        for reply in self.link_replies:
            link = str(values.get(link_value(reply.opens), "")) if reply.opens else ""
            if len(link) > MAX_QUICK_REPLY_ID:
                logger.warning(
                    "template %s: the link of %r is %d characters (at most %d): its plain payload stands in",
                    self.name, reply.title, len(link), MAX_QUICK_REPLY_ID,
                )  # fmt: skip
                link = ""
            filled[str(reply.id_variable)] = link or reply.payload
        return filled

    @property
    def link_replies(self) -> tuple[QuickReply, ...]:
        """The quick replies whose id is a variable filled with a flow's signed link."""
        return tuple(reply for reply in self.quick_replies if reply.opens is not None)

    def rendered(self, values: Mapping[str, str]) -> str:
        filled = self.content_variables(values)
        return PLACEHOLDER.sub(lambda match: filled.get(match.group(1), ""), self.text)


@dataclass(frozen=True)
class TemplateCatalog:
    templates: dict[str, Template]
    generic: str  # the fallback for anything without a template of its own
    uses: dict[str, str]  # what is sent (console_reply, a response name) -> its template's name
    where: str = "templates"

    def get(self, name: str) -> Template:
        return self.templates[name]

    @property
    def fallback(self) -> Template:
        return self.templates[self.generic]

    def placeholder_sids(self) -> list[tuple[str, str]]:
        """(name, content_sid) of each template whose SID is one of the shipped placeholders."""
        return [
            (name, template.content_sid)
            for name, template in sorted(self.templates.items())
            if PLACEHOLDER_SID.match(template.content_sid)
        ]

    def meant_for(self, purpose: str | None) -> str | None:
        """The template declared for `purpose` (a response name, console_reply), if any."""
        return self.uses.get(purpose) if purpose else None

    def require(self, name: str, where: str, values: set[str] | frozenset[str]) -> Template:
        """The template `name` for a sender that can fill `values`; TemplatesError naming `where`
        when it is not declared or needs a value that sender does not have."""
        if name not in self.templates:
            known = ", ".join(sorted(self.templates))
            raise TemplatesError(f"{where}: no template named {name!r} in {self.where} (known: {known})")
        template = self.templates[name]
        missing = [variable for variable in template.variables if variable not in values]
        if missing:
            raise TemplatesError(
                f"{where}: template {name!r} ({self.where}) needs {', '.join(missing)}, which this "
                f"sender does not have (it has: {', '.join(sorted(values)) or 'nothing'})"
            )
        return template


def load_templates(
    path: Path = DEFAULT_TEMPLATES, responses: Mapping[str, Any] | None = None
) -> TemplateCatalog:
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as error:
        raise TemplatesError(f"{path}: cannot read the WhatsApp templates: {error}") from None
    return parse_templates(raw, str(path), responses)


def parse_templates(
    raw: Any, where: str = "templates", responses: Mapping[str, Any] | None = None
) -> TemplateCatalog:
    if not isinstance(raw, dict) or not isinstance(raw.get("templates"), dict) or not raw["templates"]:
        raise TemplatesError(f"{where}: write `generic:`, `templates:` (one entry per template) and `uses:`")
    templates = {
        str(name): _template(str(name), spec, f"{where}: templates.{name}")
        for name, spec in raw["templates"].items()
    }
    generic = raw.get("generic")
    catalog = TemplateCatalog(templates, str(generic or ""), {}, where)
    if not generic:
        raise TemplatesError(f"{where}: generic: name the template sent when nothing has its own")
    catalog.require(str(generic), f"{where}: generic", frozenset())
    uses = raw.get("uses") or {}
    if not isinstance(uses, dict):
        raise TemplatesError(
            f"{where}: uses: a mapping of what is sent (console_reply, utter_…) to a template"
        )
    known = responses if responses is not None else domain_responses()
    for purpose, name in uses.items():
        catalog.require(str(name), f"{where}: uses.{purpose}", _values_of(str(purpose), known, where))
    for key, name in [("generic", str(generic)), *((f"uses.{p}", str(n)) for p, n in uses.items())]:
        if templates[name].link_replies:
            raise TemplatesError(
                f"{where}: {key}: template {name!r} has a quick reply that opens a flow; only a "
                "notification (a rule's whatsapp_template) has the signed link its id carries"
            )
    return TemplateCatalog(
        templates, str(generic), {str(key): str(value) for key, value in uses.items()}, where
    )


def _values_of(purpose: str, responses: Mapping[str, Any], where: str) -> frozenset[str]:
    """What the sender of `purpose` fills a template with: a domain response's placeholders (those
    in every variation, so whichever is picked, the sender has them), or a named sender's."""
    if purpose in SENDER_VALUES:
        return SENDER_VALUES[purpose]
    if purpose not in responses:
        raise TemplatesError(
            f"{where}: uses.{purpose}: neither a response in the domain nor one of {', '.join(SENDER_VALUES)}"
        )
    names = None
    for variation in responses[purpose] or []:
        text = variation.get("text") or "" if isinstance(variation, dict) else ""
        found = {name for _, name, _, _ in string.Formatter().parse(text) if name}
        names = found if names is None else names & found
    return frozenset(names or ())


def _template(name: str, spec: Any, where: str) -> Template:
    if not isinstance(spec, dict):
        raise TemplatesError(f"{where}: give content_sid, language, text, variables, quick_replies")
    sid = str(spec.get("content_sid") or "")
    if not CONTENT_SID.match(sid):
        raise TemplatesError(
            f"{where}.content_sid: the approved template's ContentSid (HX and 32 hex digits)"
        )
    language = spec.get("language")
    if not isinstance(language, str) or not re.match(r"^[a-z]{2}(_[A-Z]{2})?$", language):
        raise TemplatesError(f"{where}.language: the template's language code, e.g. es or es_MX")
    text = spec.get("text")
    if not isinstance(text, str) or not text.strip():
        raise TemplatesError(
            f"{where}.text: what the approved template says, {{{{1}}}} for its first variable"
        )
    variables = spec.get("variables") or []
    if not isinstance(variables, list) or not all(isinstance(item, str) and item for item in variables):
        raise TemplatesError(f"{where}.variables: a list of names, in the order of {{{{1}}}}, {{{{2}}}}…")
    if len(set(variables)) != len(variables):
        raise TemplatesError(f"{where}.variables: a name is listed twice")
    used = sorted({int(number) for number in PLACEHOLDER.findall(text)})
    if used != list(range(1, len(variables) + 1)):
        raise TemplatesError(
            f"{where}.variables: the text uses {', '.join(f'{{{{{n}}}}}' for n in used) or 'no variable'} "
            f"but {len(variables)} variable(s) are listed ({', '.join(variables) or 'none'}): they must match"
        )
    replies = []
    for index, reply in enumerate(spec.get("quick_replies") or []):
        here = f"{where}.quick_replies[{index}]"
        if not isinstance(reply, dict) or not reply.get("title") or not reply.get("payload"):
            raise TemplatesError(f"{here}: give title and payload")
        if len(str(reply["title"])) > MAX_QUICK_REPLY_TITLE:
            raise TemplatesError(f"{here}.title: at most {MAX_QUICK_REPLY_TITLE} characters")
        opens, id_variable = _link_of(
            reply, len(variables) + 1 + sum(r.opens is not None for r in replies), here
        )
        replies.append(QuickReply(str(reply["title"]), str(reply["payload"]), opens, id_variable))
    if len(replies) > MAX_QUICK_REPLIES:
        raise TemplatesError(f"{where}.quick_replies: at most {MAX_QUICK_REPLIES} (WhatsApp's limit)")
    return Template(
        name=name,
        content_sid=sid,
        language=language,
        text=text.strip(),
        variables=tuple(variables),
        quick_replies=tuple(replies),
        complete=bool(spec.get("complete", False)),
    )


def _link_of(reply: dict, number: int, where: str) -> tuple[Flow | None, str | None]:
    """(flow, id variable) of a quick reply that opens a flow: approved with the id "{{number}}",
    the next number after the text's variables and the replies before it that open one."""
    if not reply.get("opens"):
        if "id" in reply:
            raise TemplatesError(f"{where}.id: only a reply that opens a flow has a variable id (opens:)")
        return None, None
    try:
        flow = Flow(str(reply["opens"]))
    except ValueError:
        raise TemplatesError(f"{where}.opens: one of {', '.join(flow.value for flow in Flow)}") from None
    wanted = f"{{{{{number}}}}}"
    if str(reply.get("id", "")).replace(" ", "") != wanted:
        raise TemplatesError(
            f'{where}.id: a reply that opens {flow.value} is approved with the id "{wanted}" (the next '
            "variable after the text's); write it here as approved"
        )
    return flow, str(number)


def check_content_sids(catalog: TemplateCatalog, *, production: bool, sends_to_twilio: bool) -> None:
    """Start-up: the shipped placeholder SIDs cannot go to Twilio in production (every message
    outside the window would fail); in development, or without a Twilio account (the local outbox
    prints them), they are only named in the log."""
    placeholders = catalog.placeholder_sids()
    if not placeholders:
        return
    listed = ", ".join(f"templates.{name}.content_sid ({sid})" for name, sid in placeholders)
    advice = (
        "create each template in your Twilio account (Console > Messaging > Content Template Builder, "
        "same text, variables and quick replies), submit it for WhatsApp approval, and paste its "
        "ContentSid (HX…) there; docs/notifications.md, 'Creating the templates', says how"
    )
    if production and sends_to_twilio:
        raise TemplatesError(
            f"{catalog.where}: placeholder SIDs, not your account's: {listed}. To go live, {advice}."
        )
    logger.warning("%s: placeholder SIDs (fine in development): %s", catalog.where, listed)
