"""The KPIs of the self-service over a period, from sessions, handoffs, cases and misunderstood
messages: plain functions of their inputs (the period and `now` included), no database, no clock.

docs/kpis.md defines each figure precisely enough to recompute it by hand; the names below are
the ones used there, in `make report`'s output and in its CSV files.
"""

from __future__ import annotations

import bisect
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from operator import attrgetter
from statistics import median
from zoneinfo import ZoneInfo

from bot.analytics.ab import VariantFigures, compare
from bot.analytics.feedback import ExposureFacts, FeedbackFacts
from bot.analytics.notifications import NotificationFacts, NotificationFigures, TapFacts, notification_figures
from bot.analytics.sessions import SessionFacts
from bot.inbox import same_text

FCR_WINDOW = timedelta(hours=72)
NO_INTENT = "(none)"
CONTAINED, HANDOFF, CASE, UNRESOLVED = "contained", "handoff", "case", "unresolved"
DIMENSIONS = ("intent", "channel", "country", "customer", "day", "week")
TOP_MISUNDERSTOOD = 20


@dataclass(frozen=True)
class Period:
    """[start, end): both timezone-aware."""

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ValueError("a period needs timezone-aware moments")
        if self.end <= self.start:
            raise ValueError("a period ends after it starts")

    def holds(self, moment: datetime) -> bool:
        return self.start <= moment < self.end


CUSTOMER_TYPES = ("new", "returning")


@dataclass(frozen=True)
class SessionFilter:
    """Which sessions of the period count: each dimension's one value, or None for all of them.

    Applied after every session's outcome is settled (a handoff still belongs to the session it
    was made in, whatever the filter), so the figures of a filter are those of its sessions."""

    intent: str | None = None  # NO_INTENT for sessions without a task intent
    channel: str | None = None
    country: str | None = None
    customer: str | None = None  # new | returning

    def __post_init__(self) -> None:
        if self.customer is not None and self.customer not in CUSTOMER_TYPES:
            raise ValueError(f"customer {self.customer!r}: use one of {', '.join(CUSTOMER_TYPES)}")

    @property
    def active(self) -> bool:
        return any(value is not None for value in (self.intent, self.channel, self.country, self.customer))

    def matches(self, intent: str, channel: str, country: str, customer: str) -> bool:
        return (
            (self.intent is None or self.intent == intent)
            and (self.channel is None or self.channel == channel)
            and (self.country is None or self.country == country)
            and (self.customer is None or self.customer == customer)
        )


EVERY_SESSION = SessionFilter()


def days_period(first: date | None, last: date | None, today: date, zone: str, days: int = 7) -> Period:
    """The days [first, last) as midnights in `zone`; by default the `days` full days before `today`."""
    tz = ZoneInfo(zone)
    end_day = last or today
    start_day = first or end_day - timedelta(days=days)
    return Period(datetime.combine(start_day, time(), tz), datetime.combine(end_day, time(), tz))


@dataclass(frozen=True)
class HandoffFacts:
    handoff_id: str
    conversation_id: str
    reason: str
    agent: str | None
    created_at: datetime
    accepted_at: datetime | None
    ended_at: datetime | None
    satisfaction: int | None


@dataclass(frozen=True)
class CaseFacts:
    case_id: str
    conversation_id: str
    kind: str
    opened_at: datetime
    resolved_at: datetime | None
    satisfaction: int | None = None  # the customer's 1-5 when the case was closed


@dataclass(frozen=True)
class MisunderstoodFacts:
    text: str  # masked when it was stored
    at: datetime
    reasons: str
    conversation_id: str = ""  # whose session it belongs to, for a filter


