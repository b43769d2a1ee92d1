"""How long the files agents send customers are kept: deleted MEDIA_RETENTION_DAYS after their link
expired. The outbox worker's process runs the purge (connectors/outbox_worker.py).

A file's link is signed when it is uploaded and works for MEDIA_LINK_TTL (bot/media_links.py);
after that nobody can open it, and the row (up to MEDIA_MAX_BYTES of a customer's document) is
kept only so an agent can answer "what did you send me?" for a while. Invoice PDFs are not kept
at all: the ERP renders one for each verified request (bot/invoice_documents.py), so there is
nothing of theirs to delete. Time comes from the project clock: tests purge at fixed moments.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from bot.messaging.attachments import AttachmentStore

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class MediaRetention:
    """Deletes the uploaded files whose link expired more than `keep_after_expiry` ago."""

    attachments: AttachmentStore
    now: Callable[[], datetime]  # the project clock's
    link_ttl: timedelta  # MEDIA_LINK_TTL: a file's link expires this long after its upload
    keep_after_expiry: timedelta  # MEDIA_RETENTION_DAYS

    def cutoff(self, now: datetime) -> datetime:
        """Files uploaded before this moment have had an expired link for the whole retention."""
        return now - self.link_ttl - self.keep_after_expiry

    def purge(self) -> int:
        """Delete what is past its retention now; returns how many files went."""
        cutoff = self.cutoff(self.now())
        deleted = self.attachments.delete_uploaded_before(cutoff)
        if deleted:
            logger.info("media retention: deleted %d file(s) uploaded before %s", deleted, cutoff.isoformat())
        return deleted
