"""The edit-and-map step both NFC normalisation and Document building go through."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from salience.markup._splice import Splice


@st.composite
def texts_and_edits(draw: st.DrawFn) -> tuple[str, list[tuple[int, int, str]]]:
    text = draw(st.text(alphabet="abcdé*<>", max_size=40))
    cuts = sorted(draw(st.lists(st.integers(0, len(text)), max_size=8)))
    edits = []
    for a, b in zip(cuts[::2], cuts[1::2], strict=False):
        edits.append((a, b, draw(st.text(alphabet="xyz", max_size=3))))
    return text, draw(st.permutations(edits))


@settings(max_examples=300, deadline=None)
@given(texts_and_edits())
def test_disjoint_edits_map_every_untouched_offset_there_and_back(
    case: tuple[str, list[tuple[int, int, str]]],
) -> None:
    text, edits = case
    splice = Splice(text, edits)
    ordered = sorted(edits, key=lambda e: (e[0], e[1]))  # ties keep their order
    expected, pos = [], 0
    for a, b, replacement in ordered:
        expected += [text[pos:a], replacement]
        pos = b
    assert splice.text == "".join([*expected, text[pos:]])
    mapped = [splice.to_new(o) for o in range(len(text) + 1)]
    assert mapped == sorted(mapped)  # order is kept
    if all(a < len(text) for a, _, _ in ordered):  # nothing inserted at the very end
        assert mapped[-1] == len(splice.text)
    for offset, character in enumerate(text):
        if any(a <= offset < b or a == offset for a, b, _ in ordered):
            continue  # replaced, or where a replacement begins
        assert splice.text[mapped[offset]] == character  # an untouched character stays itself
        assert splice.to_old(mapped[offset]) == offset  # and maps back


def test_overlapping_edits_remove_their_union() -> None:
    text = "> > [!NOTE] body"
    splice = Splice(text, [(0, 4, ""), (2, 12, ""), (3, 5, "")])
    assert splice.text == "body"
    assert [splice.to_new(o) for o in (0, 2, 4, 12, 16)] == [0, 0, 0, 0, 4]


def test_a_replacement_of_another_length_maps_back_to_its_start() -> None:
    splice = Splice("e\u0301 and A\u030a", [(0, 2, "é"), (7, 9, "Å")])
    assert splice.text == "é and Å"
    assert [splice.to_old(o) for o in range(len(splice.text) + 1)] == [0, 2, 3, 4, 5, 6, 7, 9]
    same = Splice("abc", [(1, 2, "X")])
    assert [same.to_old(o) for o in range(4)] == [0, 1, 2, 3]
