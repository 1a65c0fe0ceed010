"""The page's building blocks: plain dicts (paragraph, table, figure, ...) the template lays out.

Why plain dicts: a section is a list of blocks, so sections stay small functions that only
format, and the template alone decides the markup. Text is escaped by the template;
what is already markup (badges, figures) arrives as `Markup`.
"""

from __future__ import annotations

import math
import time
from typing import Any

from markupsafe import Markup

Block = dict[str, Any]


def para(text: str | Markup, kind: str = "p") -> Block:
    return {"kind": kind, "content": text}


def heading(text: str, anchor: str) -> Block:
    return {"kind": "h3", "content": text, "id": anchor}


def table(header: list[str], rows: list[list[Any]], classes: list[str] | None = None, left: int = 2) -> Block:
    """A table block; the first `left` columns are left-aligned (names), the rest numbers."""
    classes = classes or [""] * len(rows)
    body = [{"cells": [str(c) if not isinstance(c, Markup) else c for c in r], "cls": k} for r, k in
            zip(rows, classes, strict=True)]  # fmt: skip
    return {"kind": "table", "content": {"header": header, "rows": body, "left": set(range(left)), "id": None}}


def figure(svg: str, caption: str = "") -> Block:
    return {"kind": "fig", "content": Markup(svg), "caption": caption}


def row(blocks: list[Block]) -> Block:
    """Blocks side by side (wrapping on narrow screens), e.g. two figures."""
    return {"kind": "row", "content": blocks}


def details(summary: str, blocks: list[Block], open_: bool = False) -> Block:
    return {"kind": "details", "caption": summary, "content": blocks, "open": open_}


def bullets(items: list[str]) -> Block:
    return {"kind": "list", "content": items}


def badge(text: str, cls: str) -> Markup:
    return Markup('<span class="badge {}">{}</span>').format(cls, text)


def anchor(*parts: str) -> str:
    return "-".join("".join(ch if ch.isalnum() else "_" for ch in str(p)) for p in parts)


def better(greater: bool) -> str:
    return "higher" if greater else "lower"


def fmt_date(ts: Any) -> str:
    """A Unix time as UTC date and time; a dash when there is none."""
    if ts is None or (isinstance(ts, float) and math.isnan(ts)):
        return "—"
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(float(ts)))
