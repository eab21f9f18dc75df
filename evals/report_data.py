"""A report as data: every section of the Markdown report, its prose and its tables, with each
cell read back into numbers (``0.06 [0.01, 0.12]`` → value, low, high; ``27%`` → 0.27), so that
``salience eval report --json`` holds exactly what the Markdown shows, table for table."""

from __future__ import annotations

import re
from typing import Any

SCHEMA_VERSION = 1
_NUMBER = r"[+-]?(?:\d+(?:\.\d+)?|\.\d+)%?"
_INTERVAL = re.compile(rf"^({_NUMBER}) \[({_NUMBER}|n/a|undefined), ({_NUMBER}|n/a|undefined)\]$")
_PLAIN = re.compile(rf"^{_NUMBER}$")
_ONE_ITEM = re.compile(rf"^({_NUMBER}) \(1 item: no interval\)$")


def number(text: str) -> float | int | None:
    """A cell's number (``27%`` is 0.27); None for ``n/a``/``undefined``."""
    if text in ("n/a", "undefined"):
        return None
    if text.endswith("%"):
        return float(text[:-1]) / 100
    value = float(text)
    return int(value) if re.fullmatch(r"[+-]?\d+", text) else value


def cell(text: str) -> Any:
    """A table cell as data: an estimate with its interval, a number, or the text."""
    text = text.strip()
    found = _INTERVAL.match(text)
    if found:
        value, low, high = (number(g) for g in found.groups())
        return {"value": value, "low": low, "high": high}
    found = _ONE_ITEM.match(text)
    if found:
        return {"value": number(found.group(1)), "low": None, "high": None, "items": 1}
    if _PLAIN.match(text):
        return number(text)
    return text.strip("`") if text not in ("–", "-") else None


def _row(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def as_data(markdown: str) -> dict[str, Any]:
    """``{"schema_version", "title", "sections": [{"title", "level", "text", "tables"}]}``:
    each table ``{"caption", "columns", "rows"}`` (rows as objects keyed by column, the first
    column's header "" named "row"), its caption the prose line just before it."""
    title = ""
    sections: list[dict[str, Any]] = []
    current: dict[str, Any] = {"title": "", "level": 1, "text": [], "tables": []}
    lines = markdown.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        heading = re.match(r"^(#{1,6}) (.*)$", line)
        if heading:
            if current["text"] or current["tables"] or current["title"]:
                sections.append(current)
            level, name = len(heading.group(1)), heading.group(2).strip()
            if level == 1 and not title:
                title = name
            current = {"title": name, "level": level, "text": [], "tables": []}
            i += 1
            continue
        if line.startswith("|") and i + 1 < len(lines) and re.match(r"^\|[-:| ]+\|$", lines[i + 1]):
            columns = [c or "row" for c in _row(line)]
            rows = []
            i += 2
            while i < len(lines) and lines[i].startswith("|"):
                values = _row(lines[i])
                rows.append({c: cell(v) for c, v in zip(columns, values, strict=False)})
                i += 1
            prose = [t for t in current["text"] if t]
            caption = prose[-1] if prose else ""
            current["tables"].append({"caption": caption, "columns": columns, "rows": rows})
            continue
        if line.strip():
            current["text"].append(line.strip())
        i += 1
    if current["text"] or current["tables"] or current["title"]:
        sections.append(current)
    for s in sections:
        s["text"] = "\n".join(s["text"])
    return {"schema_version": SCHEMA_VERSION, "title": title, "sections": sections}
