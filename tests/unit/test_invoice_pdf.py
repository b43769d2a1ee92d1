"""The embedded ERP's invoice PDF (bot/adapters/invoice_pdf.py), which invoice a request names
(bot/invoice_documents.py), and what an agent's upload is taken for (bot/messaging/attachments.py)."""

from __future__ import annotations

import re
from datetime import date
from decimal import Decimal

import pytest

from bot.adapters.invoice_pdf import render_invoice_pdf
from bot.invoice_documents import MESSAGE_FIELDS, InvoiceMessagesError, invoice_messages, invoices_asked
from bot.messaging.attachments import clean_filename, sniff
from bot.records import Customer, Invoice, InvoiceStatus

MARIANA = Customer("C-001", "Mariana López", "+525512345678", "MX")


def invoice(number: str, issued: date, amount: str = "1234.50", status=InvoiceStatus.OPEN) -> Invoice:
    return Invoice(number, "C-001", Decimal(amount), "MXN", issued, issued, status, "PED-1001")


def test_the_pdf_is_a_pdf_with_the_invoice_number_customer_and_amount_in_its_text():
    data = render_invoice_pdf(invoice("F-2001", date(2026, 11, 24)), MARIANA, compress=False)
    assert data.startswith(b"%PDF-1.") and data.rstrip().endswith(b"%%EOF")
    assert b"startxref" in data and b"/Type /Catalog" in data
    text = data.decode("latin-1")
    assert "(Factura F-2001)" in text
    assert "Mariana López" in text  # Latin-1 in the core font: accents kept
    assert "$1,234.50" in text and "PED-1001" in text and "Pendiente de pago" in text


def test_compressed_as_served_it_still_names_the_invoice_in_its_title():
    data = render_invoice_pdf(invoice("F-2002", date(2026, 11, 14), status=InvoiceStatus.PAID), MARIANA)
    assert data.startswith(b"%PDF-") and data.rstrip().endswith(b"%%EOF")
    assert b"/Title (Factura F-2002)" in data
    assert b"/Filter /FlateDecode" in data  # the page itself is compressed
    assert len(data) < 10_000


def test_a_name_outside_latin1_does_not_break_the_document():
    stranger = Customer("C-009", "Ana 🌸 Ng", "+525500000000", "MX")
    data = render_invoice_pdf(invoice("F-3000", date(2026, 10, 3)), stranger, compress=False)
    assert b"Ana ? Ng" in data


INVOICES = [
    invoice("F-1001", date(2025, 10, 20)),
    invoice("F-2001", date(2026, 10, 2)),
    invoice("F-2002", date(2026, 10, 28)),
    invoice("F-2003", date(2026, 11, 14)),
]


@pytest.mark.parametrize(
    ("text", "asked", "found"),
    [
        (
            "mandame la factura de octubre",
            "octubre de 2026",
            ["F-2002", "F-2001"],
        ),  # latest year, newest first
        ("la factura de OCTUBRE del 2025 porfa", "octubre de 2025", ["F-1001"]),
        ("factura octubre 2025", "octubre de 2025", ["F-1001"]),
        ("me pasas la de noviembre?", "noviembre de 2026", ["F-2003"]),
        ("la factura f2003", "F-2003", ["F-2003"]),
        ("quiero la F-2002", "F-2002", ["F-2002"]),
        ("la de setiembre", "setiembre", []),  # Peru's spelling: a month, none that month
        ("la factura F-9999", "F-9999", []),
        ("me mandas mis facturas?", None, []),
    ],
)
def test_the_invoice_asked_is_found_by_month_or_number(text, asked, found):
    request = invoices_asked(text, INVOICES)
    assert request.asked == asked and [item.id for item in request.found] == found


def test_the_messages_file_must_fill_every_placeholder(tmp_path):
    shipped = invoice_messages()
    assert set(shipped) == set(MESSAGE_FIELDS)
    broken = tmp_path / "invoice_messages.yml"
    broken.write_text('document: "Tu factura"\nlink: "{url}"\nnot_found: "no"\n', encoding="utf-8")
    with pytest.raises(InvoiceMessagesError, match="document"):
        invoice_messages(broken)


@pytest.mark.parametrize(
    ("data", "kind"),
    [
        (b"%PDF-1.7\n...", ("application/pdf", "pdf")),
        (b"\x89PNG\r\n\x1a\n\x00\x00", ("image/png", "png")),
        (b"\xff\xd8\xff\xe0\x00\x10JFIF", ("image/jpeg", "jpg")),
        (b"MZ\x90\x00 an executable", None),
        (b"<html><script>alert(1)</script>", None),
        (b"GIF89a", None),
        (b" %PDF-1.7", None),  # the signature must open the file
    ],
)
def test_an_upload_is_what_its_bytes_say(data, kind):
    assert sniff(data) == kind


def test_file_names_are_made_safe_and_take_the_real_extension():
    assert clean_filename("Contrato final.exe", "pdf") == "Contrato_final.pdf"
    assert clean_filename("../../etc/passwd", "png") == "passwd.png"
    assert clean_filename('<img src=x onerror="1">.jpg', "jpg") == "img_src_x_onerror_1.jpg"
    assert clean_filename("", "pdf") == "archivo.pdf"
    assert re.fullmatch(r"[A-Za-z0-9._-]+", clean_filename("ñandú ü.pdf", "pdf"))
