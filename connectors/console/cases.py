"""The console's Cases view: the list with its filters (type, status, SLA breach), one case's page
with its history, and the agent's changes (assign, status, internal note, message to the
customer). Closing a case asks the customer the same 1-5 question as a handed-back handoff.

Same rules as the rest of the console (app.py): every page needs a session, every form its CSRF
token, templates autoescape what customers wrote; messages go through the one MessageSender
(the WhatsApp 24-hour window and opt-outs hold) and into the Rasa tracker. The SLA is judged
on the project's clock.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import datetime
from functools import partial
from typing import Any
from urllib.parse import quote

from sanic import Sanic, response
from sanic.request import Request

from bot.adapters.base import BackendUnavailable
from bot.case_types import case_catalogue
from bot.case_work import (
    CLOSED,
    STATUSES,
    CaseChangeRefused,
    WorkedCase,
    add_note,
    assign_case,
    change_status,
    find_cases,
    message_text,
    record_message,
    record_rating_asked,
    worked,
)
from bot.messaging.buttons import Option
from bot.messaging.inbound import Channel
from bot.messaging.sender import WHATSAPP_WINDOW, MessageSender, OutboundMessage
from bot.records import Case
from bot.responses import domain_responses
from bot.wiring import NotWired, Wiring
from connectors.console.attachments import FILE_FIELD, attachment_of, file_notices
from connectors.console.rasa_api import RasaApi, RasaApiError

logger = logging.getLogger(__name__)

RATING_QUESTION = "utter_ask_satisfaction"  # the handoff's question, its buttons answer both
CASE_STATUSES = {
    "open": "Abierto",
    "in_progress": "En curso",
    "waiting_customer": "Esperando al cliente",
    "resolved": "Resuelto",
    "closed": "Cerrado",
}
ACTIONS = {
    "assigned": "Asignado",
    "status": "Cambio de estado",
    "note": "Nota interna (el cliente no la ve)",
    "message": "Mensaje al cliente",
    "rating_requested": "Se pidió calificación al cliente",
    "rated": "Calificación del cliente",
}
CASE_NOTICES = {
    "assigned": "Caso asignado.",
    "status": "Estado actualizado.",
    "status_told": "Estado actualizado; se le avisó al cliente.",
    "status_held": "Estado actualizado. Pasaron más de 24 horas desde el último mensaje del cliente en "
    "WhatsApp: se le envió una plantilla aprobada y el aviso le llega en cuanto vuelva a escribir.",
    "status_untold": "Estado actualizado, pero no se pudo avisar al cliente (dado de baja, sin canal o "
    "fallo del envío): escríbele desde aquí si hace falta.",
    "closed": "Caso cerrado; se pidió al cliente que califique la atención del 1 al 5.",
    "closed_unrated": "Caso cerrado. No se pudo pedir la calificación al cliente (fuera de la ventana "
    "de 24 horas de WhatsApp, dado de baja o sin canal).",
    "note": "Nota interna guardada.",
    "sent": "Mensaje enviado al cliente.",
    "sent_untracked": "Mensaje enviado, pero no se pudo anotar en la conversación del bot.",
    "held": "Pasaron más de 24 horas desde el último mensaje del cliente en WhatsApp: se le envió una "
    "plantilla aprobada y tu mensaje le llega en cuanto vuelva a escribir.",
    "blocked": "No se envió: el cliente se dio de baja de los mensajes.",
    "failed": "No se pudo enviar; inténtalo otra vez.",
    "nochannel": "No se envió: el caso no tiene un teléfono al que escribir.",
    "empty": "Escribe un texto.",
    "transition": "Ese cambio de estado no está permitido desde el estado actual.",
    "stale": "Otra persona cambió el caso mientras tanto; revisa su estado.",
    "closed_case": "El caso está cerrado.",
    "agent": "Ese agente no existe.",
    "missing": "El caso ya no existe.",
}
UNSUPPORTED = (
    "El sistema donde se guardan los casos solo los registra: todavía no permite "
    "trabajarlos desde la consola."
)
UNAVAILABLE = "El sistema de casos no responde; inténtalo en unos minutos."


def _hours(delta_s: float) -> str:
    hours = int(abs(delta_s) // 3600)
    minutes = int(abs(delta_s) % 3600 // 60)
    return f"{hours} h {minutes} min" if hours else f"{minutes} min"


def sla_label(item: WorkedCase, now: datetime) -> str:
    """`vence en 5 h 10 min`, `venció hace 2 h` or `cumplido`, judged at `now`."""
    if item.case.status in ("resolved", "closed"):
        return "terminado"
    left = (item.due_at - now).total_seconds()
    return f"venció hace {_hours(left)}" if left < 0 else f"vence en {_hours(left)}"


def status_change_label(detail: str) -> str:
    """`open → in_progress` as agents read it: `Abierto → En curso`."""
    return " → ".join(CASE_STATUSES.get(code, code) for code in detail.split(" → "))


def rating_question() -> tuple[str, tuple[Option, ...]]:
    """The handoff's satisfaction question (its first variation) with its five buttons."""
    first = domain_responses()[RATING_QUESTION][0]
    options = tuple(Option(str(button["title"]), str(button["payload"])) for button in first["buttons"])
    return str(first["text"]), options


