"""What a customer sent through Twilio, normalised: who, on which channel, text, media, location."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum

from bot.phone import normalize_phone


class Channel(str, Enum):
    WHATSAPP = "whatsapp"
    SMS = "sms"


@dataclass(frozen=True)
class Media:
    url: str
    content_type: str


@dataclass(frozen=True)
class Location:
    latitude: float
    longitude: float
    address: str | None = None


@dataclass(frozen=True)
class InboundMessage:
    sid: str
    phone: str  # E.164
    channel: Channel
    text: str  # as written: "¡", "¿", accents and emojis intact
    profile_name: str | None = None
    wa_id: str | None = None
    media: tuple[Media, ...] = field(default_factory=tuple)
    location: Location | None = None
    # The text as written held card data; `text` is then its masked form (the inbound journal
    # never stores a card number), and the inbound rules route it as card data all the same.
    card_data: bool = False
    # The id of the WhatsApp button or list item tapped (ButtonPayload, or ListId), as the wire
    # says: only an id of an option the bot offered in this conversation is ever acted on.
    tapped_id: str | None = None

    def metadata(self) -> dict:
        """The channel facts carried into the Rasa tracker with the message."""
        return {
            "channel": self.channel.value,
            "phone": self.phone,
            "message_sid": self.sid,
            "profile_name": self.profile_name,
            "wa_id": self.wa_id,
            "media": [{"url": m.url, "content_type": m.content_type} for m in self.media],
            "location": None
            if self.location is None
            else {
                "latitude": self.location.latitude,
                "longitude": self.location.longitude,
                "address": self.location.address,
            },
        }


class MalformedWebhook(ValueError):
    """The form lacks what every Twilio message webhook has."""


def _location(form: Mapping[str, str]) -> Location | None:
    try:
        latitude, longitude = float(form["Latitude"]), float(form["Longitude"])
    except (KeyError, TypeError, ValueError):
        return None
    if not (math.isfinite(latitude) and math.isfinite(longitude)):
        return None
    if not (-90 <= latitude <= 90 and -180 <= longitude <= 180):
        return None
    address = (form.get("Address") or form.get("Label") or "").strip() or None
    return Location(latitude, longitude, address)


def parse_inbound(form: Mapping[str, str], default_country: str) -> InboundMessage:
    """Read Twilio's message webhook form (From, Body, MessageSid, NumMedia, MediaUrl0, ...,
    and for a tapped WhatsApp button ButtonPayload and ButtonText, or ListId and ListTitle)."""
    sid = form.get("MessageSid") or form.get("SmsMessageSid")
    sender = form.get("From") or ""
    if not sid or not sender:
        raise MalformedWebhook("a message webhook needs MessageSid and From")
    channel = Channel.WHATSAPP if sender.lower().startswith("whatsapp:") else Channel.SMS
    try:
        count = max(0, min(int(form.get("NumMedia") or 0), 10))
    except ValueError:
        count = 0
    media = tuple(
        Media(form[f"MediaUrl{index}"], form.get(f"MediaContentType{index}") or "application/octet-stream")
        for index in range(count)
        if form.get(f"MediaUrl{index}")
    )
    tapped = (form.get("ButtonPayload") or form.get("ListId") or "").strip() or None
    # A tap's Body is the option's title; ButtonText (ListTitle) carries it when Body is empty.
    text = form.get("Body") or ""
    if not text and tapped:
        text = form.get("ButtonText") or form.get("ListTitle") or ""
    return InboundMessage(
        sid=sid,
        phone=normalize_phone(sender, default_country),
        channel=channel,
        text=text,
        profile_name=form.get("ProfileName") or None,
        wa_id=form.get("WaId") or None,
        media=media,
        location=_location(form),
        tapped_id=tapped if channel is Channel.WHATSAPP else None,
    )


def rasa_text(message: InboundMessage) -> str:
    """The text Rasa reads: what was written, or an intent for a location or a bare attachment."""
    if message.location is not None:
        entities = {"latitude": message.location.latitude, "longitude": message.location.longitude}
        if message.location.address:
            entities["address"] = message.location.address
        return "/share_location" + json.dumps(entities, ensure_ascii=False)
    if not message.text.strip() and message.media:
        return "/share_media"
    return message.text
