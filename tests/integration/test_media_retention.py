"""The agents' files are deleted MEDIA_RETENTION_DAYS after their link expired (issue 18's
clean-up): by the outbox worker's process, on the project clock, on SQLite and PostgreSQL.

Files are uploaded through the product's AttachmentStore at fixed moments of a FixedClock; the
purge runs at another fixed moment; what is left is read back from `media_files`. The media
route (the Rasa server's) then answers 404 for a purged file even with a correctly signed URL.
"""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

import pytest
import sqlalchemy as sa

from bot.clock import FixedClock
from bot.media_links import UPLOAD, MediaLinkSigner
from bot.messaging.attachments import AttachmentStore, open_media
from bot.messaging.media_retention import MediaRetention
from bot.messaging.store import media_files
from bot.settings import Settings, SettingsError
from connectors.outbox_worker import build_media_retention, purge_media_forever
from tests.conftest import JULIAN_AR, MARIANA_MX, NOW
from tests.console_helpers import console_graph

pytestmark = pytest.mark.integration

PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"
TTL = timedelta(hours=1)
KEEP = timedelta(days=30)


def upload_at(
    attachments: AttachmentStore, clock: FixedClock, ago: timedelta, phone: str = MARIANA_MX
) -> str:
    """A file an agent uploaded `ago` before NOW; its id."""
    clock.set(NOW - ago)
    try:
        return attachments.save(phone, PDF, "comprobante.pdf", "ana").id
    finally:
        clock.set(NOW)


def kept(store) -> set[str]:
    with store.connect() as conn:
        return set(conn.execute(sa.select(media_files.c.id)).scalars())


def test_files_go_thirty_days_after_their_link_expired_and_not_a_minute_before(store):
    clock = FixedClock(NOW)
    attachments = AttachmentStore(store, clock, 1024 * 1024)
    past = upload_at(attachments, clock, TTL + KEEP + timedelta(minutes=1))  # retention over
    older = upload_at(attachments, clock, timedelta(days=400), phone=JULIAN_AR)
    edge = upload_at(attachments, clock, TTL + KEEP)  # expired exactly 30 days ago: kept
    recent = upload_at(attachments, clock, timedelta(days=3))  # link expired, within retention
    live = upload_at(attachments, clock, timedelta(minutes=5))  # its link still works
    retention = MediaRetention(attachments, clock.now, link_ttl=TTL, keep_after_expiry=KEEP)

    assert retention.purge() == 2
    assert kept(store) == {edge, recent, live}
    assert attachments.file_for(past, MARIANA_MX) is None and attachments.file_for(older, JULIAN_AR) is None
    assert attachments.file_for(live, MARIANA_MX).data == PDF
    assert retention.purge() == 0  # nothing more at the same moment

    clock.advance(timedelta(minutes=1))  # a minute later the edge one has had its 30 days
    assert retention.purge() == 1 and kept(store) == {recent, live}


def test_the_purge_deletes_in_batches_until_none_is_left(store):
    clock = FixedClock(NOW)
    attachments = AttachmentStore(store, clock, 1024 * 1024)
    old = {upload_at(attachments, clock, timedelta(days=60 + n)) for n in range(7)}
    young = upload_at(attachments, clock, timedelta(days=1))
    assert old <= kept(store)
    assert attachments.delete_uploaded_before(NOW - timedelta(days=31), batch=3) == 7
    assert kept(store) == {young}


def test_a_purged_file_is_not_served_even_with_a_valid_link(store):
    clock = FixedClock(NOW - TTL - KEEP - timedelta(hours=2))
    attachments = AttachmentStore(store, clock, 1024 * 1024)
    stored = attachments.save(MARIANA_MX, PDF, "comprobante.pdf", "ana")
    # A link signed with a TTL far longer than the retention's (an operator's change): still valid.
    signer = MediaLinkSigner("media-secret", "http://127.0.0.1:5005", KEEP + timedelta(days=60))
    link = signer.sign(UPLOAD, stored.id, MARIANA_MX, clock.now())
    clock.set(NOW)
    grant = signer.verify(link.url.rsplit("/", 1)[-1], NOW)
    assert open_media(grant, erp=None, attachments=attachments).data == PDF
    MediaRetention(attachments, clock.now, link_ttl=TTL, keep_after_expiry=KEEP).purge()
    assert open_media(grant, erp=None, attachments=attachments) is None


def test_the_outbox_workers_process_purges_with_the_configured_retention(store):
    settings = Settings.from_env(
        {"BOT_ENV": "development", "MEDIA_LINK_TTL": "120", "MEDIA_RETENTION_DAYS": "10"}
    )
    clock = FixedClock(NOW)
    graph = console_graph(settings, store, clock, attachments=AttachmentStore(store, clock, 1024 * 1024))
    gone = upload_at(graph.attachments, clock, timedelta(days=10, hours=2, minutes=1))
    stays = upload_at(graph.attachments, clock, timedelta(days=10, hours=1, minutes=59))
    retention = build_media_retention(graph)
    assert retention is not None
    assert retention.cutoff(NOW) == NOW - timedelta(days=10, hours=2)

    async def run_until_purged() -> None:
        stop = asyncio.Event()
        loop = asyncio.create_task(purge_media_forever(retention, stop, interval=timedelta(hours=1)))
        deadline = time.monotonic() + 30
        while gone in await asyncio.to_thread(kept, store):
            assert time.monotonic() < deadline, "the worker's loop never purged"
            await asyncio.sleep(0.05)
        stop.set()
        await asyncio.wait_for(loop, 30)  # it stops at once, without waiting out its hour

    asyncio.run(run_until_purged())
    assert kept(store) == {stays}


def test_a_retention_shorter_than_the_longest_link_is_refused():
    with pytest.raises(SettingsError, match="MEDIA_RETENTION_DAYS"):
        Settings.from_env({"BOT_ENV": "development", "MEDIA_RETENTION_DAYS": "3"})
    assert Settings.from_env({"BOT_ENV": "development"}).media_retention_days == 30
