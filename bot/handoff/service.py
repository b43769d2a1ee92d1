"""Opening a handoff and what the customer is told about the wait: the service action_handoff calls."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from bot.adapters.base import BackendUnavailable, Crm
from bot.adapters.sql import SqlStore
from bot.clock import Clock
from bot.handoff.announce import Announcer
from bot.handoff.config import HandoffConfig, load_config
from bot.handoff.packet import build_packet
from bot.handoff.rules import PRESENCE_WINDOW, Reason, WaitEstimate, estimate_wait
from bot.handoff.store import Handoff, HandoffStore, new_handoff_id
from bot.identity import IdentityClaim
from bot.records import Customer
from bot.settings import Settings
from bot.spanish_time import moment_phrase

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class HandoffServices:
    store: HandoffStore
    config: HandoffConfig
    announcer: Announcer
    desk_enabled: bool


def build_services(settings: Settings, store: SqlStore, clock: Clock) -> HandoffServices:
    """The handoff store, configuration and announcer for `settings` (bot/wiring.py calls this)."""
    return HandoffServices(
        store=HandoffStore(store, clock),
        config=load_config(settings.handoff_config),
        announcer=Announcer(settings.redis_url),
        desk_enabled=bool(settings.handoff_webhook_url),
    )


@dataclass(frozen=True)
class HandoffRequest:
    """A conversation to hand over, as plain data (actions/ converts the tracker)."""

    conversation_id: str
    phone: str | None
    channel: str
    reason: Reason
    events: list[Mapping[str, Any]]
    slots: Mapping[str, Any]
    active_form: str | None
    now: datetime
    reason_detail: str | None = None
    # The verified identity, only as a claim the caller checked (signature, sender, expiry).
    identity: IdentityClaim | None = None


@dataclass(frozen=True)
class OpenedHandoff:
    handoff: Handoff
    wait: WaitEstimate
    already_open: bool


def _customer(crm: Crm | None, request: HandoffRequest) -> Customer | None:
    """Whom the conversation is about: the customer verified by code in this session (a number
    not on file can prove who it is), else the customer whose number on file is the sender's."""
    if crm is None:
        return None
    verified_id = request.identity.customer_id if request.identity else None
    try:
        if verified_id is not None:
            return crm.customer_by_id(verified_id) or (
                crm.customer_by_phone(request.phone) if request.phone else None
            )
        return crm.customer_by_phone(request.phone) if request.phone else None
    except BackendUnavailable:
        # The CRM being down is often why the customer needs a person: hand over without the name.
        logger.warning("handoff: CRM unavailable, the packet goes without the customer's record")
        return None


def open_handoff(found: HandoffServices, crm: Crm | None, request: HandoffRequest) -> OpenedHandoff:
    """Store the handoff with its packet, queue its desk delivery, announce it; once per conversation."""
    store, config = found.store, found.config
    existing = store.active_for(request.conversation_id)
    if existing is not None:
        ahead = sum(1 for h in store.queue(("waiting",)) if h.created_at < existing.created_at)
        connected = store.agents_connected(request.now - PRESENCE_WINDOW)
        return OpenedHandoff(
            existing, estimate_wait(ahead, request.now, config, connected), already_open=True
        )
    customer = _customer(crm, request)
    connected = store.agents_connected(request.now - PRESENCE_WINDOW)
    wait = estimate_wait(store.waiting_count(), request.now, config, connected)
    handoff_id = new_handoff_id()
    packet = build_packet(
        handoff_id=handoff_id,
        conversation_id=request.conversation_id,
        reason=request.reason,
        reason_detail=request.reason_detail,
        events=request.events,
        slots=request.slots,
        active_loop=request.active_form,
        customer=customer,
        phone=request.phone,
        channel=request.channel,
        created_at=request.now,
        wait=wait,
        identity=request.identity,
    )
    vip = customer is not None and customer.id in config.vip_customers
    handoff = store.create(
        handoff_id=handoff_id,
        conversation_id=request.conversation_id,
        phone=request.phone,
        channel=request.channel,
        reason=request.reason.value,
        customer_name=customer.name if customer else None,
        packet=packet,
        resume_form=request.active_form,
        priority=1 if vip else 0,
        deliver_to_desk=found.desk_enabled,
        now=request.now,
    )
    found.announcer.announce("handoff_created", handoff_id, reason=request.reason.value)
    return OpenedHandoff(handoff, wait, already_open=False)


def wait_phrase(minutes: int) -> str:
    """`unos 8 minutos`, `alrededor de 2 horas`."""
    if minutes <= 1:
        return "menos de un minuto"
    if minutes < 60:
        return f"unos {minutes} minutos"
    hours = round(minutes / 60)
    return "alrededor de una hora" if hours == 1 else f"alrededor de {hours} horas"


def opening_phrase(wait: WaitEstimate, config: HandoffConfig, now: datetime) -> str:
    """`el lunes 23 de noviembre a las 09:00`, `mañana martes 24 de noviembre a las 09:00`."""
    if wait.opens_at is None:
        return "en cuanto el equipo esté disponible"
    return moment_phrase(wait.opens_at, ZoneInfo(config.timezone), now)
