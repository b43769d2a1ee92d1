"""GET /webhooks/twilio/media/<token>[/<name>]: the media Twilio fetches for a message we send.

The URL is its own credential (bot/media_links.py): a forged or altered token is refused with
403 and an expired one with 410 before anything is looked up; a valid one opens only what it
names, for whom it names (an invoice of that customer, a file sent to that number), else 404.
"""

from __future__ import annotations

import asyncio
import logging

from sanic import Blueprint, response
from sanic.request import Request

from bot.clock import Clock
from bot.media_links import ExpiredMediaLink, ForgedMediaLink
from bot.messaging.attachments import open_media
from bot.wiring import Wiring, wiring

logger = logging.getLogger(__name__)


async def media_response(graph: Wiring, clock: Clock, token: str) -> response.HTTPResponse:
    try:
        grant = graph.media_links().verify(token, clock.now())
    except ForgedMediaLink:
        logger.warning("refused a media request with a token we did not sign")
        return response.text("forbidden", status=403)
    except ExpiredMediaLink:
        return response.text("gone: the link has expired", status=410)
    if graph.attachments is None:
        return response.text("not found", status=404)
    try:
        found = await asyncio.to_thread(open_media, grant, graph.erp, graph.attachments)
    except Exception:
        logger.exception("media %s %s could not be read", grant.kind, grant.ref)
        return response.text("service unavailable", status=503, headers={"Retry-After": "5"})
    if found is None:
        return response.text("not found", status=404)
    return response.raw(
        found.data,
        content_type=found.content_type,
        headers={
            "Content-Disposition": f'inline; filename="{found.filename}"',
            "Cache-Control": "private, no-store",
            "X-Content-Type-Options": "nosniff",
        },
    )


def add_media_routes(blueprint: Blueprint, clock: Clock) -> None:
    """GET <blueprint>/media/<token> (and /<name> after it: the file name the phone shows) on the
    Twilio channel's blueprint, mounted at /webhooks/twilio (bot.media_links.MEDIA_PATH)."""

    @blueprint.route("/media/<token>", methods=["GET"])
    @blueprint.route("/media/<token>/<_name>", methods=["GET"])
    async def media(_: Request, token: str, _name: str = "") -> response.HTTPResponse:
        return await media_response(wiring(), clock, token)
