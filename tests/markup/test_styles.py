"""Rich text as editors put it on the clipboard: inline CSS and presentational tags as levels.

The fixtures imitate the shapes each editor writes (from the clipboard HTML they are known to
produce):

- Google Docs wraps a paste in ``<b style="font-weight:normal;" id="docs-internal-guid-…">``
  (a ``<b>`` that is not bold) and styles every run with a full inline ``style``: font, size in
  pt, ``color:#000000``, ``background-color:transparent``, ``font-weight:400|700``,
  ``text-decoration:none|underline``;
- Word writes ``<p class=MsoNormal>``, conditional comments (``<!--[if gte mso 9]>…``),
  ``<o:p></o:p>``, ``<b>``/``<u>`` tags and ``<span style='color:#C00000;mso-…'>``;
- LibreOffice writes ``<font color="#c9211e">``, ``<span style="background: #ffff00">``,
  ``<b>``, ``<u>`` and paragraph styles such as ``margin-bottom: 0cm``.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from salience.markup import Format, Level, Source, StyleLevels, parse


def spans(html: str, **options: object) -> list[tuple[str, str, str, str | None]]:
    doc = parse(html, "html", **options)  # type: ignore[arg-type]
    return [(doc.text[s.start : s.end], s.level.value, s.source.value, s.via) for s in doc.spans]


def test_a_bold_span_is_high_and_names_its_style() -> None:
    html = '<p>Intro <span style="font-weight:700">never share keys</span> rest</p>'
    assert spans(html) == [("never share keys", "high", "style", "font-weight:700")]
    assert parse(html).format is Format.HTML  # auto-detected as rich text


@pytest.mark.parametrize(
    "html",
    [
        "<p><b><u>Never share keys.</u></b></p>",
        '<p><span style="font-weight:bold;text-decoration:underline">Never share keys.</span></p>',
        '<p><b><span style="color:#c00000">Never share keys.</span></b></p>',  # bold + red
    ],
)
def test_two_signals_together_are_hard(html: str) -> None:
    [(text, level, _, via)] = spans(html)
    assert (text, level) == ("Never share keys.", "hard")
    assert via is not None and ("+" in via or "; " in via)  # both causes are named


def test_signals_are_inherited_and_the_innermost_level_wins() -> None:
    assert spans("<p>a <u>Never <b>share</b> keys</u> b</p>") == [
        ("Never ", "high", "html", "<u>"),
        ("share", "hard", "html", "<u> + <b>"),
        (" keys", "high", "html", "<u>"),
    ]


GOOGLE_DOCS = (
    '<meta charset="utf-8"><b style="font-weight:normal;" id="docs-internal-guid-5f1c2a3b">'
    '<p dir="ltr" style="line-height:1.38;margin-top:0pt;margin-bottom:0pt;">'
    '<span style="font-size:11pt;font-family:Arial,sans-serif;color:#000000;'
    "background-color:transparent;font-weight:400;font-style:normal;text-decoration:none;"
    'vertical-align:baseline;white-space:pre-wrap;">You answer billing questions. </span>'
    '<span style="font-size:11pt;font-family:Arial,sans-serif;color:#000000;'
    "background-color:transparent;font-weight:700;font-style:normal;text-decoration:none;"
    'vertical-align:baseline;white-space:pre-wrap;">Never quote a price.</span></p>'
    '<p dir="ltr" style="line-height:1.38;margin-top:0pt;margin-bottom:0pt;">'
    '<span style="font-size:11pt;font-family:Arial,sans-serif;color:#ff0000;'
    "background-color:transparent;font-weight:700;font-style:normal;text-decoration:none;"
    'vertical-align:baseline;white-space:pre-wrap;">Always cite the invoice number.</span>'
    "</p></b><br>"
)


def test_google_docs_clipboard() -> None:
    assert spans(GOOGLE_DOCS) == [
        ("Never quote a price.", "high", "style", "font-weight:700"),
        ("Always cite the invoice number.", "hard", "style", "color:#ff0000; font-weight:700"),
    ]
    doc = parse(GOOGLE_DOCS)
    assert doc.format is Format.HTML
    assert doc.text.startswith("You answer billing questions. Never quote a price.\n")


WORD = (
    "<html><body><!--[if gte mso 9]><xml><w:WordDocument></w:WordDocument></xml><![endif]-->"
    "<p class=MsoNormal><span style='font-size:12.0pt;mso-bidi-font-size:11.0pt'>Reply in "
    "English. <b><u>Do not promise refunds.</u></b><o:p></o:p></span></p>"
    "<p class=MsoNormal><span style='color:#C00000;mso-themecolor:accent2'>Escalate fraud."
    "</span><o:p></o:p></p></body></html>"
)


def test_word_clipboard() -> None:
    assert spans(WORD) == [
        ("Do not promise refunds.", "hard", "html", "<b> + <u>"),
        ("Escalate fraud.", "high", "style", "color:#c00000"),
    ]
    assert "mso" not in parse(WORD).text and "WordDocument" not in parse(WORD).text


LIBREOFFICE = (
    '<p style="margin-bottom: 0cm; line-height: 100%">Background for the agent. '
    '<font color="#c9211e">Check the ID first.</font> '
    '<span style="background: #ffff00">Log every call.</span> '
    '<b><font color="#c9211e">Never share the PIN.</font></b></p>'
)


def test_libreoffice_clipboard() -> None:
    assert spans(LIBREOFFICE) == [
        ("Check the ID first.", "high", "html", '<font color="#c9211e">'),
        ("Log every call.", "high", "style", "background:#ffff00"),
        ("Never share the PIN.", "hard", "html", '<b> + <font color="#c9211e">'),
    ]


BODY = "The shop sells maps, compasses and guide books to walkers and climbers. " * 3


def test_a_style_over_the_whole_document_is_chrome_not_importance() -> None:
    html = f'<div style="font-weight:bold"><p>{BODY}<u>But this underlined.</u></p></div>'
    assert spans(html) == [("But this underlined.", "high", "html", "<u>")]
    # a default colour on everything, likewise; a colour on part of it still counts
    assert spans(f'<div style="color:#1a56c2"><p>{BODY}</p></div>') == []
    assert spans(f'<p>{BODY}<span style="color:#1a56c2">Blue.</span></p>') == [
        ("Blue.", "high", "style", "color:#1a56c2")
    ]
    # an explicit level inside is kept as it is
    html = f'<div style="font-weight:bold"><p>{BODY}<small>fine print</small></p></div>'
    assert spans(html) == [("fine print", "low", "html", None)]
    # a pasted sentence or two is taken at face value: all of it bold is emphasis
    assert spans('<p style="font-weight:bold">Never share keys.</p>') == [
        ("Never share keys.", "high", "style", "font-weight:bold")
    ]


def test_neutral_styles_are_not_emphasis() -> None:
    html = (
        '<p><span style="color:#000000;background-color:transparent;font-weight:400;'
        'font-size:11pt;text-decoration:none">plain</span> '
        '<span style="color:#777777;background:white">grey</span> '
        '<span style="font-size:20pt">big</span> '
        '<span style="text-transform:uppercase">loud</span></p>'
    )
    assert spans(html) == [
        ("big", "high", "style", "font-size:20pt"),
        ("loud", "high", "style", "text-transform:uppercase"),
    ]


def test_hidden_content_never_reaches_the_clean_text() -> None:
    html = (
        '<p>Keep <span style="display:none">secret <b>hidden <span>deep</span></b></span>this'
        "<script>var x = 1;</script><style>p { color: red }</style>.</p>"
    )
    doc = parse(html, "html")
    assert doc.text == "Keep this." and doc.spans == ()


def test_explicit_importance_wins_over_style() -> None:
    html = '<p><span data-importance="low" style="font-weight:700">aside</span></p>'
    assert spans(html) == [("aside", "low", "html", None)]


def test_the_style_map_is_configurable_and_checked() -> None:
    html = '<p><b>bold</b> <span style="color:red">red</span> <b><u>both</u></b></p>'
    quiet = StyleLevels.parse('{"color": null, "combined": "high"}')
    assert [(t, lvl) for t, lvl, _, _ in spans(html, style_levels=quiet)] == [
        ("bold", "high"),
        ("both", "high"),
    ]
    assert StyleLevels.parse({"bold": "hard"}).level(frozenset({"bold"})) is Level.HARD
    for bad in ('{"sparkle": "high"}', '{"bold": "loud"}', '{"combined": null}', "[1]"):
        with pytest.raises(ValueError):
            StyleLevels.parse(bad)


_word = st.text(alphabet="abcdefgh ", min_size=1, max_size=6)
_styles = st.sampled_from(
    [
        "",
        "font-weight:700",
        "font-weight:normal",
        "color:#c00000",
        "color:#000",
        "background-color:yellow",
        "text-decoration:underline",
        "font-size:24px",
        "display:none",
        "font-weight:",
        "color:rgb(300,",
        "}{;;",
    ]
)
_tags = st.sampled_from(["span", "b", "u", "font", "p", "mark", "ins", "strong", "h2"])


@st.composite
def styled(draw: st.DrawFn, depth: int = 0) -> tuple[str, str]:
    """(html, its visible text) for a random tree of styled elements."""
    if depth > 3 or draw(st.booleans()):
        word = draw(_word)
        return word, word
    tag, style = draw(_tags), draw(_styles)
    children = [draw(styled(depth + 1)) for _ in range(draw(st.integers(1, 3)))]
    inner = "".join(h for h, _ in children)
    visible = "" if style == "display:none" else "".join(t for _, t in children)
    if tag in ("p", "h2"):
        visible += "\n"
    return f'<{tag} style="{style}">{inner}</{tag}>', visible


@settings(max_examples=300, deadline=None)
@given(styled())
def test_styled_trees_keep_their_text_and_give_sorted_disjoint_spans(tree: tuple[str, str]) -> None:
    html, visible = tree
    doc = parse(html, "html")
    assert "<" not in doc.text and ">" not in doc.text
    assert doc.text.replace("\n", "") == visible.replace("\n", "")
    previous = 0
    for span in doc.spans:
        assert previous <= span.start < span.end <= len(doc.text)
        assert span.source in (Source.HTML, Source.STYLE)
        previous = span.end


def test_deep_nesting_names_each_cause_once() -> None:
    # What made a span is kept per signal, not per ancestor: a hostile nest of styled elements
    # keeps every mark's cause short (it grew with the depth before: quadratic in the text).
    html = "<u>" + "<b>" * 5_000 + '<span style="color:#c00000">' * 5_000 + "x"
    doc = parse(html, "html")
    assert {s.via for s in doc.spans} == {"<u> + <b> + color:#c00000"}
    assert doc.spans[0].level is Level.HARD
