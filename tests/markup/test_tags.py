"""Importance tags: every row of the table, nesting, code literals, strict faults, repairs."""

from __future__ import annotations

import pytest

from salience.markup import (
    BadAttributeError,
    Format,
    MalformedTagError,
    MarkupError,
    MismatchedTagError,
    TooManyElementsError,
    UnclosedTagError,
    UnexpectedCloseTagError,
    parse,
    parse_messages,
)

from .helpers import marked


@pytest.mark.parametrize(
    ("tag", "level"),
    [
        ("rule", "hard"),
        ("must", "hard"),
        ("hard", "hard"),
        ("important", "high"),
        ("high", "high"),
        ("background", "low"),
        ("context", "low"),
        ("low", "low"),
        ("aside", "low"),
    ],
)
def test_each_importance_tag_marks_its_content_with_its_level(tag: str, level: str) -> None:
    doc = parse(f"Say hi. <{tag}>Be brief.</{tag}> Thanks.", "tags")
    assert doc.text == "Say hi. Be brief. Thanks."
    assert marked(doc) == [("Be brief.", level, "tag")]


@pytest.mark.parametrize("level", ["hard", "high", "normal", "low"])
def test_importance_tag_takes_its_level_from_the_attribute(level: str) -> None:
    doc = parse(f'<importance level="{level}">x y</importance>', "tags")
    assert marked(doc) == [("x y", level, "tag")]


def test_tag_names_and_attribute_values_are_case_insensitive() -> None:
    doc = parse("<RULE>a</Rule> <Importance LEVEL='HIGH'>b</IMPORTANCE>", "tags")
    assert marked(doc) == [("a", "hard", "tag"), ("b", "high", "tag")]


def test_unquoted_attribute_values_are_accepted() -> None:
    assert marked(parse("<importance level=low>b</importance>", "tags")) == [("b", "low", "tag")]


def test_unknown_tags_stay_as_text() -> None:
    text = "Use <div>, <rules> and <rule-x> as they are."
    doc = parse(text, "tags")
    assert doc.text == text
    assert doc.spans == ()


def test_innermost_level_wins_in_nested_tags() -> None:
    doc = parse("<rule>Always <background>(context) </background>JSON</rule>", "tags")
    assert doc.text == "Always (context) JSON"
    assert marked(doc) == [
        ("Always ", "hard", "tag"),
        ("(context) ", "low", "tag"),
        ("JSON", "hard", "tag"),
    ]


def test_explicit_normal_inside_a_rule_is_its_own_span() -> None:
    doc = parse('<rule>a <importance level="normal">b</importance> c</rule>', "tags")
    assert marked(doc) == [("a ", "hard", "tag"), ("b", "normal", "tag"), (" c", "hard", "tag")]


def test_adjacent_tags_of_one_level_merge_into_one_span() -> None:
    doc = parse("<rule>a</rule><must>b</must>", "tags")
    assert marked(doc) == [("ab", "hard", "tag")]


def test_tags_in_backtick_code_and_fences_are_literal() -> None:
    text = "Mark with `<rule>` like this:\n```\n<rule>x</rule>\n```\n<rule>real</rule>"
    doc = parse(text, "tags")
    assert doc.text == "Mark with `<rule>` like this:\n```\n<rule>x</rule>\n```\nreal"
    assert marked(doc) == [("real", "hard", "tag")]


def test_unclosed_fence_runs_to_the_end_and_keeps_tags_literal() -> None:
    doc = parse("a\n~~~\n<rule>x</rule>", "tags")
    assert doc.spans == ()


def test_self_closing_tag_is_removed_and_marks_nothing() -> None:
    doc = parse("a<rule/>b", "tags")
    assert doc.text == "ab"
    assert doc.spans == ()


def test_empty_element_marks_nothing() -> None:
    assert parse("a<rule></rule>b", "tags").spans == ()


# --- strict faults carry the offset, line and column of the fault in the text as sent ---


