"""HTML building blocks of the report: escaping, number formats, tables, figures.

Every value that comes from a file goes through :func:`esc` (or a number formatter); only
:class:`Markup` strings, built here, are inserted as HTML.
"""

from __future__ import annotations

import html
import math
import re
from collections.abc import Iterable, Sequence

from bayes_dress.labels import GREEK, OUTCOME_LABELS, outcome_label
from bayes_dress.report.images import Plots

#: Tables with more rows than this are folded (a click opens them).
FOLD_ROWS = 30


class Markup(str):
    """A string that is already HTML (built here, values escaped)."""


def esc(value: object) -> Markup:
    if isinstance(value, Markup):
        return value
    return Markup(html.escape("" if value is None else str(value), quote=True))


def _float(value: object) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def num(value: object, digits: int = 3) -> Markup:
    """A number rounded for reading: 3 decimals for rates, no decimals past 100."""
    v = _float(value)
    if v is None:
        return esc(value)
    if math.isnan(v):
        return Markup("–")
    if math.isinf(v):
        return Markup("∞" if v > 0 else "−∞")
    if v == 0:
        return Markup("0")
    if abs(v) >= 100:
        return Markup(f"{v:,.0f}")
    if abs(v) < 10 ** -digits:
        return Markup(f"{v:.1e}")
    return Markup(f"{v:.{digits}f}")


def count(value: object) -> Markup:
    v = _float(value)
    return num(value) if v is None or not math.isfinite(v) else Markup(f"{v:,.0f}")


def pct(value: object) -> Markup:
    """A rate as a percentage; one decimal near 0 and 1, where whole percents mislead."""
    v = _float(value)
    if v is None or not math.isfinite(v):
        return num(value)
    if 0 < v < 0.001 or 0.999 < v < 1:
        return Markup("&lt;0.1%" if v < 0.5 else "&gt;99.9%")
    return Markup(f"{100 * v:.0f}%" if 0.01 <= v <= 0.99 else f"{100 * v:.1f}%")


def points(value: object) -> Markup:
    """A difference of rates in percentage points."""
    v = _float(value)
    return num(value) if v is None or not math.isfinite(v) else Markup(f"{100 * v:.0f}")


def truthy(value: object) -> bool | None:
    """A boolean read back from CSV (True/False/1/0); None when missing."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, str):
        text = value.strip().lower()
        return None if text in ("", "nan", "none") else text in ("true", "1", "yes")
    return bool(value)


def yes_no(value: object) -> str:
    return {True: "yes", False: "no", None: "–"}[truthy(value)]


def table(headers: Sequence[str], rows: Iterable[Sequence[object]], *,
          numeric: Iterable[int] = (), row_classes: Sequence[str] | None = None) -> Markup:
    """An HTML table; cells that are not :class:`Markup` are escaped."""
    numeric = set(numeric)
    head = "".join(f'<th{" class=num" if i in numeric else ""}>{esc(h)}</th>'
                   for i, h in enumerate(headers))
    body = []
    for r, row in enumerate(rows):
        cls = row_classes[r] if row_classes else ""
        cells = "".join(f'<td{" class=num" if i in numeric else ""}>{esc(c)}</td>'
                        for i, c in enumerate(row))
        body.append(f'<tr{f" class={cls}" if cls else ""}>{cells}</tr>')
    return Markup(f'<div class="scroll"><table><thead><tr>{head}</tr></thead>'
                  f'<tbody>{"".join(body)}</tbody></table></div>')


def bullets(items: Iterable[object]) -> Markup:
    return Markup("<ul>" + "".join(f"<li>{esc(i)}</li>" for i in items) + "</ul>")


def outcome_heading(outcome: str) -> Markup:
    """An outcome's readable label followed by its name in the files as code, e.g.
    "Severe adverse events (severe_ae)"; just the name when no label is known."""
    if outcome not in OUTCOME_LABELS:
        return esc(outcome)
    return Markup(f"{esc(outcome_label(outcome))} (<code>{esc(outcome)}</code>)")


def pretty_equation(text: str) -> Markup:
    """An ASCII model equation with Greek letters, subscripts and superscripts."""
    s = str(esc(text))
    s = re.sub(r"(?<![A-Za-z])(" + "|".join(GREEK) + r")(?![A-Za-z-])",
               lambda m: GREEK[m[1]], s)
    s = re.sub(r"\^\((-?[0-9A-Za-z/.]+)\)|\^(-?[0-9A-Za-z/.]+)",
               lambda m: f"<sup>{m[1] or m[2]}</sup>", s)
    s = re.sub(r"_([0-9A-Za-z]+)", r"<sub>\1</sub>", s)
    return Markup(s)


def folded(html_text: str, n: int, what: str) -> Markup:
    """``html_text`` as it is, or folded under a summary line when it has more than
    :data:`FOLD_ROWS` rows, so a report on many studies stays readable."""
    if n <= FOLD_ROWS:
        return Markup(html_text)
    return Markup(f"<details><summary>{count(n)} {esc(what)} (open to show)</summary>"
                  f"{html_text}</details>")


def figures(plots: Plots) -> str:
    parts = [f'<p class="note">{esc(n)}</p>' for n in plots.notes]
    for p in plots.figures:
        caption = f" {esc(p.caption)}" if p.caption else ""
        parts.append(f'<figure><img src="{p.data_uri}" alt="{esc(p.title)}">'
                     f"<figcaption><strong>{esc(p.title)}.</strong>{caption}"
                     "</figcaption></figure>")
    return "\n".join(parts)
