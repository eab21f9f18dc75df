"""Markdown: strong and callouts, code literals, tags and inline HTML inside Markdown."""

from __future__ import annotations

import pytest

from salience.markup import parse

from .helpers import marked


@pytest.mark.parametrize("delimiter", ["**", "__"])
def test_strong_is_high(delimiter: str) -> None:
    doc = parse(f"Keep {delimiter}every number{delimiter} exact.", "markdown")
    assert doc.text == "Keep every number exact."
    assert marked(doc) == [("every number", "high", "markdown")]


@pytest.mark.parametrize(
    ("kind", "level"), [("CAUTION", "hard"), ("WARNING", "hard"), ("IMPORTANT", "high")]
)
def test_callouts_mark_their_body(kind: str, level: str) -> None:
    text = f"Intro.\n\n> [!{kind}]\n> Never share the key.\n> Not even partly.\n\nOutro."
    doc = parse(text, "markdown")
    assert doc.text == "Intro.\n\nNever share the key.\nNot even partly.\n\nOutro."
    assert marked(doc) == [("Never share the key.\nNot even partly.\n", level, "markdown")]


@pytest.mark.parametrize("kind", ["NOTE", "TIP"])
def test_note_and_tip_callouts_carry_no_importance_and_stay_as_written(kind: str) -> None:
    text = f"> [!{kind}]\n> Just so you know.\n"
    doc = parse(text, "markdown")
    assert doc.text == text
    assert doc.spans == ()


def test_plain_blockquote_is_not_a_callout() -> None:
    text = "> quoted text\n"
    assert parse(text, "markdown").text == text


def test_single_emphasis_is_not_importance_and_stays() -> None:
    doc = parse("an *aside* and **bold**", "markdown")
    assert doc.text == "an *aside* and bold"
    assert marked(doc) == [("bold", "high", "markdown")]


def test_strong_inside_emphasis_keeps_the_emphasis_delimiters() -> None:
    doc = parse("***both***", "markdown")
    assert doc.text == "*both*"
    assert marked(doc) == [("both", "high", "markdown")]


def test_code_spans_and_fences_are_literal() -> None:
    text = "Use `**x**` and `<rule>`.\n\n```md\n**not bold** <rule>no</rule>\n```\n"
    doc = parse(text, "markdown")
    assert doc.text == text
    assert doc.spans == ()


def test_unclosed_strong_is_literal_as_in_commonmark() -> None:
    text = "a **b c"
    assert parse(text, "markdown").text == text


def test_rule_tag_on_its_own_lines_does_not_hide_the_markdown_inside() -> None:
    # CommonMark would make this a raw HTML block; salience removes the tags first.
    doc = parse("<rule>\nAnswer **only** in JSON.\n</rule>\n", "markdown")
    assert doc.text == "\nAnswer only in JSON.\n\n"
    assert marked(doc) == [
        ("\nAnswer ", "hard", "tag"),
        ("only", "high", "markdown"),
        (" in JSON.\n", "hard", "tag"),
    ]


def test_innermost_wins_between_tags_and_markdown() -> None:
    doc = parse("**<rule>x</rule> y**", "markdown")
    assert doc.text == "x y"
    assert marked(doc) == [("x", "hard", "tag"), (" y", "high", "markdown")]


def test_callout_containing_strong_gives_the_strong_text_high() -> None:
    doc = parse("> [!WARNING]\n> Never **ever** do it.\n", "markdown")
    assert marked(doc) == [
        ("Never ", "hard", "markdown"),
        ("ever", "high", "markdown"),
        (" do it.\n", "hard", "markdown"),
    ]


def test_inline_html_rich_text_is_honoured_in_markdown() -> None:
    doc = parse("# Title\n\nSay <b>yes</b> and <small>maybe</small>.", "markdown")
    assert doc.text == "# Title\n\nSay yes and maybe."
    assert marked(doc) == [("yes", "high", "html"), ("maybe", "low", "html")]


def test_callout_nested_in_a_list_keeps_the_list_prefix() -> None:
    text = "- item\n  > [!CAUTION]\n  > Do not delete.\n"
    doc = parse(text, "markdown")
    assert doc.text == "- item\n  Do not delete.\n"
    assert marked(doc) == [("Do not delete.\n", "hard", "markdown")]


def test_multibyte_text_around_markdown_keeps_character_offsets() -> None:
    doc = parse("日本語 **重要** ✓ <rule>ルール</rule>", "markdown")
    assert doc.text == "日本語 重要 ✓ ルール"
    assert marked(doc) == [("重要", "high", "markdown"), ("ルール", "hard", "tag")]


def test_nested_callouts_do_not_collide() -> None:
    # The inner marker line sits inside the outer quote's prefix: both removals overlap (this
    # used to fail an assertion, a 500 in the service).
    doc = parse("> [!WARNING]\n> > [!CAUTION]\n> > inner\n> outer\n", "markdown")
    assert doc.text == "inner\nouter\n"
    assert marked(doc) == [("inner\nouter\n", "hard", "markdown")]
