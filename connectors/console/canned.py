"""Canned replies for the agents' console: canned_replies.yml beside this module, with the
conversation's variables filled in when the agent picks one (the agent edits before sending)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

CANNED_FILE = Path(__file__).with_name("canned_replies.yml")
VARIABLES = ("cliente", "agente", "gestion", "pedido")
MAX_TEXT = 1600  # Twilio refuses longer bodies
_VARIABLE = re.compile(r"\{([^{}]*)\}")


class CannedError(ValueError):
    """canned_replies.yml is not valid; the message says where and what to do."""


@dataclass(frozen=True)
class CannedReply:
    id: str
    title: str
    text: str


def load_canned(path: Path = CANNED_FILE) -> list[CannedReply]:
    """Every reply of the file, checked (CannedError lists every problem)."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as error:
        raise CannedError(f"{path.name}: cannot be read as YAML: {error}") from None
    problems, replies, seen = [], [], set()
    for number, item in enumerate(data.get("replies") or [], 1):
        where = f"{path.name}, reply {number}"
        if not isinstance(item, dict):
            problems.append(f"{where}: write it as id, title and text")
            continue
        reply_id, title, text = (str(item.get(key) or "").strip() for key in ("id", "title", "text"))
        if not reply_id or not title or not text:
            problems.append(f"{where}: id, title and text are all required")
            continue
        if reply_id in seen:
            problems.append(f"{where}: the id {reply_id!r} is used twice")
        seen.add(reply_id)
        unknown = sorted(set(_VARIABLE.findall(text)) - set(VARIABLES))
        if unknown:
            problems.append(
                f"{where} ({reply_id}): unknown variable(s) {', '.join('{' + u + '}' for u in unknown)}; "
                f"use {', '.join('{' + v + '}' for v in VARIABLES)}"
            )
        if len(text) > MAX_TEXT:
            problems.append(f"{where} ({reply_id}): {len(text)} characters, at most {MAX_TEXT}")
        replies.append(CannedReply(reply_id, title, text))
    if problems:
        raise CannedError("\n".join(problems))
    return replies


def fill(reply: CannedReply, values: dict[str, Any]) -> str:
    """The reply's text with the variables the conversation knows; an unknown one is left out
    with the punctuation and spaces around it tidied ("Hola {cliente}, soy" -> "Hola, soy")."""
    text = _VARIABLE.sub(lambda match: str(values.get(match.group(1)) or "").strip(), reply.text)
    text = re.sub(r"[ \t]+([,.:;!?])", r"\1", text)  # "Hola , soy" -> "Hola, soy"
    text = re.sub(r"([¿¡])[ \t]+", r"\1", text)
    text = re.sub(r"[ \t]{2,}", " ", text)
    return text.strip()[:MAX_TEXT]


def conversation_values(packet: dict[str, Any], agent: str, handoff_id: str) -> dict[str, str]:
    """The variables of one conversation, from its handoff packet and the agent."""
    customer = packet.get("customer") or {}
    name = str(customer.get("name") or "").split()
    slots = packet.get("slots") or {}
    order = slots.get("reschedule_order") or slots.get("identity_order_id") or ""
    return {
        "cliente": name[0] if name else "",
        "agente": agent,
        "gestion": handoff_id,
        "pedido": str(order) if isinstance(order, str) else "",
    }
