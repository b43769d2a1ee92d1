"""The embedded ERP's invoice as a PDF document, drawn from the invoice's own data with fpdf2.

A business on the `rest` backend serves its own (fiscally valid) PDF at GET /invoices/{id}/pdf;
the embedded SQL ERP, which has no document of its own, renders this one so the demo and a
business without an ERP still send something a customer can keep. Kept in the adapter layer
because the SQL ERP (and the reference server, through it) renders it.
"""

from __future__ import annotations

from fpdf import FPDF

from bot.money import format_due_date, format_money
from bot.records import Customer, Invoice, InvoiceStatus

PDF_CONTENT_TYPE = "application/pdf"
FOOTER = "Representación del comprobante generada por el asistente a partir de los datos del ERP."
STATUS_WORDS = {InvoiceStatus.OPEN: "Pendiente de pago", InvoiceStatus.PAID: "Pagada"}


def _latin1(text: str) -> str:
    """fpdf2's core fonts speak Latin-1: Spanish fits, anything else (an emoji in a name) is '?'."""
    return text.encode("latin-1", "replace").decode("latin-1")


def render_invoice_pdf(invoice: Invoice, customer: Customer | None, *, compress: bool = True) -> bytes:
    """One A4 page: the invoice number, the customer, dates, order, amount and status.
    `compress=False` keeps the page's text readable in the bytes (tests look for the number)."""
    country = customer.country if customer else "MX"
    pdf = FPDF(format="A4")
    pdf.set_compression(compress)
    pdf.set_title(_latin1(f"Factura {invoice.id}"))
    pdf.set_creator("autoservicio")
    pdf.add_page()
    pdf.set_font("Helvetica", "B", 18)
    pdf.cell(0, 12, _latin1(f"Factura {invoice.id}"), new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", "", 11)
    rows = [
        ("Cliente", customer.name if customer else invoice.customer_id),
        ("Número de cliente", invoice.customer_id),
        ("Fecha de emisión", format_due_date(invoice.issued_on)),
        ("Vencimiento", format_due_date(invoice.due_on)),
        ("Pedido", invoice.order_id or "-"),
        ("Estado", STATUS_WORDS.get(invoice.status, invoice.status.value)),
    ]
    pdf.ln(4)
    for label, value in rows:
        pdf.set_font("Helvetica", "B", 11)
        pdf.cell(50, 8, _latin1(label))
        pdf.set_font("Helvetica", "", 11)
        pdf.cell(0, 8, _latin1(value), new_x="LMARGIN", new_y="NEXT")
    pdf.ln(6)
    pdf.set_font("Helvetica", "B", 14)
    total = format_money(invoice.amount, invoice.currency, country)
    pdf.cell(0, 10, _latin1(f"Total: {total} ({invoice.currency})"), new_x="LMARGIN", new_y="NEXT")
    pdf.ln(10)
    pdf.set_font("Helvetica", "", 8)
    pdf.multi_cell(0, 5, _latin1(FOOTER))
    return bytes(pdf.output())