@dataclass
class Figures:
    """The session KPIs of one group of sessions (all of the period, or one intent, day, ...)."""

    sessions: int = 0
    contained: int = 0
    handed_over: int = 0
    with_case: int = 0
    unresolved: int = 0
    customer_turns: int = 0
    fallback_turns: int = 0
    clarification_turns: int = 0
    fcr_judged: int = 0
    fcr_resolved: int = 0
    csat_answers: int = 0
    csat_sum: int = 0
    csat_satisfied: int = 0  # answers of 4 or 5
    feedback_answers: int = 0  # "¿Te sirvió?" answered
    feedback_yes: int = 0  # of them "Sí"

    def add(self, session: _Session) -> None:
        self.sessions += 1
        self.contained += session.outcome == CONTAINED
        self.handed_over += session.outcome == HANDOFF
        self.with_case += session.outcome == CASE
        self.unresolved += session.outcome == UNRESOLVED
        self.customer_turns += session.facts.customer_turns
        self.fallback_turns += session.facts.fallback_turns
        self.clarification_turns += session.facts.clarification_turns
        if session.fcr is not None:
            self.fcr_judged += 1
            self.fcr_resolved += session.fcr
        for score in session.scores:
            self.csat_answers += 1
            self.csat_sum += score
            self.csat_satisfied += score >= 4
        for useful in session.answers:
            self.feedback_answers += 1
            self.feedback_yes += useful

    def merge(self, other: Figures) -> None:
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(self, name) + getattr(other, name))

    @property
    def containment(self) -> float | None:
        return _ratio(self.contained, self.sessions)

    @property
    def handoff_rate(self) -> float | None:
        return _ratio(self.handed_over, self.sessions)

    @property
    def fallback_rate(self) -> float | None:
        return _ratio(self.fallback_turns, self.customer_turns)

    @property
    def clarification_rate(self) -> float | None:
        return _ratio(self.clarification_turns, self.customer_turns)

    @property
    def fcr(self) -> float | None:
        return _ratio(self.fcr_resolved, self.fcr_judged)

    @property
    def csat_mean(self) -> float | None:
        return _ratio(self.csat_sum, self.csat_answers)

    @property
    def csat_share(self) -> float | None:
        """Satisfied answers (a 4 or 5, or a "Sí") over every answer (1-5 and Sí / No)."""
        return _ratio(self.csat_satisfied + self.feedback_yes, self.csat_answers + self.feedback_answers)

    @property
    def feedback_yes_rate(self) -> float | None:
        return _ratio(self.feedback_yes, self.feedback_answers)

    def row(self) -> dict[str, float | int | None]:
        return {
            "sessions": self.sessions,
            "containment": self.containment,
            "handoff_rate": self.handoff_rate,
            "fallback_rate": self.fallback_rate,
            "clarification_rate": self.clarification_rate,
            "fcr": self.fcr,
            "csat_mean": self.csat_mean,
            "csat_answers": self.csat_answers,
            "feedback_yes_rate": self.feedback_yes_rate,
            "feedback_answers": self.feedback_answers,
        }


class _Session:
    """A session being judged (slots: a week holds 100,000 of them)."""

    __slots__ = ("facts", "outcome", "fcr", "handoff_reasons", "scores", "customer", "answers", "variants")
    NONE: tuple = ()

    def __init__(self, facts: SessionFacts) -> None:
        self.facts = facts
        self.outcome = CONTAINED
        self.fcr: bool | None = None
        self.handoff_reasons: list[str] | tuple = self.NONE
        self.scores: list[int] | tuple = self.NONE
        self.customer = "new"  # or "returning": set for the sessions of the period
        self.answers: list[bool] | tuple = self.NONE  # "¿Te sirvió?": True for "Sí"
        self.variants: dict[str, str] | None = None  # experiment → the variant first shown


@dataclass(frozen=True)
class AgentFigures:
    agent: str
    handled: int
    aht_minutes: float


@dataclass(frozen=True)
class KpiReport:
    period: Period
    now: datetime
    overall: Figures
    breakdown: dict[str, dict[str, Figures]]  # dimension → value → figures
    handoffs_by_intent_reason: list[tuple[str, str, int, int]]  # intent, reason, handoffs, sessions
    customers: int
    active_customers: int | None
    adoption: float | None
    aht_minutes: float | None
    agents: list[AgentFigures]
    cases_opened: int
    cases_resolved: int
    case_resolution_hours_mean: float | None
    case_resolution_hours_median: float | None
    misunderstood: list[tuple[str, int]]  # masked text, times written
    feedback_by_flow: list[tuple[str, int, int]] = ()  # rated flow, answers, "Sí"
    experiments: list[VariantFigures] = ()  # per experiment and variant, p-values vs the first
    notifications: list[NotificationFigures] = ()  # the total first, then per kind and channel


def _ratio(part: float, whole: float) -> float | None:
    return None if not whole else part / whole


def _owner(sessions: Sequence[_Session], starts: Sequence[datetime], moment: datetime) -> _Session | None:
    """The session a handoff or case made at `moment` belongs to: the latest started by then."""
    index = bisect.bisect_right(starts, moment) - 1
    return sessions[index] if index >= 0 else None


