"""Media the assistant serves Twilio: an agent's uploaded file (kept in `media_files`) or an
invoice's PDF (from the ERP), each opened only through a verified media URL (bot/media_links.py).

An upload is accepted by what its bytes are, never by its name or the browser's content type:
a PDF, a PNG or a JPEG (what WhatsApp shows as a document or an image), at most MEDIA_MAX_BYTES.
It is stored durably under a random id before any message names it, so a URL sent to Twilio
always finds it, from any replica.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa

from bot.adapters.base import Erp
from bot.adapters.sql import SqlStore, to_db_time
from bot.clock import Clock
from bot.invoice_documents import owned_invoice_pdf
from bot.media_links import INVOICE, UPLOAD, MediaGrant
from bot.messaging.store import media_files

# (leading bytes, content type, extension): the formats an agent may send.
SIGNATURES = (
    (b"%PDF-", "application/pdf", "pdf"),
    (b"\x89PNG\r\n\x1a\n", "image/png", "png"),
    (b"\xff\xd8\xff", "image/jpeg", "jpg"),
)
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


class AttachmentRefused(ValueError):
    """The upload is empty, too large, or not a PDF, PNG or JPEG; `reason` says which."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason  # empty | too_large | type


@dataclass(frozen=True)
class StoredFile:
    id: str
    phone: str
    content_type: str
    filename: str
    size: int


@dataclass(frozen=True)
class ServedMedia:
    content_type: str
    filename: str
    data: bytes


def sniff(data: bytes) -> tuple[str, str] | None:
    """(content type, extension) of `data` by its leading bytes, if it is a format we send."""
    for magic, content_type, extension in SIGNATURES:
        if data.startswith(magic):
            return content_type, extension
    return None


def clean_filename(given: str, extension: str) -> str:
    """A name safe in a URL and a header: ASCII letters, digits, dot, dash, underscore, with the
    extension of what the bytes really are (`contrato final.exe` sent as a PDF is `contrato_final.pdf`)."""
    stem = _UNSAFE.sub("_", (given or "").rsplit("/", 1)[-1].rsplit("\\", 1)[-1].rsplit(".", 1)[0])
    stem = stem.strip("._")[:80] or "archivo"
    return f"{stem}.{extension}"


class AttachmentStore:
    """The `media_files` table: what agents uploaded, for whom."""

    def __init__(self, store: SqlStore, clock: Clock, max_bytes: int) -> None:
        self._store, self._clock, self.max_bytes = store, clock, max_bytes

    def save(self, phone: str, data: bytes, filename: str, agent: str) -> StoredFile:
        """Check and keep an agent's upload for `phone`; raises AttachmentRefused."""
        if not data:
            raise AttachmentRefused("empty")
        if len(data) > self.max_bytes:
            raise AttachmentRefused("too_large")
        kind = sniff(data)
        if kind is None:
            raise AttachmentRefused("type")
        content_type, extension = kind
        stored = StoredFile(
            secrets.token_urlsafe(18), phone, content_type, clean_filename(filename, extension), len(data)
        )
        with self._store.connect() as conn:
            conn.execute(
                media_files.insert().values(
                    id=stored.id, phone=phone, content_type=content_type, filename=stored.filename,
                    size=stored.size, data=data, uploaded_by=agent, uploaded_at=to_db_time(self._clock.now()),
                )
            )  # fmt: skip
        return stored

    def file_for(self, file_id: str, phone: str) -> ServedMedia | None:
        """The upload `file_id` if it was sent to `phone`, else None."""
        with self._store.connect() as conn:
            row = conn.execute(
                sa.select(media_files.c.content_type, media_files.c.filename, media_files.c.data).where(
                    media_files.c.id == file_id, media_files.c.phone == phone
                )
            ).first()
        return ServedMedia(row.content_type, row.filename, bytes(row.data)) if row else None

    def delete_uploaded_before(self, cutoff: datetime, batch: int = 500) -> int:
        """Delete the files uploaded before `cutoff`, `batch` rows per transaction (each row holds
        up to MEDIA_MAX_BYTES: short transactions, no long lock); returns how many went."""
        deleted = 0
        while True:
            with self._store.connect() as conn:
                ids = (
                    conn.execute(
                        sa.select(media_files.c.id)
                        .where(media_files.c.uploaded_at < to_db_time(cutoff))
                        .order_by(media_files.c.uploaded_at)
                        .limit(batch)
                    )
                    .scalars()
                    .all()
                )
                if ids:
                    conn.execute(media_files.delete().where(media_files.c.id.in_(ids)))
            deleted += len(ids)
            if len(ids) < batch:
                return deleted


def open_media(grant: MediaGrant, erp: Erp, attachments: AttachmentStore) -> ServedMedia | None:
    """What a verified media URL opens, if it still belongs to the one it was issued for."""
    if grant.kind == INVOICE:
        document = owned_invoice_pdf(erp, grant.owner, grant.ref)
        return ServedMedia("application/pdf", f"factura-{grant.ref}.pdf", document) if document else None
    if grant.kind == UPLOAD:
        return attachments.file_for(grant.ref, grant.owner)
    return None
