"""HTML rich text read with html.parser: levels, text content, entities, faults."""

from __future__ import annotations

import pytest

from salience.markup import BadAttributeError, MismatchedTagError, UnclosedTagError, parse

from .helpers import marked


@pytest.mark.parametrize(
    ("element", "level"),
    [("strong", "high"), ("b", "high"), ("mark", "high"), ("small", "low")],
)
def test_rich_text_elements_carry_their_level(element: str, level: str) -> None:
    doc = parse(f"<p>Reply <{element}>in French</{element}>.</p>", "html")
    assert doc.text == "Reply in French."
    assert marked(doc) == [("in French", level, "html")]


@pytest.mark.parametrize("level", ["hard", "high", "normal", "low"])
def test_span_data_importance_sets_any_level(level: str) -> None:
    doc = parse(f'<span data-importance="{level}">x</span>', "html")
    assert marked(doc) == [("x", level, "html")]


def test_plain_span_carries_nothing_and_closes_itself_not_the_marked_one() -> None:
    doc = parse('<span data-importance="hard">a <span>b</span> c</span> d', "html")
    assert doc.text == "a b c d"
    assert marked(doc) == [("a b c", "hard", "html")]


def test_importance_tags_work_in_html_too() -> None:
    doc = parse("<div><rule>Never guess.</rule></div>", "html")
    assert marked(doc) == [("Never guess.", "hard", "tag")]


def test_text_content_decodes_references_and_breaks_lines() -> None:
    doc = parse("<p>Fish &amp; chips &#8212; <b>&lt;rule&gt;</b></p><p>two<br>three</p>", "html")
    assert doc.text == "Fish & chips \u2014 <rule>\ntwo\nthree"
    assert marked(doc) == [("<rule>", "high", "html")]


def test_an_escaped_rule_in_html_is_text_not_a_rule() -> None:
    doc = parse("<p>&lt;rule&gt;x&lt;/rule&gt;</p>", "html")
    assert doc.text == "<rule>x</rule>"
    assert doc.spans == ()


def test_script_style_and_comments_are_dropped() -> None:
    doc = parse("<style>b{}</style><script>if (a<b) {}</script><!-- note -->Hi", "html")
    assert doc.text == "Hi"


def test_code_in_html_is_literal_no_level_applies() -> None:
    doc = parse("<code><b>x</b></code> <b>y</b>", "html")
    assert doc.text == "x y"
    assert marked(doc) == [("y", "high", "html")]


def test_optional_end_tags_are_not_faults() -> None:
    doc = parse("<ul><li>one<li>two</ul><p>a<p>b", "html", strict=True)
    assert doc.warnings == ()


def test_strict_unclosed_strong_points_at_it() -> None:
    text = "<p>a</p>\n<p><strong>b</p>"
    with pytest.raises(UnclosedTagError) as caught:
        parse(text, "html", strict=True)
    assert caught.value.offset == text.index("<strong>")
    assert (caught.value.line, caught.value.column) == (2, 4)


def test_strict_mismatch_in_html() -> None:
    text = "<b><mark>x</b></mark>"
    with pytest.raises(MismatchedTagError) as caught:
        parse(text, "html", strict=True)
    assert caught.value.offset == text.index("</b>")


@pytest.mark.parametrize(
    ("text", "at", "inner"),
    [
        ("<b><i>x</b></i>", "</b>", "i"),  # an importance element closed across a plain one
        ("<p>a <i><b>x</i></b></p>", "</i>", "b"),  # a plain one closed across an importance one
        ("<span><em>x</span></em>", "</span>", "em"),  # two plain inline elements
        ("<u>ok</u> then <a href='#'><code>y</a></code>", "</a>", "code"),
    ],
)
def test_strict_reports_the_first_misnested_inline_element(text: str, at: str, inner: str) -> None:
    with pytest.raises(MismatchedTagError) as caught:
        parse(text, "html", strict=True)
    assert caught.value.offset == text.index(at)
    assert f"while <{inner}>" in str(caught.value)
    assert "x" in parse(text, "html").text or "y" in parse(text, "html").text  # lenient: read


@pytest.mark.parametrize(
    "text",
    ["<i>a</i></i>", "<p><i>a<p>b", "<b><i>x</i></b>", "<i><small>x</small></i>", "<i>x<br>y</i>"],
)
def test_strict_accepts_inline_elements_nested_or_stray(text: str) -> None:
    assert parse(text, "html", strict=True).text  # no fault: nested properly, or a stray end tag


def test_strict_bad_data_importance_value() -> None:
    with pytest.raises(BadAttributeError) as caught:
        parse('<p><span data-importance="max">x</span></p>', "html", strict=True)
    assert caught.value.offset == 3


def test_lenient_html_repairs_with_warnings() -> None:
    doc = parse("<b>bold never closed", "html")
    assert doc.text == "bold never closed"
    assert marked(doc) == [("bold never closed", "high", "html")]
    assert [w.code for w in doc.warnings] == ["unclosed-tag"]


def test_a_construct_that_never_ends_is_text_and_parsing_goes_on() -> None:
    # html.parser gave up at an unterminated comment and kept the rest unparsed
    doc = parse("<p>a <!-- b <b>bold</b></p>", "html")
    assert doc.text == "a <!-- b bold"
    assert marked(doc) == [("bold", "high", "html")]
    doc = parse("<p>x &#</p><p>1 < 2 <b>y</b></p>", "html")
    assert doc.text == "x &#\n1 < 2 y"
    assert marked(doc) == [("y", "high", "html")]


def test_unclosed_script_keeps_the_rest_as_written() -> None:
    doc = parse("<p>a</p><script>var x = '<b>'", "html")
    assert doc.text == "a\nvar x = '<b>'"
    assert doc.spans == ()
