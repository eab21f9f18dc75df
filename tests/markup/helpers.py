"""Small readers that make the markup tests read as specifications."""

from __future__ import annotations

from salience.markup import Document


def marked(document: Document) -> list[tuple[str, str, str]]:
    """Each span as (its text, level, source)."""
    return [(document.span_text(s), s.level.value, s.source.value) for s in document.spans]
