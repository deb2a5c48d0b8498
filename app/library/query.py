"""Combined queries, as rclip has them: `cat + snow - indoor`, weights as `2:cat`, images as file paths.

A query is a list of terms; each is a text, an image file, or an indexed photo ("similar to"), with a
weight (negative to subtract). The query vector is the weighted sum of the terms' vectors, normalised.
"""
from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass

from .formats import is_photo_name

_SPLIT = re.compile(r"\s+([+-])\s+")
MAX_WEIGHT = 1000.0  # weights are relative; past this they only overflow
_WEIGHT = re.compile(r"^\s*(-?\d+(?:\.\d+)?)\s*:\s*(.+)$", re.S)


class QueryError(ValueError):
    """A query that cannot be run, with a message fit for the user."""


@dataclass(frozen=True)
class Term:
    kind: str      # "text" | "image" | "similar"
    value: str     # the text, the image file, or the indexed photo's path
    weight: float = 1.0


def term(value: str, weight: float = 1.0, kind: str | None = None) -> Term:
    """One term; `2:cat` sets the weight; an existing image file becomes an image term."""
    m = _WEIGHT.match(value)
    if m and not os.path.exists(value):
        number = float(m.group(1))
        if not math.isfinite(number) or abs(number) > MAX_WEIGHT:
            shown = m.group(1) if len(m.group(1)) <= 12 else m.group(1)[:10] + "…"
            raise QueryError(f"weight {shown} is too large (use a number up to {MAX_WEIGHT:g})")
        weight, value = weight * number, m.group(2)
    value = value.strip()
    if not value:
        raise QueryError("empty query term")
    if kind is None:
        kind = "image" if _is_image_path(value) else "text"
    return Term(kind, os.path.abspath(os.path.expanduser(value)) if kind != "text" else value, weight)


def _is_image_path(value: str) -> bool:
    """Whether a term names an image file. Plain text stays text, even with a slash ("AC/DC", "cats/dogs");
    a term that is clearly a path (/…, ~…, ./…, or a folder and an image name) must name an image file."""
    path = os.path.expanduser(value)
    name = os.path.basename(path)
    has_sep = any(s in value for s in (os.sep, os.altsep) if s)
    clearly_path = (os.path.isabs(path) or value.startswith(("~", "./", "../", ".\\", "..\\"))
                    or (has_sep and is_photo_name(name)))
    if os.path.exists(path) and (clearly_path or has_sep or is_photo_name(name)):
        if os.path.isdir(path):
            raise QueryError(f"{value} is a folder, not an image (to search only its photos, use --folder)")
        if not is_photo_name(name):
            raise QueryError(f"{value} is not an image file")
        return True
    if clearly_path:
        raise QueryError(f"{value}: no such image file")
    return False


def parse(query: str = "", add: list[str] = (), sub: list[str] = (), similar: list[str] = ()) -> list[Term]:
    """Parse a query string with `+`/`-` between terms, plus extra terms to add, subtract or match."""
    terms: list[Term] = []
    if query and os.path.exists(os.path.expanduser(query.strip())):  # a file named "Trip - Rome.jpg"
        terms.append(term(query.strip()))
    elif query and query.strip():
        parts = _SPLIT.split(" " + query.strip() + " ")
        sign = 1.0
        for i, part in enumerate(parts):
            if i % 2 == 1:
                sign = 1.0 if part == "+" else -1.0
            elif part.strip():
                terms.append(term(part, sign))
    terms += [term(a) for a in add]
    terms += [term(s, -1.0) for s in sub]
    terms += [term(s, kind="similar") for s in similar]
    if not terms:
        raise QueryError("nothing to search for: give a text, an image file or --similar PATH")
    if all(t.weight <= 0 for t in terms):
        raise QueryError("a query needs at least one term that is not subtracted")
    return terms