def register_case_routes(
    app: Sanic,
    graph: Wiring,
    rasa: RasaApi,
    *,
    session_of: Callable[[Request], Awaitable[dict[str, Any] | None]],
    csrf_ok: Callable[[Request, dict[str, Any]], bool],
    render: Callable[..., response.HTTPResponse],
    sender: Callable[[], MessageSender],
    when: Callable[[str | None], str],
) -> None:
    """Add the Cases view's pages and forms to the console `app`."""
    clock = graph.clock
    catalogue = case_catalogue()  # read at start-up: a broken file stops the console with its key
    store = graph.handoff.store

    def book():  # noqa: ANN202 (the graph's case book, looked up per call: tests swap it)
        return graph.cases

    def row(item: WorkedCase, now: datetime) -> dict[str, Any]:
        case = item.case
        return {
            "id": case.id,
            "type": item.type.label,
            "team": item.type.team,
            "status": case.status,
            "status_label": CASE_STATUSES.get(case.status, case.status),
            "assigned_to": case.assigned_to or "",
            "phone": case.customer_phone or case.conversation_id,
            "order_id": case.details.get("order_id", ""),
            "opened": when(case.opened_at.isoformat()),
            "due": when(item.due_at.isoformat()),
            "sla": sla_label(item, now),
            "breached": item.breached,
        }

    def back(case_id: str, notice: str) -> response.HTTPResponse:
        return response.redirect(f"/cases/{quote(case_id)}?notice={notice}")

    async def load(case_id: str) -> Case | None:
        return await asyncio.to_thread(book().case, case_id)

    def customer_name(case: Case) -> str | None:
        if not case.customer_phone:
            return None
        try:
            customer = graph.backends.crm.customer_by_phone(case.customer_phone)
        except BackendUnavailable:
            return None
        return customer.name if customer else None

    async def send(case: Case, message: OutboundMessage) -> str | None:
        """Send through the one sender; None when sent, "held" when the WhatsApp window had closed
        (a template went out and the message waits for the customer's next message, as the
        console's handoff replies do), else the notice saying why not."""
        result = await sender().send(message)
        return result.status if result.status in ("blocked", "failed", "held") else None

    async def customer_message(
        case: Case,
        text: str = "",
        options: tuple[Option, ...] = (),
        purpose: str = "console_reply",
        values: dict[str, str] | None = None,
    ) -> OutboundMessage | None:
        """The message to the case's customer on the channel they last wrote from, if any."""
        if not case.customer_phone:
            return None
        contact = await asyncio.to_thread(graph.messaging.contact, case.customer_phone)
        if contact is None or contact.last_channel not in (Channel.WHATSAPP.value, Channel.SMS.value):
            return None
        if options and contact.last_channel == Channel.WHATSAPP.value:
            last = contact.whatsapp_last_inbound_at
            if last is None or clock.now() - last > WHATSAPP_WINDOW:
                return None  # a 1-5 question days later, with buttons the customer cannot tap: not asked
        return OutboundMessage(
            case.customer_phone, Channel(contact.last_channel), body=text, options=options,
            template=sender().templates.meant_for(purpose), template_values=values, source="console",
        )  # fmt: skip

    async def into_tracker(case: Case, text: str, agent: str) -> bool:
        try:
            event = {"event": "bot", "text": text, "metadata": {"agent": agent, "case": case.id}}
            await rasa.append_events(case.conversation_id, [event])
        except RasaApiError as error:
            logger.error("console: case %s message sent but not written into the tracker: %s", case.id, error)
            return False
        return True

    async def ask_rating(case: Case, agent: str) -> bool:
        """Ask the customer to rate the closed case, as the hand-back does; whether it was asked."""
        text, options = rating_question()
        message = await customer_message(case, text, options)
        if message is None or await send(case, message) is not None:
            return False
        await asyncio.to_thread(record_rating_asked, book(), case, agent, clock.now())
        if not isinstance(graph.memory, NotWired):
            # Numbered on SMS: the customer's "4" reads back as the button's payload, as the
            # channel remembers its own options (shared through Redis when REDIS_URL is set).
            buttons = [{"title": option.title, "payload": option.payload} for option in options]
            await asyncio.to_thread(graph.memory.set_pending_buttons, case.customer_phone, buttons)
        await into_tracker(case, text, agent)
        return True

    @app.get("/cases")
    async def cases_page(request: Request) -> response.HTTPResponse:
        session = await session_of(request)
        if session is None:
            return response.redirect("/login")
        type_id = request.args.get("type") if request.args.get("type") in catalogue.types else None
        status = request.args.get("status") if request.args.get("status") in STATUSES else None
        breached = request.args.get("sla") == "breached"
        now = clock.now()
        error = None
        try:
            found = await asyncio.to_thread(
                find_cases, book(), catalogue, now, type_id=type_id, status=status, breached_only=breached
            )
        except NotImplementedError:
            found, error = [], UNSUPPORTED
        except BackendUnavailable:
            found, error = [], UNAVAILABLE
        return render(
            request,
            "cases.html",
            status=503 if error else 200,
            error=error,
            agent=session["agent"],
            csrf=session["csrf"],
            rows=[row(item, now) for item in found],
            types=[(t.id, t.label) for t in catalogue.types.values()],
            statuses=list(CASE_STATUSES.items()),
            chosen={"type": type_id or "", "status": status or "", "sla": "breached" if breached else ""},
        )

    @app.get("/cases/<case_id>")
    async def case_page(request: Request, case_id: str) -> response.HTTPResponse:
        session = await session_of(request)
        if session is None:
            return response.redirect("/login")
        case = await load(case_id)
        if case is None:
            return response.text("not found", status=404)
        now = clock.now()
        item = worked(case, catalogue, now)
        history = await asyncio.to_thread(book().history, case.id)
        agents = await asyncio.to_thread(store.agent_names)
        name = await asyncio.to_thread(customer_name, case)
        return render(
            request,
            "case.html",
            agent=session["agent"],
            csrf=session["csrf"],
            case=case,
            item=item,
            row=row(item, now),
            customer=name,
            details=sorted(case.details.items()),
            history=[
                {
                    "at": when(event.at.isoformat()),
                    "actor": event.actor,
                    "action": ACTIONS.get(event.action, event.action),
                    "kind": event.action,
                    "detail": status_change_label(event.detail) if event.action == "status" else event.detail,
                }
                for event in history
            ],
            agents=agents,
            next_statuses=[(code, CASE_STATUSES[code]) for code in item.next_statuses],
            notice={**CASE_NOTICES, **file_notices(graph.settings.media_max_bytes)}.get(
                request.args.get("notice", "")
            ),
        )

    async def change(request: Request, case_id: str, act: Callable[[Case, str, dict], Awaitable[str]]):
        session = await session_of(request)
        if session is None or not csrf_ok(request, session):
            return response.text("forbidden", status=403)
        case = await load(case_id)
        if case is None:
            return response.text("not found", status=404)
        try:
            notice = await act(case, session["agent"], request.form)
        except CaseChangeRefused as refused:
            notice = {"closed": "closed_case"}.get(refused.reason, refused.reason)
        return back(case.id, notice)

    async def do_assign(case: Case, agent: str, form: Any) -> str:
        to = (form.get("to") or agent).strip()
        if to not in await asyncio.to_thread(store.agent_names):
            return "agent"
        await asyncio.to_thread(assign_case, book(), case, to, agent, clock.now())
        return "assigned"

    async def do_status(case: Case, agent: str, form: Any) -> str:
        to = form.get("status") or ""
        if form.get("from") and form.get("from") != case.status:
            return "stale"  # the page the agent acted on showed another status
        await asyncio.to_thread(change_status, book(), case, to, agent, clock.now())
        if to != CLOSED:
            return await tell_status(case, to, agent)
        return "closed" if await ask_rating(case, agent) else "closed_unrated"

    async def tell_status(case: Case, to: str, agent: str) -> str:
        """Tell the customer their case moved (the catalogue's `customer_updates`), as a message
        of the team: in its history as sent to them, and in their conversation."""
        text = catalogue.update_for(case, to)
        if not text:
            return "status"
        message = await customer_message(case, text, purpose="case_update", values={"management_id": case.id})
        outcome = await send(case, message) if message is not None else "nochannel"
        if outcome not in (None, "held"):
            return "status_untold"
        await asyncio.to_thread(record_message, book(), case, text, agent, clock.now())
        await into_tracker(case, text, agent)
        return "status_held" if outcome == "held" else "status_told"

    async def do_note(case: Case, agent: str, form: Any) -> str:
        await asyncio.to_thread(add_note, book(), case, form.get("text") or "", agent, clock.now())
        return "note"

    async def do_message(case: Case, agent: str, form: Any, files: Any = None) -> str:
        if case.status == CLOSED:
            return "closed_case"
        raw = form.get("text") or ""
        text = message_text(raw) if raw.strip() or not (files and files.get(FILE_FIELD)) else ""
        message = await customer_message(case, text)
        if message is None:
            return "nochannel"
        attached = await attachment_of(graph, files, message.to, agent, message.channel)
        if isinstance(attached, str):
            return attached
        if attached is None and not text:
            return "empty"
        if attached is not None:
            body, media = attached.outgoing(message.channel, text)
            message = replace(message, body=body, media_urls=media)
            text = attached.body_with_link(text)  # the history keeps the link the customer got
        refused = await send(case, message)
        if refused not in (None, "held"):
            return refused
        await asyncio.to_thread(record_message, book(), case, text, agent, clock.now())
        tracked = await into_tracker(case, text, agent)
        return refused or ("sent" if tracked else "sent_untracked")

    @app.post("/cases/<case_id>/assign")
    async def assign(request: Request, case_id: str) -> response.HTTPResponse:
        return await change(request, case_id, do_assign)

    @app.post("/cases/<case_id>/status")
    async def status(request: Request, case_id: str) -> response.HTTPResponse:
        return await change(request, case_id, do_status)

    @app.post("/cases/<case_id>/note")
    async def note(request: Request, case_id: str) -> response.HTTPResponse:
        return await change(request, case_id, do_note)

    @app.post("/cases/<case_id>/message")
    async def message(request: Request, case_id: str) -> response.HTTPResponse:
        return await change(request, case_id, partial(do_message, files=request.files))
