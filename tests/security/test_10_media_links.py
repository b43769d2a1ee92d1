"""Media the assistant serves Twilio (issue 18): invoice PDFs and agents' files at
/webhooks/twilio/media/<token>. Nothing there asks for a login (Twilio fetches it), so the URL is
the credential: these tests send the real route forged, altered, expired and re-aimed tokens and
find that a forgery is refused with 403 and an expired link with 410 before the ERP or the
files table is asked anything, and that a genuine token opens only what it names for whom it
names: another customer's invoice or another number's file answers 404 like one that does not
exist.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
import requests
from itsdangerous import URLSafeSerializer

from bot.adapters.sql import SqlCaseBook, SqlCrm, SqlErp
from bot.backends import Backends
from bot.clock import FixedClock
from bot.demo import load_demo
from bot.media_links import INVOICE, MEDIA_SALT, UPLOAD, MediaLinkSigner
from bot.messaging.attachments import AttachmentStore
from bot.settings import DEFAULT_DEMO_DATA
from tests.conftest import JULIAN_AR, MARIANA_MX, NOW, TODAY
from tests.served_app import served_media_route

pytestmark = pytest.mark.integration

SECRET = "media-secret-under-test"
PDF = b"%PDF-1.4\n% the agent's document\n%%EOF\n"


class CountingErp(SqlErp):
    """The embedded ERP, counting what the media route asks it."""

    calls = 0

    def invoices_of(self, customer_id):
        CountingErp.calls += 1
        return super().invoices_of(customer_id)

    def invoice_pdf(self, invoice_id):
        CountingErp.calls += 1
        return super().invoice_pdf(invoice_id)


@pytest.fixture
def media(wire, store, settings):
    load_demo(store, DEFAULT_DEMO_DATA, settings, today=TODAY, force=True)
    clock = FixedClock(NOW)
    files = AttachmentStore(store, clock, 1024 * 1024)
    CountingErp.calls = 0
    served = served_media_route(clock)
    base = f"http://127.0.0.1:{served.port}"
    signer = MediaLinkSigner(SECRET, base, timedelta(minutes=30))
    wire(
        clock=clock,
        backends=Backends(crm=SqlCrm(store), erp=CountingErp(store), cases=SqlCaseBook(store)),
        media_signer=signer,
        attachments=files,
    )
    yield signer, clock, files, f"{base}/webhooks/twilio/media"
    served.stop()


def get(url: str) -> requests.Response:
    return requests.get(url, timeout=10)


def test_a_genuine_invoice_link_opens_that_customers_invoice(media):
    signer, clock, _, _ = media
    answer = get(signer.sign(INVOICE, "F-2001", "C-001", clock.now(), filename="factura-F-2001.pdf").url)
    assert answer.status_code == 200 and answer.content.startswith(b"%PDF-")


@pytest.mark.parametrize(
    "token",
    [
        "x",
        "eyJrIjoiaW52b2ljZSJ9.forged",
        URLSafeSerializer("not-our-secret", salt=MEDIA_SALT).dumps(
            {"k": INVOICE, "r": "F-2001", "o": "C-001", "exp": 4102444800}
        ),
        URLSafeSerializer(SECRET, salt="autoservicio.payment-link.v1").dumps(
            {"k": INVOICE, "r": "F-2001", "o": "C-001", "exp": 4102444800}
        ),
    ],
)
def test_a_forged_token_is_refused_with_403_before_any_lookup(media, token):
    _, _, _, base = media
    assert get(f"{base}/{token}").status_code == 403
    assert get(f"{base}/{token}/factura-F-2001.pdf").status_code == 403
    assert CountingErp.calls == 0


def test_an_altered_genuine_token_is_forged(media):
    signer, clock, _, _ = media
    url = signer.sign(INVOICE, "F-2001", "C-001", clock.now()).url
    payload, signature = url.rsplit("/", 1)[1].rsplit(".", 1)
    # Re-aim the same signature at Julián's invoice: the payload no longer matches it.
    other = URLSafeSerializer("x", salt=MEDIA_SALT).dumps(
        {"k": INVOICE, "r": "F-2003", "o": "C-002", "exp": 1}
    )
    forged = f"{other.rsplit('.', 1)[0]}.{signature}"
    assert get(url.rsplit("/", 1)[0] + "/" + forged).status_code == 403
    assert CountingErp.calls == 0


def test_an_expired_link_is_gone_with_410_before_any_lookup(media):
    signer, clock, files, _ = media
    invoice_url = signer.sign(INVOICE, "F-2001", "C-001", clock.now()).url
    stored = files.save(MARIANA_MX, PDF, "comprobante.pdf", "ana")
    file_url = signer.sign(UPLOAD, stored.id, MARIANA_MX, clock.now()).url
    clock.advance(timedelta(minutes=30))
    assert get(invoice_url).status_code == 410
    assert get(file_url).status_code == 410
    assert CountingErp.calls == 0


def test_a_link_for_another_customer_opens_nothing_of_this_one(media):
    signer, clock, files, _ = media
    # Signed by us, for Julián (C-002), naming Mariana's invoice: answered like a missing one.
    assert get(signer.sign(INVOICE, "F-2001", "C-002", clock.now()).url).status_code == 404
    assert get(signer.sign(INVOICE, "F-9999", "C-001", clock.now()).url).status_code == 404
    # A file sent to Mariana, asked for as Julián's.
    stored = files.save(MARIANA_MX, PDF, "comprobante.pdf", "ana")
    assert get(signer.sign(UPLOAD, stored.id, JULIAN_AR, clock.now()).url).status_code == 404
    mine = get(signer.sign(UPLOAD, stored.id, MARIANA_MX, clock.now()).url)
    assert mine.status_code == 200 and mine.content == PDF
    assert mine.headers["X-Content-Type-Options"] == "nosniff"
    assert mine.headers["Content-Type"] == "application/pdf"
