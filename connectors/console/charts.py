"""Bar charts drawn on the server as SVG for the console's KPI page: no script, no CDN.

Every label is escaped here, so the markup can be put into the page as it is.
"""

from __future__ import annotations

from html import escape

# Drawn about as wide as the page's cards (1100 px at a 1200 px window): the text stays near its
# 11-unit size, where a narrower drawing blown up to the card's width made it twice as large.
WIDTH, HEIGHT = 1000, 220
MARGIN_LEFT, MARGIN_BOTTOM, MARGIN_TOP = 44, 30, 14


def bar_chart(
    points: list[tuple[str, float | None]],
    *,
    percent: bool = False,
    title: str = "",
    tick_chars: int = 5,
    scale_top: float | None = None,
) -> str:
    """Vertical bars, one per (label, value); a missing value (None) leaves its place empty.
    Under a bar, the last `tick_chars` characters of its label (`11-23` of a day, `W48` of a week).
    The scale runs to 100% (`percent`), to `scale_top` (a 1–5 mean: 5), else to the largest value."""
    values = [value for _, value in points if value is not None]
    top = 1.0 if percent else scale_top or max(values, default=0) or 1.0
    plot_w, plot_h = WIDTH - MARGIN_LEFT - 8, HEIGHT - MARGIN_BOTTOM - MARGIN_TOP
    step = plot_w / max(1, len(points))
    bar_w = max(2.0, step * 0.7)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" width="100%" role="img" '
        f'aria-label="{escape(title)}" class="chart">',
        f"<title>{escape(title)}</title>",
    ]
    for fraction in (0, 0.5, 1):
        y = MARGIN_TOP + plot_h * (1 - fraction)
        label = f"{fraction * 100:.0f}%" if percent else _number(top * fraction)
        parts.append(
            f'<line x1="{MARGIN_LEFT}" y1="{y:.1f}" x2="{WIDTH - 8}" y2="{y:.1f}" stroke="#e3e6ea"/>'
            f'<text x="{MARGIN_LEFT - 6}" y="{y + 4:.1f}" font-size="11" text-anchor="end" fill="#5c6677">'
            f"{label}</text>"
        )
    every = max(1, len(points) // 10)  # at most ~10 labels under the bars
    for index, (label, value) in enumerate(points):
        x = MARGIN_LEFT + index * step + (step - bar_w) / 2
        if value is not None:
            height = plot_h * min(1.0, value / top)
            shown = f"{value * 100:.1f}%" if percent else _number(value)
            parts.append(
                f'<rect x="{x:.1f}" y="{MARGIN_TOP + plot_h - height:.1f}" width="{bar_w:.1f}" '
                f'height="{height:.1f}" fill="#1d3557"><title>{escape(label)}: {shown}</title></rect>'
            )
        if index % every == 0:
            parts.append(
                f'<text x="{x + bar_w / 2:.1f}" y="{HEIGHT - MARGIN_BOTTOM + 16}" font-size="11" '
                f'text-anchor="middle" fill="#1d2330">{escape(label[-tick_chars:])}</text>'
            )
    parts.append("</svg>")
    return "".join(parts)


def _number(value: float) -> str:
    return f"{value:.0f}" if value >= 10 or value == int(value) else f"{value:.1f}"