def test_strict_unclosed_tag_points_at_the_opening_tag() -> None:
    text = "line one\n  <rule>never closed"
    with pytest.raises(UnclosedTagError) as caught:
        parse(text, "tags", strict=True)
    error = caught.value
    assert (error.offset, error.line, error.column) == (11, 2, 3)
    assert text[error.offset :].startswith("<rule>")


def test_strict_mismatched_close_points_at_the_closing_tag() -> None:
    text = "<rule>a <important>b</rule> c"
    with pytest.raises(MismatchedTagError) as caught:
        parse(text, "tags", strict=True)
    assert caught.value.offset == text.index("</rule>")
    assert "<important>" in caught.value.message


def test_strict_stray_close_tag_is_an_error() -> None:
    text = "ok </rule> done"
    with pytest.raises(UnexpectedCloseTagError) as caught:
        parse(text, "tags", strict=True)
    assert caught.value.offset == 3


def test_strict_bad_level_value_is_an_error_at_the_tag() -> None:
    text = 'x <importance level="urgent">y</importance>'
    with pytest.raises(BadAttributeError) as caught:
        parse(text, "tags", strict=True)
    assert caught.value.offset == 2
    assert "urgent" in caught.value.message


def test_strict_missing_level_attribute_is_an_error() -> None:
    with pytest.raises(BadAttributeError):
        parse("<importance>y</importance>", "tags", strict=True)


def test_strict_malformed_known_tag_is_an_error() -> None:
    text = 'a <importance level="hard>b'
    with pytest.raises(MalformedTagError) as caught:
        parse(text, "tags", strict=True)
    assert caught.value.offset == 2


def test_offsets_refer_to_the_text_as_sent_before_nfc() -> None:
    # "e" + combining acute composes to one character under NFC; the error must still point at
    # the raw offset of the tag.
    text = "cafe\u0301 cafe\u0301 <rule>x"
    with pytest.raises(UnclosedTagError) as caught:
        parse(text, "tags", strict=True)
    assert caught.value.offset == text.index("<rule>")
    assert caught.value.column == text.index("<rule>") + 1


# --- lenient mode repairs and warns ---


def test_lenient_unclosed_tag_closes_at_the_end_with_a_warning() -> None:
    doc = parse("a <rule>b c", "tags")
    assert doc.text == "a b c"
    assert marked(doc) == [("b c", "hard", "tag")]
    assert [w.code for w in doc.warnings] == ["unclosed-tag"]
    assert doc.warnings[0].offset == 2


def test_lenient_mismatch_closes_the_inner_element_where_the_outer_closes() -> None:
    doc = parse("<rule>a <high>b</rule> c</high>", "tags")
    assert doc.text == "a b c"
    assert marked(doc) == [("a ", "hard", "tag"), ("b", "high", "tag")]
    assert [w.code for w in doc.warnings] == ["mismatched-tag", "unexpected-close-tag"]


def test_lenient_bad_level_drops_the_tag_but_its_close_still_matches() -> None:
    doc = parse('<importance level="x">a</importance> b', "tags")
    assert doc.text == "a b"
    assert doc.spans == ()
    assert [w.code for w in doc.warnings] == ["bad-attribute"]


def test_lenient_malformed_tag_stays_as_text_with_a_warning() -> None:
    doc = parse("a <rule b", "tags")
    assert doc.text == "a <rule b"
    assert [w.code for w in doc.warnings] == ["malformed-tag"]


def test_plain_format_leaves_everything_as_text() -> None:
    text = "<rule>**x**</rule>"
    doc = parse(text, Format.PLAIN)
    assert doc.text == text and doc.spans == () and doc.format is Format.PLAIN


def test_unknown_format_is_a_clear_value_error() -> None:
    with pytest.raises(ValueError, match="unknown format 'yaml'"):
        parse("x", "yaml")


