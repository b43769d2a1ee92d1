"""An agent's file in a handoff reply or a case message: checked, stored, and sent as media.

The file comes in the reply form (multipart, same session and CSRF token as the text). It is
accepted by its bytes (a PDF, PNG or JPEG, at most MEDIA_MAX_BYTES: bot/messaging/attachments.py),
stored in `media_files` for the one number it is sent to, and reaches the customer through the
one MessageSender: on WhatsApp as media at an expiring signed URL the Rasa server serves
(bot/media_links.py), on SMS as that link in the text (Twilio sends no MMS to most of Latin
America).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

from bot.media_links import UPLOAD
from bot.messaging.attachments import AttachmentRefused
from bot.messaging.inbound import Channel
from bot.messaging.sender import WHATSAPP_WINDOW
from bot.wiring import Wiring

logger = logging.getLogger(__name__)

FILE_FIELD = "file"


def file_notices(max_bytes: int) -> dict[str, str]:
    """What the agent reads when a file is refused (the notice names `attachment_of` returns)."""
    limit = f"{max_bytes / (1024 * 1024):g}".replace(".", ",")
    return {
        "file_empty": "El archivo está vacío.",
        "file_too_large": f"El archivo supera el límite de {limit} MB.",
        "file_type": "Solo se pueden enviar PDF, PNG o JPEG (se revisa el contenido del archivo, "
        "no su nombre).",
        "file_failed": "No se pudo guardar el archivo; inténtalo otra vez.",
        "file_window": "Pasaron más de 24 horas desde el último mensaje del cliente en WhatsApp: "
        "solo se le puede enviar texto (le llega cuando vuelva a escribir). Envía el archivo cuando "
        "responda.",
    }


@dataclass(frozen=True)
class Attachment:
    """The file of a reply, ready to send: its URL as media (WhatsApp) or in the text (SMS)."""

    url: str
    content_type: str
    filename: str

    def body_with_link(self, text: str) -> str:
        return f"{text}\n{self.url}" if text else self.url

    def outgoing(self, channel: Channel, text: str) -> tuple[str, tuple[str, ...]]:
        """(body, media URLs) of the message on `channel`."""
        if channel is Channel.WHATSAPP:
            return text, (self.url,)
        return self.body_with_link(text), ()

    def record(self) -> dict[str, str]:
        """How the console's history keeps it."""
        return {"url": self.url, "content_type": self.content_type, "filename": self.filename}


async def attachment_of(
    graph: Wiring, files: Any, phone: str, agent: str, channel: Channel
) -> Attachment | str | None:
    """The form's file stored for `phone` with its signed URL; a notice name when refused; None
    when the form has no file."""
    given = files.get(FILE_FIELD) if files else None
    if given is None or (not given.body and not given.name):
        return None
    if graph.attachments is None:
        return "file_failed"
    if channel is Channel.WHATSAPP and not await _in_window(graph, phone):
        # Held until the customer writes, its link would have expired by then: not sent at all.
        return "file_window"
    try:
        stored = await asyncio.to_thread(graph.attachments.save, phone, given.body, given.name or "", agent)
    except AttachmentRefused as refused:
        return f"file_{refused.reason}"
    except Exception:
        logger.exception("console: %s's file for %s could not be stored", agent, phone)
        return "file_failed"
    link = graph.media_links().sign(UPLOAD, stored.id, phone, graph.clock.now(), filename=stored.filename)
    logger.info(
        "console: %s sent %s (%s, %d bytes) to %s", agent, stored.id, stored.content_type, stored.size, phone
    )
    return Attachment(link.url, stored.content_type, stored.filename)


async def _in_window(graph: Wiring, phone: str) -> bool:
    contact = await asyncio.to_thread(graph.messaging.contact, phone)
    last = contact.whatsapp_last_inbound_at if contact else None
    return last is not None and graph.clock.now() - last <= WHATSAPP_WINDOW
