"""The notification rules designers edit (bot/notifications.yml): per kind of event, the text,
the WhatsApp template (by its name in bot/whatsapp_templates.yml), quiet hours, the daily cap and
how long the news stays worth sending."""

from __future__ import annotations

import re
import string
from dataclasses import dataclass
from datetime import date, time, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import yaml
from babel.dates import format_date

from bot.choices import numbered_options
from bot.consents.topics import Topics, TopicsError, parse_topics
from bot.deep_links import TARGET_VARIABLE, Flow
from bot.messaging.inbound import Channel
from bot.messaging.templates import TemplateCatalog, TemplatesError, link_value
from bot.money import format_money
from bot.notifications.events import EventKind

DEFAULT_RULES = Path(__file__).resolve().parents[1] / "notifications.yml"
MAX_QUICK_REPLIES = 3  # WhatsApp's limit for quick-reply buttons
MAX_QUICK_REPLY_TITLE = 20


class RulesError(ValueError):
    """The rules file is wrong; the message names the place and what to write instead."""


@dataclass(frozen=True)
class QuietHours:
    """A daily span of local time when nothing is sent; it may cross midnight (21:00–08:00)."""

    start: time
    end: time

    def contains(self, local: time) -> bool:
        if self.start == self.end:
            return False
        if self.start < self.end:
            return self.start <= local < self.end
        return local >= self.start or local < self.end


@dataclass(frozen=True)
class QuickReply:
    title: str
    payload: str
    # A flow the reply opens at the right step through a signed, expiring link (bot/deep_links.py):
    # the payload is then that link's, and `payload` stands when no link can be signed.
    opens: Flow | None = None


@dataclass(frozen=True)
class Rule:
    kind: EventKind
    text: str  # str.format template over the event's variables (and customer_name)
    enabled: bool = True
    # The approved template sent outside the WhatsApp window, by its name in
    # bot/whatsapp_templates.yml (None: the generic one, and the text is held until they write).
    whatsapp_template: str | None = None
    quick_replies: tuple[QuickReply, ...] = ()
    quiet_hours: QuietHours | None = None
    max_per_customer_per_day: int | None = None
    expires_after: timedelta | None = None  # older news is skipped, not sent late
    channel: Channel = Channel.WHATSAPP  # when the event names none and the customer never wrote
    # What the customer consents to (bot/notifications.yml `topics:`): a customer who said no to
    # it on a channel does not get it there. None only in a file that declares no topics.
    topic: str | None = None

    @property
    def variables(self) -> set[str]:
        return {name for _, name, _, _ in string.Formatter().parse(self.text) if name}


@dataclass(frozen=True)
class NotificationRules:
    rules: dict[EventKind, Rule]
    topics: Topics = Topics()

    def rule_for(self, kind: EventKind) -> Rule | None:
        return self.rules.get(kind)


def load_rules(path: Path = DEFAULT_RULES) -> NotificationRules:
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as error:
        raise RulesError(f"{path}: cannot read the notification rules: {error}") from None
    return parse_rules(raw, str(path))


def parse_rules(raw: Any, where: str = "rules") -> NotificationRules:
    if not isinstance(raw, dict) or not isinstance(raw.get("kinds"), dict):
        raise RulesError(f"{where}: write `defaults:` and `kinds:` (one entry per kind of event)")
    defaults = raw.get("defaults") or {}
    try:
        topics = parse_topics(raw.get("topics"), f"{where}: topics")
    except TopicsError as error:
        raise RulesError(str(error)) from None
    rules = {}
    for name, spec in raw["kinds"].items():
        try:
            kind = EventKind(name)
        except ValueError:
            known = ", ".join(kind.value for kind in EventKind)
            raise RulesError(f"{where}: kinds.{name} is not a kind of event ({known})") from None
        rule = _rule(kind, {**defaults, **(spec or {})}, f"{where}: kinds.{name}")
        if topics.topics and rule.topic not in topics.ids:
            raise RulesError(
                f"{where}: kinds.{name}.topic: name the topic it belongs to, one of {', '.join(topics.ids)} "
                "(a customer who said no to that topic does not get it)"
            )
        if rule.topic and not topics.topics:
            raise RulesError(f"{where}: kinds.{name}.topic: declare the topic {rule.topic} under topics:")
        rules[kind] = rule
    return NotificationRules(rules, topics)


