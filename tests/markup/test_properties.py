"""Property tests: the parser's invariants over arbitrary text and well-formed markup trees."""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from salience.markup import Document, Level, TooManyElementsError, load_encoding, parse, tokenize
from salience.markup.parsing import _parse

ENC = load_encoding("cl100k_base")
FORMATS = ["auto", "tags", "markdown", "html", "plain"]
SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Characters that NFC leaves alone even next to each other: no combining marks, no Hangul jamo,
# no singletons that normalise to another character.
_stable = st.characters(
    blacklist_categories=("Mn", "Mc", "Me", "Cs"),
    blacklist_characters="<>`~*_&\r",
).filter(lambda c: unicodedata.normalize("NFC", c) == c and not 0x1100 <= ord(c) <= 0x11FF)

markupish = st.text(
    alphabet=st.sampled_from(list("<>/=\"' *_`~[]!#-&;\nabc")) | st.characters(),
    max_size=120,
).map(lambda s: s)
with_tags = st.lists(
    st.sampled_from(
        [
            "<rule>",
            "</rule>",
            "<important>",
            "</important>",
            "<background>",
            "</background>",
            '<importance level="low">',
            '<importance level="bad">',
            "</importance>",
            "<b>",
            "</b>",
            '<span data-importance="hard">',
            "</span>",
            "**",
            "__",
            "> [!WARNING]\n",
            "`",
            "```\n",
            "<!--",
            "-->",
            "&amp;",
            "<p>",
            "</p>",
            "<br>",
            "<|imp:hard|>",
            "<|endoftext|>",
            "\n",
            # hostile pieces: unterminated constructs, nested quotes and callouts
            "> > [!CAUTION]\n",
            ">> [!WARNING]\n",
            "<rule ",
            '<importance level="',
            "<a ",
            "<!",
            "</",
            "<script>",
            "</script>",
            "&#",
            "[!",
            "](",
            "'",
            '"',
        ]
    )
    | st.text(max_size=8),
    max_size=30,
).map("".join)


def check_invariants(doc: Document) -> None:
    previous_end = 0
    for span in doc.spans:
        assert 0 <= span.start < span.end <= len(doc.text), span
        assert span.start >= previous_end, "spans overlap or are unsorted"
        previous_end = span.end


@SETTINGS
@given(text=markupish | with_tags, fmt=st.sampled_from(FORMATS))
def test_lenient_parse_never_raises_and_spans_are_sorted_disjoint_inside(
    text: str, fmt: str
) -> None:
    doc = parse(text, fmt)
    check_invariants(doc)
    for w in doc.warnings:
        assert 0 <= w.offset <= len(text)


@SETTINGS
@given(text=markupish | with_tags, fmt=st.sampled_from(FORMATS))
def test_the_element_count_is_bounded_by_the_markup_and_the_limit_is_exact(
    text: str, fmt: str
) -> None:
    # The parsers' step counter: every element opened is counted once, so the work a
    # limit allows is bounded, and the limit refuses exactly the texts that exceed it.
    elements = _parse(text, fmt, False, None)[1]
    openers = text.count("<") + text.count("**") + text.count("__") + text.count("[!")
    assert 0 <= elements <= openers
    parse(text, fmt, max_elements=elements)
    if elements:
        try:
            parse(text, fmt, max_elements=elements - 1)
        except TooManyElementsError as error:
            assert 0 <= error.offset <= len(text) and error.limit == elements - 1
        else:
            raise AssertionError("the limit let one element too many through")


@SETTINGS
@given(text=st.text(max_size=200))
def test_plain_parse_of_clean_text_is_the_identity(text: str) -> None:
    clean = unicodedata.normalize("NFC", text)
    doc = parse(clean, "plain")
    assert doc.text == clean
    assert doc.spans == ()


# --- well-formed trees: the clean text is the input without its markup; levels are innermost ---

TAGS = {
    "rule": Level.HARD,
    "must": Level.HARD,
    "important": Level.HIGH,
    "background": Level.LOW,
    "aside": Level.LOW,
    'importance level="normal"': Level.NORMAL,
    "importance level='high'": Level.HIGH,
}


@dataclass
class Tree:
    marked: str  # the text with markup
    clean: str  # the text without it
    levels: Sequence[Level | None]  # per clean character: the innermost explicit level


def leaf(alphabet: st.SearchStrategy[str]) -> st.SearchStrategy[Tree]:
    return st.text(alphabet=alphabet, min_size=1, max_size=12).map(
        lambda s: Tree(s, s, [None] * len(s))
    )


def element(tag: str, child: Tree) -> Tree:
    name = tag.split()[0]
    level = TAGS[tag]
    levels = [lv if lv is not None else level for lv in child.levels]
    return Tree(f"<{tag}>{child.marked}</{name}>", child.clean, levels)


def concat(children: list[Tree]) -> Tree:
    return Tree(
        "".join(c.marked for c in children),
        "".join(c.clean for c in children),
        [lv for c in children for lv in c.levels],
    )


def tag_trees(alphabet: st.SearchStrategy[str]) -> st.SearchStrategy[Tree]:
    return st.recursive(
        leaf(alphabet),
        lambda inner: st.one_of(
            st.builds(element, st.sampled_from(sorted(TAGS)), inner),
            st.lists(inner, min_size=1, max_size=4).map(concat),
        ),
        max_leaves=12,
    )


