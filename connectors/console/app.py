"""The agent console's web app: login, the queue, one conversation, reply, hand back, close, and
the knowledge base (its page, and a search beside the reply box that fills the reply).

Server-rendered with Jinja2 (autoescape on: what a customer wrote is always text) on Sanic, no
front-end build: two small inline scripts poll JSON every two seconds for the queue and for new
messages (one console process, any database; see bot/handoff/announce.py for Redis).
Sessions are signed cookies (itsdangerous) that expire; every form carries a CSRF token; every
page but the login needs a session, and the KPI page a supervisor's (the role is read from the
agents table on every request). Replies go out through bot.messaging.sender.MessageSender,
so the WhatsApp 24-hour window and opt-outs hold, and are written into the Rasa tracker.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import secrets
from collections.abc import Callable
from datetime import date, datetime, timezone
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import quote

from itsdangerous import BadSignature, URLSafeTimedSerializer
from jinja2 import Environment, FileSystemLoader
from sanic import Sanic, response
from sanic.request import Request

from bot.analytics.alert_book import AlertBook
from bot.clock import local_day
from bot.handoff.agents import authenticate
from bot.handoff.context import customer_context
from bot.handoff.desk import deliver_due
from bot.handoff.store import SUPERVISOR, Handoff, HandoffMessage
from bot.kb import KBError, KnowledgeBase, knowledge_base
from bot.masking import mask_sensitive
from bot.messaging.inbound import Channel
from bot.messaging.sender import MessageSender, OutboundMessage
from bot.wiring import Wiring
from connectors.console import knowledge
from connectors.console.attachments import attachment_of, file_notices
from connectors.console.canned import conversation_values, fill, load_canned
from connectors.console.cases import register_case_routes
from connectors.console.kpis import KPI_ARGS, kpi_page_values
from connectors.console.labels import load_labels
from connectors.console.rasa_api import RasaApi, RasaApiError

logger = logging.getLogger(__name__)

TEMPLATES = Path(__file__).resolve().parent / "templates"
SESSION_COOKIE = "console_session"
LOGIN_COOKIE = "console_login"
SESSION_MAX_AGE_S = 8 * 3600  # one working shift
DESK_POLL_S = 5
SEEN_EVERY_S = 60.0
MAX_REPLY = 1600
READY_TIMEOUT_S = 2.0  # a database that takes longer is not ready for agents either
REASONS = {
    "customer_request": "Lo pidió el cliente",
    "not_understood": "El bot no le entendió dos veces",
    "amount_over_threshold": "Monto sobre el límite",
    "vip_customer": "Cliente VIP",
    "dispute": "Disputa",
    "angry_language": "Cliente molesto",
    "urgent_language": "Urgente",
    "cannot_complete": "El bot no puede completarlo",
    "backend_unavailable": "Sistema caído a mitad de un trámite",
}
STATUSES = {
    "waiting": "En espera",
    "open": "Atendiendo",
    "handed_back": "Devuelto al bot",
    "closed": "Cerrado",
    "withdrawn": "Retirado por el cliente",
}
NOTICES = {
    "sent": "Respuesta enviada.",
    "held": (
        "Pasaron más de 24 horas desde el último mensaje del cliente en WhatsApp: se le envió una "
        "plantilla aprobada y tu respuesta le llega en cuanto vuelva a escribir."
    ),
    "blocked": "No se envió: el cliente se dio de baja de los mensajes.",
    "failed": "No se pudo enviar; inténtalo otra vez.",
    "empty": "Escribe un mensaje.",
    "rasa": "No se pudo actualizar la conversación en el bot; inténtalo otra vez.",
    "ended": "Esta conversación ya no está activa.",
    "note": "Escribe una nota de resolución para cerrar.",
    "handed_back": "Conversación devuelta al bot.",
    "closed": "Conversación cerrada.",
}
KB_BROKEN = "La base de conocimiento no se pudo cargar; avisa a quien la mantiene."


def _ago(moment: datetime | None, now: datetime) -> str:
    if moment is None:
        return ""
    seconds = max(0, int((now - moment).total_seconds()))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min"
    return f"{seconds // 3600} h {seconds % 3600 // 60} min"


def _when(iso: str | None) -> str:
    """`21/11 07:38 UTC` from an ISO timestamp: agents compare times, they do not read offsets."""
    if not iso:
        return ""
    try:
        return datetime.fromisoformat(iso).astimezone(timezone.utc).strftime("%d/%m %H:%M UTC")
    except ValueError:
        return iso


def create_app(
    graph: Wiring,
    secret: str,
    rasa: RasaApi,
    name: str = "agent_console",
    kb: Callable[[], KnowledgeBase] | None = None,
) -> Sanic:
    """The console over the process's graph (bot/wiring.py): its settings, clock, handoff services,
    messaging store and sender; `kb` gives the knowledge base (the process-wide one, which reloads
    itself when kb/ changes)."""
    app = Sanic(name)
    # The largest form is a reply with a file (MEDIA_MAX_BYTES) and its text: anything bigger
    # is refused (413) before it is read, not held in memory.
    app.config.REQUEST_MAX_SIZE = graph.settings.media_max_bytes + 64 * 1024
    settings, clock, services = graph.settings, graph.clock, graph.handoff
    limits = graph.console_logins()
    store = services.store
    sessions = URLSafeTimedSerializer(secret, salt="console-session")
    logins = URLSafeTimedSerializer(secret, salt="console-login")
    templates = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=True)
    templates.filters["reason"] = lambda code: REASONS.get(code, code)
    templates.filters["status"] = lambda code: STATUSES.get(code, code)
    templates.filters["when"] = _when
    # Spanish for internal names (labels.yml) and the canned replies (canned_replies.yml): read
    # once at start-up, so a broken file stops the console with what to fix.
    labels = load_labels()
    templates.filters["intent"] = labels.intent
    templates.filters["step"] = labels.step
    templates.filters["form"] = labels.form
    templates.filters["slot"] = labels.slot
    templates.filters["detail"] = labels.detail
    templates.filters["detail_value"] = labels.detail_value
    canned = {reply.id: reply for reply in load_canned()}
    notices = {**NOTICES, **file_notices(settings.media_max_bytes)}
    load_kb = kb if kb is not None else partial(knowledge_base, settings.kb_dir)

    secure_cookies = not settings.is_development
    last_marked: dict[str, float] = {}  # agent -> clock.monotonic() of the last presence write

    async def announce(event: str, handoff_id: str, **details: Any) -> None:
        # A Redis publish is a blocking round trip: in a worker thread, off the console's loop.
        await asyncio.to_thread(services.announcer.announce, event, handoff_id, **details)

    def sender() -> MessageSender:
        # First built inside the server's loop: the Twilio client's session belongs to it.
        return graph.sender()

    def set_cookie(reply: response.HTTPResponse, key: str, value: str, max_age: int) -> None:
        reply.cookies[key] = value
        reply.cookies[key]["httponly"] = True
        reply.cookies[key]["samesite"] = "Lax"
        reply.cookies[key]["max-age"] = max_age
        reply.cookies[key]["path"] = "/"
        if secure_cookies:
            reply.cookies[key]["secure"] = True

    async def session_of(request: Request) -> dict[str, Any] | None:
        raw = request.cookies.get(SESSION_COOKIE)
        if not raw:
            return None
        try:
            session = sessions.loads(raw, max_age=SESSION_MAX_AGE_S)
        except BadSignature:  # tampered with, or expired (SignatureExpired is a BadSignature)
            return None
        # Signed and fresh is not enough: the agent may have logged out (or had a new password
        # set) since, and a copy of the cookie must stop working then.
        try:
            issued = datetime.fromtimestamp(float(session["issued"]), timezone.utc)
            agent = str(session["agent"])
        except (KeyError, TypeError, ValueError):
            return None
        role = await asyncio.to_thread(store.agent_session_role, agent, issued)
        if role is None:
            return None
        await mark_seen(agent)
        return {**session, "role": role}

    async def mark_seen(agent: str) -> None:
        """Record that the agent is connected (for the customers' wait estimate), at most once a
        minute per agent: an open page polls every two seconds."""
        moment = clock.monotonic()
        if moment - last_marked.get(agent, -SEEN_EVERY_S) < SEEN_EVERY_S:
            return
        last_marked[agent] = moment
        await asyncio.to_thread(store.agent_seen, agent, clock.now())

    def csrf_ok(request: Request, session: dict[str, str]) -> bool:
        given = request.form.get("csrf") or ""
        return hmac.compare_digest(given.encode(), session["csrf"].encode())

    def render(request: Request, template: str, status: int = 200, **values: Any) -> response.HTTPResponse:
        nonce = secrets.token_urlsafe(12)
        html = templates.get_template(template).render(nonce=nonce, **values)
        reply = response.html(html, status=status)
        reply.headers["Content-Security-Policy"] = (
            f"default-src 'self'; script-src 'nonce-{nonce}'; style-src 'self' 'unsafe-inline'; "
            "img-src 'self' https: data:; frame-ancestors 'none'; form-action 'self'"
        )
        reply.headers["X-Content-Type-Options"] = "nosniff"
        reply.headers["Referrer-Policy"] = "same-origin"
        reply.headers["Cache-Control"] = "no-store"
        return reply

    def signed_in(
        request: Request, session: dict[str, Any], template: str, status: int = 200, **values: Any
    ) -> response.HTTPResponse:
        """A page of a logged-in agent: the header shows who, and the KPI link to supervisors only."""
        return render(
            request,
            template,
            status=status,
            agent=session["agent"],
            csrf=session["csrf"],
            supervisor=session["role"] == SUPERVISOR,
            **values,
        )

    def login_page(request: Request, error: str | None = None, status: int = 200) -> response.HTTPResponse:
        nonce = secrets.token_urlsafe(16)
        reply = render(request, "login.html", status=status, csrf=nonce, error=error)
        set_cookie(reply, LOGIN_COOKIE, logins.dumps(nonce), 600)
        return reply

    def queue_rows(now: datetime) -> list[dict[str, Any]]:
        rows = []
        for handoff in store.queue():
            customer = handoff.packet.get("customer") or {}
            rows.append(
                {
                    "id": handoff.id,
                    "status": handoff.status,
                    "status_label": STATUSES.get(handoff.status, handoff.status),
                    "reason": REASONS.get(handoff.reason, handoff.reason),
                    "customer": customer.get("name") or "Cliente sin ficha",
                    "phone": handoff.phone or handoff.conversation_id,
                    "channel": handoff.channel,
                    "vip": handoff.priority > 0,
                    "agent": handoff.agent or "",
                    "waiting": _ago(handoff.created_at, now),
                    "created_at": handoff.created_at.isoformat(),
                }
            )
        return rows

    def message_row(message: HandoffMessage) -> dict[str, Any]:
        return {
            "id": message.id,
            "sender": message.sender,
            "agent": message.agent,
            "text": message.text,
            "at": message.at.isoformat(),
            "at_label": _when(message.at.isoformat()),
            "attachments": [
                # The file name of an agent's upload (clean: bot/messaging/attachments.py).
                {
                    "url": url,
                    "content_type": item.get("content_type", ""),
                    "filename": item.get("filename", ""),
                }
                for item in message.attachments
                if (url := knowledge.safe_url(str(item.get("url", ""))))
            ],
        }

    async def load(handoff_id: str) -> Handoff | None:
        return await asyncio.to_thread(store.get, handoff_id)

    def back(handoff_id: str, notice: str) -> response.HTTPResponse:
        return response.redirect(f"/handoffs/{quote(handoff_id)}?notice={notice}")

    def today() -> date:
        # The project's clock in the business's zone: an article is due for review on that day.
        return local_day(clock.now(), settings.bot_timezone)

    def kb_page_values(
        raw_query: str | None, raw_country: str | None, raw_channel: str | None, review: bool
    ) -> dict[str, Any]:
        """What the knowledge base page shows (in a worker thread: a search or a reload of kb/ is
        milliseconds of CPU and file reads)."""
        try:
            base = load_kb()
        except KBError as error:
            logger.error("console: the knowledge base does not load: %s", error)
            return {"kb_error": KB_BROKEN}
        day = today()
        query = knowledge.clean_query(raw_query)
        country = knowledge.clean_country(raw_country)
        channel = knowledge.clean_channel(raw_channel)
        values: dict[str, Any] = {
            "query": query,
            "country": country,
            "channel": channel,
            "countries": knowledge.COUNTRIES,
            "channels": knowledge.CHANNELS,
            "review": review,
            "today": day.isoformat(),
            "total": len(base.articles),
            "due_count": len(knowledge.due_for_review(base, today=day)),
        }
        if review:
            values["due"] = knowledge.due_for_review(base, today=day, country=country, channel=channel)
        elif query:
            values["results"], values["verdict"] = knowledge.search(
                base, query, today=day, country=country, channel=channel
            )
        else:
            values["groups"] = knowledge.by_tag(base, today=day, country=country, channel=channel)
        return values

    def handoff_kb(handoff: Handoff, raw_query: str | None, insert: str | None) -> dict[str, Any]:
        """The knowledge base beside a conversation's reply box: the top hits for the agent's query
        and, when the agent chose one, its text for this customer's channel and country."""
        query = knowledge.clean_query(raw_query)
        channel = knowledge.clean_channel(handoff.channel)
        country = str((handoff.packet.get("customer") or {}).get("country") or "").upper() or None
        values: dict[str, Any] = {"kb_query": query, "kb_hits": [], "draft": "", "kb_error": None}
        if not query and not insert:
            return values
        try:
            base = load_kb()
        except KBError as error:
            logger.error("console: the knowledge base does not load: %s", error)
            return {**values, "kb_error": KB_BROKEN}
        if query:
            values["kb_hits"] = knowledge.search(
                base, query, today=today(), country=country, channel=channel, limit=knowledge.HANDOFF_LIMIT
            )[0]
        if insert:
            values["draft"] = (knowledge.reply_text(base, insert, country=country, channel=channel) or "")[
                :MAX_REPLY
            ]
        return values

    # --- routes ---------------------------------------------------------------------------

    # Liveness and readiness for supervisors, load balancers and probes, without a session: one
    # word each, nothing about agents, customers or the database (docs/deploy.md).
    @app.get("/health")
    async def health(_: Request) -> response.HTTPResponse:
        return response.json({"status": "ok"})

    @app.get("/ready")
    async def ready(_: Request) -> response.HTTPResponse:
        try:
            answers = await asyncio.wait_for(asyncio.to_thread(store.sql.answers), READY_TIMEOUT_S)
        except asyncio.TimeoutError:
            answers = False
        if answers:
            return response.json({"status": "ready"})
        return response.json({"status": "not ready"}, status=503)

    @app.get("/login")
    async def login_form(request: Request) -> response.HTTPResponse:
        return login_page(request)

    @app.post("/login")
    async def login(request: Request) -> response.HTTPResponse:
        try:
            expected = logins.loads(request.cookies.get(LOGIN_COOKIE, ""), max_age=600)
        except BadSignature:
            expected = None
        given = request.form.get("csrf") or ""
        if not expected or not hmac.compare_digest(given.encode(), str(expected).encode()):
            return login_page(request, "La sesión del formulario venció; vuelve a intentarlo.", status=403)
        name = (request.form.get("name") or "").strip().lower()
        password = request.form.get("password") or ""
        # The peer's address: behind a proxy that is the proxy's, shared by every agent behind it
        # (docs/agents.md); X-Forwarded-For is not read, since any client can write it.
        address = request.ip
        # Before scrypt: a locked account or address costs no hashing.
        if not await asyncio.to_thread(limits.allows, name, address):
            logger.warning("console: login refused, too many failures for %r or %s", name[:64], address)
            minutes = int(limits.window.total_seconds() // 60)
            return login_page(
                request,
                f"Demasiados intentos fallidos. Espera {minutes} minutos o pide a un supervisor "
                "que desbloquee tu cuenta.",
                status=429,
            )
        if not await asyncio.to_thread(authenticate, store, name, password):
            logger.warning("console: failed login for %r from %s", name[:64], address)
            await asyncio.to_thread(limits.failed, name, address)
            return login_page(request, "Usuario o contraseña incorrectos.", status=401)
        await asyncio.to_thread(limits.succeeded, name)
        reply = response.redirect("/")
        session = {
            "agent": name,
            "csrf": secrets.token_urlsafe(24),
            "issued": clock.now().timestamp(),
        }
        set_cookie(reply, SESSION_COOKIE, sessions.dumps(session), SESSION_MAX_AGE_S)
        del reply.cookies[LOGIN_COOKIE]
        return reply

    @app.post("/logout")
    async def logout(request: Request) -> response.HTTPResponse:
        session = await session_of(request)
        if session is None or not csrf_ok(request, session):
            return response.text("forbidden", status=403)
        # Every session of this agent ends, not only this browser's cookie: a copy of it (another
        # tab, another machine, a stolen cookie) is refused from now on.
        await asyncio.to_thread(store.end_agent_sessions, session["agent"])
        last_marked.pop(session["agent"], None)  # logging in again counts at once
        reply = response.redirect("/login")
        del reply.cookies[SESSION_COOKIE]
        return reply

    @app.get("/")
    async def queue_page(request: Request) -> response.HTTPResponse:
        session = await session_of(request)
        if session is None:
            return response.redirect("/login")
        rows = await asyncio.to_thread(queue_rows, clock.now())
        return signed_in(request, session, "queue.html", rows=rows)

    @app.get("/api/queue")
    async def queue_json(request: Request) -> response.HTTPResponse:
        if await session_of(request) is None:
            return response.json({"error": "login required"}, status=401)
        return response.json({"handoffs": await asyncio.to_thread(queue_rows, clock.now())})

    @app.get("/handoffs/<handoff_id>")
    async def conversation_page(request: Request, handoff_id: str) -> response.HTTPResponse:
        session = await session_of(request)
        if session is None:
            return response.redirect("/login")
        handoff = await load(handoff_id)
        if handoff is None:
            return response.text("not found", status=404)
        if handoff.status == "waiting" and await asyncio.to_thread(
            store.accept, handoff.id, session["agent"]
        ):
            await announce("handoff_accepted", handoff.id, agent=session["agent"])
            handoff = await load(handoff_id)
        later = await asyncio.to_thread(store.messages, handoff.id)
        kb_values = await asyncio.to_thread(
            handoff_kb, handoff, request.args.get("kb"), request.args.get("insert")
        )
        context = await asyncio.to_thread(customer_context, graph.backends.erp, store, handoff)
        packet = handoff.packet
        variables = conversation_values(packet, session["agent"], handoff.id)
        canned_replies = [
            {"id": reply.id, "title": reply.title, "text": fill(reply, variables)}
            for reply in canned.values()
        ]
        picked = canned.get(request.args.get("canned", ""))
        if picked is not None and not kb_values["draft"]:
            kb_values["draft"] = fill(picked, variables)
        # What came with the packet, then what the customer sent while waiting.
        attachments = [
            {**item, "url": url}
            for item in packet.get("attachments") or []
            if (url := knowledge.safe_url(str(item.get("url", ""))))
        ] + [item for message in later for item in message_row(message)["attachments"]]
        return signed_in(
            request,
            session,
            "conversation.html",
            handoff=handoff,
            packet=packet,
            attachments=attachments,
            history=packet.get("messages") or [],
            later=[message_row(m) for m in later],
            last_id=later[-1].id if later else 0,
            waiting=_ago(handoff.created_at, clock.now()),
            notice=notices.get(request.args.get("notice", "")),
            max_file_mb=f"{settings.media_max_bytes / (1024 * 1024):g}",
            active=handoff.active,
            context=context,
            canned=canned_replies,
            **kb_values,
        )

    @app.get("/kb")
    async def kb_page(request: Request) -> response.HTTPResponse:
        session = await session_of(request)
        if session is None:
            return response.redirect("/login")
        values = await asyncio.to_thread(
            kb_page_values,
            request.args.get("q"),
            request.args.get("country"),
            request.args.get("channel"),
            request.args.get("review") == "1",
        )
        return signed_in(request, session, "kb.html", **values)

    @app.get("/kpis")
    async def kpis_page(request: Request) -> response.HTTPResponse:
        session = await session_of(request)
        if session is None:
            return response.redirect("/login")
        if session["role"] != SUPERVISOR:
            # The figures of the whole team are for supervisors (docs/kpis.md, "Who sees them").
            return signed_in(request, session, "forbidden.html", status=403)
        values = await asyncio.to_thread(
            kpi_page_values,
            store.sql,
            settings.bot_timezone,
            clock.now(),
            {name: request.args.get(name) for name in KPI_ARGS},
        )
        return signed_in(request, session, "kpis.html", **values)

    @app.post("/kpis/alerts/<alert_id:int>/ack")
    async def acknowledge_alert(request: Request, alert_id: int) -> response.HTTPResponse:
        """A supervisor has seen the alert: who and when are recorded, it leaves the list, and a
        webhook not sent yet is not sent (docs/kpis.md, "Alerts")."""
        session = await session_of(request)
        if session is None:
            return response.redirect("/login")
        if session["role"] != SUPERVISOR:
            return signed_in(request, session, "forbidden.html", status=403)
        if not csrf_ok(request, session):
            return response.text("forbidden", status=403)
        await asyncio.to_thread(AlertBook(store.sql).acknowledge, alert_id, session["agent"], clock.now())
        return response.redirect("/kpis", status=303)

    @app.get("/api/handoffs/<handoff_id>/kb")
    async def handoff_kb_json(request: Request, handoff_id: str) -> response.HTTPResponse:
        """The same search as the reply box's form, for its script: the hits with their text for
        this conversation, so the agent's draft stays in the textarea."""
        if await session_of(request) is None:
            return response.json({"error": "login required"}, status=401)
        handoff = await load(handoff_id)
        if handoff is None:
            return response.json({"error": "not found"}, status=404)
        values = await asyncio.to_thread(handoff_kb, handoff, request.args.get("q"), None)
        if values["kb_error"]:
            return response.json({"error": values["kb_error"]}, status=503)
        hits = [
            {
                key: hit[key]
                for key in ("id", "title", "short", "text", "link", "review_due", "last_reviewed", "owner")
            }
            for hit in values["kb_hits"]
        ]
        return response.json(
            {"query": values["kb_query"], "hits": hits}, headers={"Cache-Control": "no-store"}
        )

    @app.get("/api/handoffs/<handoff_id>/messages")
    async def messages_json(request: Request, handoff_id: str) -> response.HTTPResponse:
        if await session_of(request) is None:
            return response.json({"error": "login required"}, status=401)
        handoff = await load(handoff_id)
        if handoff is None:
            return response.json({"error": "not found"}, status=404)
        try:
            after = int(request.args.get("after", "0"))
        except ValueError:
            after = 0
        later = await asyncio.to_thread(store.messages, handoff.id, after)
        return response.json(
            {
                "status": handoff.status,
                "status_label": STATUSES.get(handoff.status, handoff.status),
                "messages": [message_row(m) for m in later],
            }
        )

    @app.get("/handoffs/<handoff_id>/packet.json")
    async def packet_json(request: Request, handoff_id: str) -> response.HTTPResponse:
        if await session_of(request) is None:
            return response.json({"error": "login required"}, status=401)
        handoff = await load(handoff_id)
        if handoff is None:
            return response.json({"error": "not found"}, status=404)
        return response.json(handoff.packet, headers={"Cache-Control": "no-store"})

    @app.post("/handoffs/<handoff_id>/reply")
    async def reply(request: Request, handoff_id: str) -> response.HTTPResponse:
        session = await session_of(request)
        if session is None or not csrf_ok(request, session):
            return response.text("forbidden", status=403)
        handoff = await load(handoff_id)
        if handoff is None:
            return response.text("not found", status=404)
        if not handoff.active:
            return back(handoff_id, "ended")
        # A browser sends a textarea's line breaks as CRLF: the customer gets plain "\n" (on SMS
        # every "\r" would be one more character, and a multi-line article has many).
        text = (request.form.get("text") or "").replace("\r\n", "\n").strip()[:MAX_REPLY]
        agent = session["agent"]
        twilio = handoff.channel in (Channel.WHATSAPP.value, Channel.SMS.value) and bool(handoff.phone)
        # A file goes with the text (or alone), stored for this number only (console/attachments.py).
        attached = (
            await attachment_of(graph, request.files, handoff.phone, agent, Channel(handoff.channel))
            if twilio
            else None
        )
        if isinstance(attached, str):
            return back(handoff_id, attached)
        if not text and attached is None:
            return back(handoff_id, "empty")
        if handoff.status == "waiting":
            await asyncio.to_thread(store.accept, handoff.id, agent)
        held = False
        if twilio:
            # Outside the WhatsApp window the console's template goes out and the reply is held
            # until the customer writes (bot/messaging/sender.py): the agent is told so.
            channel = Channel(handoff.channel)
            body, media = attached.outgoing(channel, text) if attached else (text, ())
            outgoing = sender()
            result = await outgoing.send(
                OutboundMessage(
                    handoff.phone, channel, body=body, media_urls=media,
                    template=outgoing.templates.meant_for("console_reply"), source="console",
                )
            )  # fmt: skip
            if result.status in ("blocked", "failed"):
                return back(handoff_id, result.status)
            held = result.status == "held"
        shown = mask_sensitive(text or (f"[{attached.filename}]" if attached else ""))
        records = [attached.record()] if attached else None
        await asyncio.to_thread(store.add_message, handoff.id, "agent", shown, agent, records)
        event: dict[str, Any] = {"event": "bot", "text": shown, "metadata": {"agent": agent}}
        if attached:
            event["data"] = {"attachment": attached.url}
        try:
            await rasa.append_events(handoff.conversation_id, [event])
        except RasaApiError as error:
            logger.error("console: reply sent but not written into the tracker: %s", error)
            return back(handoff_id, "rasa")
        return back(handoff_id, "held" if held else "sent")

    async def end(request: Request, handoff_id: str, status: str) -> response.HTTPResponse:
        session = await session_of(request)
        if session is None or not csrf_ok(request, session):
            return response.text("forbidden", status=403)
        handoff = await load(handoff_id)
        if handoff is None:
            return response.text("not found", status=404)
        if not handoff.active:
            return back(handoff_id, "ended")
        note = (request.form.get("note") or "").strip()[:2000] or None
        if status == "closed" and not note:
            return back(handoff_id, "note")
        # Resume first: if Rasa is unreachable the handoff stays active and the agent can retry.
        # The pause stopped the bot before its action_listen: add it, so the rules read the
        # hand-back as a fresh turn of the customer's.
        try:
            await rasa.append_events(
                handoff.conversation_id, [{"event": "resume"}, {"event": "action", "name": "action_listen"}]
            )
        except RasaApiError as error:
            logger.error(
                "console: handoff %s not handed back, Rasa refused the resume: %s", handoff.id, error
            )
            return back(handoff_id, "rasa")
        # Then end it, so the customer's answer to the satisfaction question goes to the bot.
        if not await asyncio.to_thread(store.end, handoff.id, status, note and mask_sensitive(note)):
            return back(handoff_id, "ended")
        twilio = handoff.channel in (Channel.WHATSAPP.value, Channel.SMS.value)
        try:
            said = await rasa.trigger_intent(
                handoff.conversation_id, "handoff_returned", output_channel="twilio" if twilio else None
            )
        except RasaApiError as error:
            # Resumed and ended: the customer's next message reaches the bot; only "I'm back" is missing.
            logger.error(
                "console: handoff %s ended but the bot did not say it is back: %s", handoff.id, error
            )
            return back(handoff_id, "rasa")
        for message in said:
            if message.get("text"):
                await asyncio.to_thread(store.add_message, handoff.id, "bot", mask_sensitive(message["text"]))
        await announce(f"handoff_{status}", handoff.id, agent=session["agent"])
        return back(handoff_id, status)

    @app.post("/handoffs/<handoff_id>/handback")
    async def hand_back(request: Request, handoff_id: str) -> response.HTTPResponse:
        return await end(request, handoff_id, "handed_back")

    @app.post("/handoffs/<handoff_id>/close")
    async def close(request: Request, handoff_id: str) -> response.HTTPResponse:
        return await end(request, handoff_id, "closed")

    register_case_routes(
        app, graph, rasa, session_of=session_of, csrf_ok=csrf_ok, render=render, sender=sender, when=_when
    )

    # --- the desk webhook's retry loop ---------------------------------------------------------

    async def desk_loop() -> None:
        while True:
            try:
                await asyncio.to_thread(
                    deliver_due,
                    store,
                    settings.handoff_webhook_url,
                    settings.handoff_webhook_secret,
                    clock.now(),
                )
            except Exception:
                logger.exception("console: desk delivery round failed; next round in %d s", DESK_POLL_S)
            await asyncio.sleep(DESK_POLL_S)

    if settings.handoff_webhook_url:

        @app.listener("after_server_start")
        async def start_desk_loop(app: Sanic, _loop: Any) -> None:
            app.add_task(desk_loop())

    async def warm_knowledge_base() -> None:
        # The first load parses kb/ and maps the sentence model: seconds on a busy machine, paid
        # at start rather than by the first agent who searches.
        try:
            await asyncio.to_thread(load_kb)
        except KBError as error:
            logger.error("console: the knowledge base does not load: %s", error)
        except Exception:
            logger.exception("console: the knowledge base could not be loaded at start")

    @app.listener("after_server_start")
    async def start_warming_knowledge_base(app: Sanic, _loop: Any) -> None:
        app.add_task(warm_knowledge_base())

    @app.listener("before_server_stop")
    async def close_sender(*_: Any) -> None:
        if graph.message_sender is not None:
            await graph.message_sender.transport.close()

    return app