def _rule(kind: EventKind, spec: dict, where: str) -> Rule:
    for old in ("whatsapp_content_sid", "template_variables"):
        if old in spec:
            raise RulesError(
                f"{where}.{old}: templates are declared once in bot/whatsapp_templates.yml (SID, "
                "variables, quick replies); name one here with whatsapp_template: <name>"
            )
    text = spec.get("text")
    if not isinstance(text, str) or not text.strip():
        raise RulesError(f"{where}.text: the message in Spanish, with {{variables}} in braces")
    try:
        list(string.Formatter().parse(text))
    except ValueError as error:
        raise RulesError(f"{where}.text: {error} (write a literal brace as {{{{ or }}}})") from None
    replies = []
    for index, reply in enumerate(spec.get("quick_replies") or []):
        if not isinstance(reply, dict) or not reply.get("title") or not reply.get("payload"):
            raise RulesError(f"{where}.quick_replies[{index}]: give title and payload")
        if len(str(reply["title"])) > MAX_QUICK_REPLY_TITLE:
            raise RulesError(
                f"{where}.quick_replies[{index}].title: at most {MAX_QUICK_REPLY_TITLE} characters"
            )
        opens = None
        if reply.get("opens"):
            try:
                opens = Flow(str(reply["opens"]))
            except ValueError:
                known = ", ".join(flow.value for flow in Flow)
                raise RulesError(f"{where}.quick_replies[{index}].opens: one of {known}") from None
            needed = TARGET_VARIABLE[opens]
            if needed not in {name for _, name, _, _ in string.Formatter().parse(text) if name}:
                raise RulesError(
                    f"{where}.quick_replies[{index}].opens: {opens.value} needs the event's "
                    f"{{{needed}}} in the text"
                )
        replies.append(QuickReply(str(reply["title"]), str(reply["payload"]), opens))
    if len(replies) > MAX_QUICK_REPLIES:
        raise RulesError(f"{where}.quick_replies: at most {MAX_QUICK_REPLIES} (WhatsApp's limit)")
    cap = spec.get("max_per_customer_per_day")
    if cap is not None and (not isinstance(cap, int) or isinstance(cap, bool) or cap < 1):
        raise RulesError(f"{where}.max_per_customer_per_day: a whole number from 1 (leave it out for no cap)")
    hours = spec.get("expires_after_hours")
    if hours is not None and (not isinstance(hours, int | float) or hours <= 0):
        raise RulesError(f"{where}.expires_after_hours: a positive number of hours")
    try:
        channel = Channel(spec.get("channel") or "whatsapp")
    except ValueError:
        raise RulesError(f"{where}.channel: whatsapp or sms") from None
    return Rule(
        kind=kind,
        text=text.strip(),
        enabled=bool(spec.get("enabled", True)),
        whatsapp_template=str(spec["whatsapp_template"]) if spec.get("whatsapp_template") else None,
        quick_replies=tuple(replies),
        quiet_hours=_quiet_hours(spec.get("quiet_hours"), f"{where}.quiet_hours"),
        max_per_customer_per_day=cap,
        expires_after=timedelta(hours=hours) if hours else None,
        channel=channel,
        topic=str(spec["topic"]) if spec.get("topic") else None,
    )


def _quiet_hours(spec: Any, where: str) -> QuietHours | None:
    if spec in (None, False, "none"):
        return None
    if not isinstance(spec, dict) or "start" not in spec or "end" not in spec:
        raise RulesError(f'{where}: write {{start: "21:00", end: "08:00"}} (local time), or none')
    try:
        return QuietHours(time.fromisoformat(str(spec["start"])), time.fromisoformat(str(spec["end"])))
    except ValueError:
        raise RulesError(f'{where}: times like "21:00"') from None


def missing_variables(rule: Rule, variables: dict[str, str]) -> set[str]:
    """The rule's text variables the event does not give (customer_name is the assistant's)."""
    return rule.variables - set(variables) - {"customer_name"}


def render_text(
    rule: Rule, variables: dict[str, str], country: str | None = None, *, numbered: bool = True
) -> str:
    """The message: the rule's text with the event's variables (dates and amounts in Spanish),
    then its quick replies as numbered lines (`numbered=False`: the caller sends them as the
    message's options, WhatsApp buttons or the same numbered lines on SMS)."""
    values = {name: _display(name, value, variables, country) for name, value in variables.items()}
    values.setdefault("customer_name", "")
    text = rule.text.format_map(values)
    if not values["customer_name"]:  # not a customer: "¡Hola {customer_name}!" reads "¡Hola!"
        text = re.sub(r" +(?=[!,.?])", "", text)
    if rule.quick_replies and numbered:
        text = numbered_options(text, [reply.title for reply in rule.quick_replies])
    return text


def template_values(
    variables: dict[str, str], country: str | None = None, links: dict[Flow, str] | None = None
) -> dict[str, str]:
    """The event's variables as the text shows them (dates and amounts in Spanish), by name, and
    the signed link of each reply that opens a flow (`link:<flow>`): what fills the rule's
    WhatsApp template (bot/messaging/templates.py numbers them)."""
    values = {name: _display(name, value, variables, country) for name, value in variables.items()}
    return {**values, **{link_value(flow): payload for flow, payload in (links or {}).items()}}


def check_templates(rules: NotificationRules, templates: TemplateCatalog, where: str = "rules") -> None:
    """Start-up check: every rule's template is declared, and needs only what the rule's events
    give (the variables its text uses, and customer_name). TemplatesError names the key."""
    for kind, rule in rules.rules.items():
        if rule.whatsapp_template:
            key = f"{where}: kinds.{kind.value}.whatsapp_template"
            template = templates.require(rule.whatsapp_template, key, rule.variables | {"customer_name"})
            # A template's button that opens a flow carries the link of the rule's reply that
            # opens it: without one, the approved button would lead nowhere in particular.
            opened = {reply.opens for reply in rule.quick_replies if reply.opens}
            for reply in template.link_replies:
                if reply.opens not in opened:
                    raise TemplatesError(
                        f"{key}: template {template.name!r}'s quick reply {reply.title!r} opens "
                        f"{reply.opens.value if reply.opens else ''}, but no quick reply of this "
                        "rule does (add one with that opens:, or choose another template)"
                    )


def _display(name: str, value: str, variables: dict[str, str], country: str | None) -> str:
    if name.endswith("date"):
        try:
            return format_date(date.fromisoformat(value), "EEEE d 'de' MMMM", locale="es")
        except ValueError:
            return value
    if name == "amount" and variables.get("currency"):
        try:
            return format_money(Decimal(value), variables["currency"], country or "MX")
        except (InvalidOperation, KeyError, ValueError):
            return value
    return value