def test_repairs_past_the_cap_are_counted_not_listed() -> None:
    doc = parse("<rule>" * 500)
    assert len(doc.warnings) == 101
    assert {w.code for w in doc.warnings[:100]} == {"unclosed-tag"}
    last = doc.warnings[-1]
    assert last.code == "more-repairs" and last.message.startswith("400 more repairs")
    # strict mode still stops at the first fault
    with pytest.raises(UnclosedTagError) as caught:
        parse("<rule>" * 500, strict=True)
    assert caught.value.offset == 2994


def test_a_tag_without_its_closing_bracket_does_not_swallow_the_next_tags() -> None:
    doc = parse("<rule <rule <rule>kept</rule>")
    assert doc.text == "<rule <rule kept"
    assert marked(doc) == [("kept", "hard", "tag")]
    assert [w.code for w in doc.warnings] == ["malformed-tag", "malformed-tag"]


def test_a_tag_longer_than_the_limit_is_text() -> None:
    long = '<importance level="hard" ' + "x " * 1100 + ">a</importance>"
    doc = parse(long)
    assert doc.spans == ()
    assert doc.warnings[0].code == "malformed-tag" and "2048" in doc.warnings[0].message


@pytest.mark.parametrize(
    ("text", "problem", "fix", "repair"),
    [
        ("a <rule>b", "<rule> is never closed", "close it with </rule>",
         "it was closed at the end of the text"),
        ("a </rule> b", "closing tag </rule> has no matching opening tag",
         "remove it, or open <rule> before it", "it was dropped"),
        ('<importance level="max">x</importance>', 'level="max" on <importance> is not a level',
         "use one of those levels", "the tag was ignored"),
    ],
)  # fmt: skip
def test_strict_errors_say_what_to_fix_and_lenient_warnings_what_was_repaired(
    text: str, problem: str, fix: str, repair: str
) -> None:
    with pytest.raises(MarkupError) as raised:
        parse(text, "tags", strict=True)
    assert problem in raised.value.message and fix in raised.value.message
    assert repair not in raised.value.message  # nothing was repaired: it is an error
    (warning,) = parse(text, "tags").warnings
    assert problem in warning.message and repair in warning.message


# --- the element limit: a bound on the work one parse does, in both modes ---


@pytest.mark.parametrize(
    ("text", "fmt", "offset"),
    [
        ("<rule>a</rule>" * 3, "tags", 28),  # the third <rule>
        ("<b>a</b><div><mark>b</mark></div><strong>c</strong>", "html", 33),  # not <div>
        ("**a** **b** **c**", "markdown", 12),
        # Markdown counts its tags first, then callouts and emphasis in text order
        ("> [!WARNING]\n> a\n\n**b** <rule>c</rule>", "markdown", 18),
    ],
)
@pytest.mark.parametrize("strict", [False, True])
def test_the_element_past_the_limit_is_refused_where_it_opens(
    text: str, fmt: str, offset: int, strict: bool
) -> None:
    assert parse(text, fmt, strict, max_elements=3).spans  # at the limit: parsed
    with pytest.raises(TooManyElementsError) as caught:
        parse(text, fmt, strict, max_elements=2)
    assert (caught.value.offset, caught.value.limit, caught.value.code) == (
        offset,
        2,
        "too-many-elements",
    )
    assert isinstance(caught.value, MarkupError)


def test_the_element_limit_counts_a_conversation_and_ignores_untrusted_text() -> None:
    messages = [
        {"role": "system", "content": "<rule>a</rule> <rule>b</rule>"},
        {"role": "user", "content": "<rule>typed</rule>" * 50},  # plain text: no elements
        {"role": "system", "content": "<rule>c</rule>"},
    ]
    assert len(parse_messages(messages, max_elements=3).messages) == 3
    with pytest.raises(TooManyElementsError) as caught:
        parse_messages(messages, max_elements=2)
    assert (caught.value.message_index, caught.value.offset) == (2, 0)
    with pytest.raises(ValueError, match="max_elements"):
        parse("<rule>a</rule>", max_elements=-1)