def compute_kpis(
    period: Period,
    now: datetime,
    sessions: Iterable[SessionFacts],
    handoffs: Iterable[HandoffFacts],
    cases: Iterable[CaseFacts],
    misunderstood: Iterable[MisunderstoodFacts],
    first_seen: dict[str, datetime],
    zone: str,
    active_customers: int | None = None,
    only: SessionFilter = EVERY_SESSION,
    feedback: Iterable[FeedbackFacts] = (),
    exposures: Iterable[ExposureFacts] = (),
    notifications: Iterable[NotificationFacts] = (),
    link_taps: Iterable[TapFacts] = (),
) -> KpiReport:
    """Every KPI of docs/kpis.md for the sessions started in `period`, judged at `now`.

    `sessions` must hold the period's sessions and those started up to FCR_WINDOW after it (for
    first-contact resolution); `first_seen` the first session start of each customer key (new
    vs returning); `handoffs` and `cases` those of the conversations in `sessions`. With a
    filter (`only`), the figures are those of its sessions; AHT, the cases and the misunderstood
    messages those that belong to them. `feedback` ("¿Te sirvió?" answers) and `exposures` (A/B
    variants shown) belong to sessions the same way as handoffs, by conversation and moment.
    `notifications` finished in the period and the `link_taps` of their deep links give the
    notifications' figures (a filter's channel only applies to them: they have no session)."""
    tz = ZoneInfo(zone)
    ordered = sorted(sessions, key=attrgetter("started_at"))
    all_sessions = [_Session(facts) for facts in ordered]
    by_conversation: dict[str, list[_Session]] = defaultdict(list)
    for session in all_sessions:
        by_conversation[session.facts.conversation_id].append(session)
    starts = {cid: [s.facts.started_at for s in items] for cid, items in by_conversation.items()}

    def owner_of(conversation_id: str, moment: datetime) -> _Session | None:
        return _owner(by_conversation.get(conversation_id, []), starts.get(conversation_id, []), moment)

    handoff_list = list(handoffs)
    handoff_owners = [owner_of(h.conversation_id, h.created_at) for h in handoff_list]
    for handoff, owner in zip(handoff_list, handoff_owners, strict=True):
        if owner is not None:
            owner.outcome = HANDOFF
            owner.handoff_reasons = [*owner.handoff_reasons, handoff.reason]
            if handoff.satisfaction is not None:
                owner.scores = [*owner.scores, handoff.satisfaction]
    case_list = list(cases)
    case_owners = [owner_of(c.conversation_id, c.opened_at) for c in case_list]
    for case, owner in zip(case_list, case_owners, strict=True):
        if owner is not None and owner.outcome != HANDOFF:
            owner.outcome = CASE
        if owner is not None and case.satisfaction is not None:
            owner.scores = [*owner.scores, case.satisfaction]
    feedback_owners = [(answer, owner_of(answer.conversation_id, answer.at)) for answer in feedback]
    for answer, owner in feedback_owners:
        if owner is not None:
            owner.answers = [*owner.answers, answer.useful]
    for exposure in exposures:
        owner = owner_of(exposure.conversation_id, exposure.at)
        if owner is not None:
            owner.variants = owner.variants or {}
            owner.variants.setdefault(exposure.experiment, exposure.variant)
    for session in all_sessions:
        if session.outcome == CONTAINED and session.facts.handed_over:
            session.outcome = HANDOFF  # handed over, the handoff row not copied yet
        elif session.outcome == CONTAINED and session.facts.last_turn_fell_back:
            session.outcome = UNRESOLVED

    in_period = [s for s in all_sessions if period.holds(s.facts.started_at) and s.facts.customer_turns > 0]
    for session in in_period:
        first = first_seen.get(session.facts.customer_key, session.facts.started_at)
        session.customer = "returning" if first < session.facts.started_at else "new"
    if only.active:
        in_period = [
            s
            for s in in_period
            if only.matches(s.facts.intent or NO_INTENT, s.facts.channel, s.facts.country, s.customer)
        ]
    chosen = {id(s) for s in in_period}

    def counted(owner: _Session | None) -> bool:
        """Whether a handoff or case of this session counts: any, without a filter."""
        return not only.active or (owner is not None and id(owner) in chosen)

    _judge_first_contact(in_period, all_sessions, now)

    # One Figures per combination of the dimensions' values, then summed per dimension: a
    # session is added once, not once per dimension (100,000 sessions make ~1,000 combinations).
    combos: dict[tuple[str, ...], Figures] = defaultdict(Figures)
    pairs: Counter[tuple[str, str]] = Counter()
    local_days: dict[datetime, tuple[str, str]] = {}
    for session in in_period:
        facts = session.facts
        local = facts.started_at.astimezone(tz)
        hour = local.replace(minute=0, second=0, microsecond=0)
        if hour not in local_days:
            year, week, _ = local.isocalendar()
            local_days[hour] = (local.date().isoformat(), f"{year}-W{week:02d}")
        day, week_name = local_days[hour]
        intent = facts.intent or NO_INTENT
        customer = session.customer
        combos[(intent, facts.channel, facts.country, customer, day, week_name)].add(session)
        for reason in set(session.handoff_reasons):
            pairs[(intent, reason)] += 1
    overall = Figures()
    breakdown: dict[str, dict[str, Figures]] = {dimension: defaultdict(Figures) for dimension in DIMENSIONS}
    per_intent: Counter[str] = Counter()
    for values, figures in combos.items():
        overall.merge(figures)
        per_intent[values[0]] += figures.sessions
        for dimension, value in zip(DIMENSIONS, values, strict=True):
            breakdown[dimension][value].merge(figures)

    agent_times: dict[str, list[float]] = defaultdict(list)
    for handoff, owner in zip(handoff_list, handoff_owners, strict=True):
        if not counted(owner):
            continue
        if period.holds(handoff.created_at) and handoff.accepted_at and handoff.ended_at:
            minutes = (handoff.ended_at - handoff.accepted_at).total_seconds() / 60
            agent_times[handoff.agent or "?"].append(minutes)
    all_times = [minutes for times in agent_times.values() for minutes in times]

    opened = [
        case
        for case, owner in zip(case_list, case_owners, strict=True)
        if period.holds(case.opened_at) and counted(owner)
    ]
    hours = [
        (case.resolved_at - case.opened_at).total_seconds() / 3600
        for case in opened
        if case.resolved_at is not None
    ]
    customers = len({s.facts.customer_key for s in in_period})
    texts: dict[str, list] = {}
    for message in misunderstood:
        if period.holds(message.at) and (
            not only.active or counted(owner_of(message.conversation_id, message.at))
        ):
            texts.setdefault(same_text(message.text), [message.text, 0])[1] += 1
    top = sorted(((text, count) for text, count in texts.values()), key=lambda item: (-item[1], item[0]))
    by_flow: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for answer, owner in feedback_owners:
        if owner is not None and id(owner) in chosen:
            by_flow[answer.flow][0] += 1
            by_flow[answer.flow][1] += answer.useful
    variants: dict[tuple[str, str], VariantFigures] = {}
    for session in in_period:
        for experiment, variant in (session.variants or {}).items():
            figures = variants.setdefault((experiment, variant), VariantFigures(experiment, variant))
            figures.sessions += 1
            figures.contained += session.outcome == CONTAINED
            figures.answers += len(session.answers)
            figures.yes += sum(session.answers)
    return KpiReport(
        period=period,
        now=now,
        overall=overall,
        breakdown={dimension: dict(sorted(values.items())) for dimension, values in breakdown.items()},
        handoffs_by_intent_reason=sorted(
            ((intent, reason, count, per_intent[intent]) for (intent, reason), count in pairs.items()),
            key=lambda row: (-row[2], row[0], row[1]),
        ),
        customers=customers,
        active_customers=active_customers,
        adoption=_ratio(customers, active_customers or 0),
        aht_minutes=_ratio(sum(all_times), len(all_times)),
        agents=[
            AgentFigures(agent, len(times), sum(times) / len(times))
            for agent, times in sorted(agent_times.items())
        ],
        cases_opened=len(opened),
        cases_resolved=len(hours),
        case_resolution_hours_mean=_ratio(sum(hours), len(hours)),
        case_resolution_hours_median=median(hours) if hours else None,
        misunderstood=top[:TOP_MISUNDERSTOOD],
        feedback_by_flow=sorted((flow, n, yes) for flow, (n, yes) in by_flow.items()),
        experiments=compare(list(variants.values())),
        notifications=notification_figures(notifications, link_taps, period.start, period.end, only.channel),
    )


def _judge_first_contact(in_period: list[_Session], all_sessions: list[_Session], now: datetime) -> None:
    """A session with an intent is resolved at first contact when the same customer starts no
    other session with the same intent within FCR_WINDOW of its end; it is judged only once
    that window has passed by `now`."""
    starts: dict[tuple[str, str], list[datetime]] = defaultdict(list)
    for session in all_sessions:
        if session.facts.intent:
            starts[(session.facts.customer_key, session.facts.intent)].append(session.facts.started_at)
    for session in in_period:
        facts = session.facts
        if not facts.intent or facts.ended_at + FCR_WINDOW > now:
            continue
        later = starts[(facts.customer_key, facts.intent)]
        index = bisect.bisect_right(later, facts.started_at)
        repeated = index < len(later) and later[index] <= facts.ended_at + FCR_WINDOW
        session.fcr = not repeated
