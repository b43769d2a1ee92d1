"""Reads which of a numbered list of options a customer picked ("2", "la segunda", "el último")."""

from __future__ import annotations

import re
import unicodedata

_ORDINALS = {
    "uno": 1, "una": 1, "primero": 1, "primera": 1, "primer": 1,
    "dos": 2, "segundo": 2, "segunda": 2,
    "tres": 3, "tercero": 3, "tercera": 3, "tercer": 3,
    "cuatro": 4, "cuarto": 4, "cuarta": 4,
    "cinco": 5, "quinto": 5, "quinta": 5,
    "seis": 6, "sexto": 6, "sexta": 6,
    "siete": 7, "septimo": 7, "septima": 7,
    "ocho": 8, "octavo": 8, "octava": 8,
    "nueve": 9, "noveno": 9, "novena": 9,
    "diez": 10, "decimo": 10, "decima": 10,
}  # fmt: skip
_LAST = {"ultimo", "ultima"}
# Words that may surround a choice without changing it: "la 2 porfa", "opcion 1", "el primero pls".
_FILLER = {
    "el", "la", "lo", "los", "las", "de", "del", "quiero", "opcion", "numero", "nro", "no", "n",
    "porfa", "porfis", "por", "favor", "pls", "plis", "xfa", "fa", "x", "gracias", "ese", "esa",
    "pedido", "orden", "este", "esta", "mi", "que", "es", "seria", "va", "dale", "ok",
}  # fmt: skip


def fold(text: str) -> str:
    """Lower case, accents and punctuation removed, spaces collapsed: how customers' words compare."""
    decomposed = unicodedata.normalize("NFKD", text.lower())
    plain = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return " ".join(re.sub(r"[^\w\s]", " ", plain).split())


def pick_choice(text: str, titles: list[str]) -> int | None:
    """The 0-based index of the option the customer meant, or None if the text names none.

    Understands the option's number ("2", "opcion 2"), its ordinal ("la segunda", "el último")
    and its title or an unambiguous part of it.
    """
    count = len(titles)
    words = fold(text).split()
    if not words or count == 0:
        return None

    meaningful = [word for word in words if word not in _FILLER]
    if len(meaningful) == 1:
        word = meaningful[0]
        number = int(word) if word.isdigit() else _ORDINALS.get(word)
        if word in _LAST:
            number = count
        if number is not None:
            return number - 1 if 1 <= number <= count else None

    folded_titles = [fold(title) for title in titles]
    # The whole message, then only its meaningful words ("el de los auriculares" → "auriculares").
    for wanted in dict.fromkeys((fold(text), " ".join(meaningful))):
        if len(wanted) < 4:
            continue
        exact = [index for index, title in enumerate(folded_titles) if title == wanted]
        if len(exact) == 1:
            return exact[0]
        partial = [index for index, title in enumerate(folded_titles) if wanted in title]
        if len(partial) == 1:
            return partial[0]
    return None


def numbered_options(text: str, titles: list[str]) -> str:
    """`text` followed by the options as a numbered list, for channels without buttons."""
    lines = [f"{number}. {title}" for number, title in enumerate(titles, start=1)]
    return "\n".join([text.rstrip(), "", *lines]) if text.strip() else "\n".join(lines)
