"""Format auto-detection: the documented order of checks, deterministic."""

from __future__ import annotations

import pytest

from salience.markup import Format, detect_format, parse


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Just words.", Format.PLAIN),
        ("a < b and c > d", Format.PLAIN),
        ("<rule>Be brief.</rule>", Format.TAGS),
        ("Be <important>brief</important>.", Format.TAGS),
        ("Be **brief**.", Format.MARKDOWN),
        ("> [!WARNING]\n> No.", Format.MARKDOWN),
        ("# Title\n<rule>x</rule>", Format.MARKDOWN),
        ("- one\n- two", Format.MARKDOWN),
        ("Use `code`.", Format.MARKDOWN),
        ("<!DOCTYPE html><p>x</p>", Format.HTML),
        ("  <p>Be <b>brief</b></p>", Format.HTML),
        ("Say <b>yes</b>.", Format.HTML),
        ('A <span data-importance="hard">rule</span>.', Format.HTML),
        ("text<br>more <rule>x</rule>", Format.HTML),
    ],
)
def test_detection_follows_the_documented_order(text: str, expected: Format) -> None:
    assert detect_format(text) is expected
    assert parse(text).format is expected


def test_auto_and_forced_format_agree() -> None:
    text = "Intro **bold** <rule>r</rule>"
    assert parse(text) == parse(text, "markdown")