def expected_levels(doc: Document) -> list[Level | None]:
    levels: list[Level | None] = [None] * len(doc.text)
    for span in doc.spans:
        for i in range(span.start, span.end):
            levels[i] = span.level
    return levels


@SETTINGS
@given(tree=tag_trees(_stable))
def test_tag_trees_clean_text_and_innermost_levels(tree: Tree) -> None:
    doc = parse(tree.marked, "tags")
    assert doc.text == tree.clean
    assert expected_levels(doc) == tree.levels
    assert doc.warnings == ()
    assert parse(tree.marked, "tags", strict=True) == doc
    check_invariants(doc)


_words = st.sampled_from(list("abcdefghijklmnopqrstuvwxyzABCDEFXYZ0123456789 .,;:!?é世"))


def strong(child: Tree) -> Tree:
    levels = [lv if lv is not None else Level.HIGH for lv in child.levels]
    return Tree(f"**{child.marked}**", child.clean, levels)


def md_trees() -> st.SearchStrategy[Tree]:
    # Strong content starts and ends with a letter (CommonMark's flanking rules) and holds no
    # strong; tags may nest either way.
    letter = st.text(alphabet=st.sampled_from(list("abcxyz")), min_size=1, max_size=3).map(
        lambda s: Tree(s, s, [None] * len(s))
    )
    inner = tag_trees(_words)
    strong_body = st.tuples(letter, st.lists(inner, max_size=3), letter).map(
        lambda t: concat([t[0], *t[1], t[2]])
    )
    part = st.one_of(
        strong_body.map(strong),
        st.builds(element, st.sampled_from(sorted(TAGS)), strong_body.map(strong)),
        inner,
    )
    spaced = st.lists(part, min_size=1, max_size=4).map(
        lambda parts: concat([p for part in parts for p in (part, Tree(" ", " ", [None]))])
    )
    return st.tuples(letter, spaced).map(lambda t: concat([t[0], Tree(" ", " ", [None]), t[1]]))


@SETTINGS
@given(tree=md_trees())
def test_markdown_trees_clean_text_and_innermost_levels(tree: Tree) -> None:
    doc = parse(tree.marked, "markdown")
    assert doc.text == tree.clean
    assert expected_levels(doc) == tree.levels
    check_invariants(doc)


# --- tokens ---


@SETTINGS
@given(text=markupish | with_tags | st.text(max_size=200), fmt=st.sampled_from(FORMATS))
def test_token_offsets_slice_exactly_what_each_token_decodes_to(text: str, fmt: str) -> None:
    doc = parse(text, fmt)
    tokens = tokenize(doc, ENC)
    joined = b""
    for tid, a, b, marker in zip(
        tokens.ids.tolist(),
        tokens.starts.tolist(),
        tokens.ends.tolist(),
        tokens.markers.tolist(),
        strict=True,
    ):
        if marker:
            assert a == b and tid in ENC.marker_ids
            continue
        raw = ENC.encoding.decode_single_token_bytes(tid)
        joined += raw
        window = doc.text[a:b].encode("utf-8")
        try:
            assert raw.decode("utf-8") == doc.text[a:b]
        except UnicodeDecodeError:
            assert raw in window  # part of a multi-byte character: its window holds it
    assert joined == doc.text.encode("utf-8")
    assert int(tokens.markers.sum()) == 2 * len(doc.spans)


@SETTINGS
@given(
    text=st.lists(
        st.sampled_from(["<|imp:hard|>", "<|/imp:hard|>", "<|endoftext|>", "<|imp:low|>"])
        | st.text(max_size=6),
        max_size=12,
    ).map("".join),
    fmt=st.sampled_from(FORMATS),
)
def test_special_token_strings_never_yield_a_special_id(text: str, fmt: str) -> None:
    doc = parse(text, fmt)
    tokens = tokenize(doc, ENC)
    specials = set(ENC.encoding._special_tokens.values())
    for tid, marker in zip(tokens.ids.tolist(), tokens.markers.tolist(), strict=True):
        assert (tid in specials) == marker


@given(
    st.text(
        alphabet=st.sampled_from(list("<>/ bBpPsSrRuUlLeE=\"'tyanidmIMPORTANT:ı“-")), max_size=60
    ),
    st.integers(1, 9),
)
@settings(max_examples=300, deadline=None)
def test_a_windowed_tag_search_finds_what_one_search_finds(text: str, window: int) -> None:
    """detect_format searches long texts a window at a time (so that no single regex call holds
    the GIL for long); with tiny windows every match crosses some window's edge. The overlap
    must exceed the longest match: 20 here, so the bounded ``<span …>`` branch of the rich-text
    pattern (up to 2,068 characters) is left out of texts that could form it."""
    import salience.markup._search as search
    import salience.markup.parsing as parsing

    saved = search.WINDOW, parsing._LONGEST_MATCH
    search.WINDOW, parsing._LONGEST_MATCH = window, 20
    patterns = [parsing._HTML_BLOCK, parsing._IMPORTANCE_TAG]
    if "<span" not in text.lower():
        patterns.append(parsing._HTML_RICH)
    try:
        for pattern in patterns:
            assert parsing._found(pattern, text) == (pattern.search(text) is not None), pattern
        # the reserved-marker test rules texts out a window at a time, and is exact
        from salience.markup.rendering import RESERVED, defuse, has_marker

        assert has_marker(text) == (RESERVED.search(text) is not None)
        assert (defuse(text) == text) == (RESERVED.search(text) is None)
    finally:
        search.WINDOW, parsing._LONGEST_MATCH = saved
