"""IFEval-format import: all 25 instruction ids, each verified strict and loose as the IFEval
paper defines it, on hand-written passing and failing responses."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from salience.evals.families import loose_variants
from salience.evals.ifeval import load, verify
from salience.evals.instructions import INSTRUCTION_IDS, UnsupportedInstruction, instruction

CAPITALS = "change_case:capital_word_frequency"
AT_LEAST = {"capital_frequency": 2, "capital_relation": "at least"}
LESS_THAN = {"capital_frequency": 2, "capital_relation": "less than"}

# (id, kwargs, response, strict verdict, loose verdict). Every id has at least one passing and
# one failing response; the boundary cases the definitions imply are spelled out.
CASES: list[tuple[str, dict[str, Any], str, bool, bool]] = [
    # capital words: runs of word characters written in capitals
    (CAPITALS, AT_LEAST, "NEVER share KEYS with anyone.", True, True),
    (CAPITALS, AT_LEAST, "NEVER share keys.", False, False),
    (CAPITALS, LESS_THAN, "DON'T do it.", False, False),  # DON'T is two capital words: DON, T
    (CAPITALS, LESS_THAN, "Only ONE here.", True, True),
    ("change_case:english_capital", {}, "THE RIVER RUNS FAST THROUGH THE OLD TOWN.", True, True),
    ("change_case:english_capital", {}, "THE RIVER RUNS FAST through THE OLD TOWN.", False, False),
    # capitals, but French: not English
    ("change_case:english_capital", {}, "LE FLEUVE TRAVERSE LA VIEILLE VILLE ET LES MONTAGNES.",
     False, False),
    # a preamble line in mixed case: strict fails, loose drops the first line
    ("change_case:english_capital", {}, "Sure, here it is:\nTHE RIVER RUNS FAST THROUGH TOWN.",
     False, True),
    ("change_case:english_lowercase", {}, "the river runs fast through the old town.", True, True),
    ("change_case:english_lowercase", {}, "The river runs fast through the old town.",
     False, False),
    ("change_case:english_lowercase", {}, "le fleuve traverse la vieille ville et les montagnes.",
     False, False),
    ("combination:repeat_prompt", {"prompt_to_repeat": "Describe the sea."},
     "  describe the SEA. The sea is vast.", True, True),
    ("combination:repeat_prompt", {"prompt_to_repeat": "Describe the sea."},
     "The sea is vast. Describe the sea.", False, False),
    ("combination:two_responses", {}, "Rome is old.\n******\nParis is older.", True, True),
    ("combination:two_responses", {}, "Rome is old.\n******\nRome is old.", False, False),
    ("combination:two_responses", {}, "A\n******\n\n******\nB", False, False),  # empty middle
    # three answers; loose drops the last line, and two are left
    ("combination:two_responses", {}, "A\n******\nB\n******\nC", False, True),
    ("combination:two_responses", {}, "******\nA\n******\nB\n******", True, True),  # empty ends
    ("detectable_content:number_placeholders", {"num_placeholders": 2},
     "Dear [name], see you at [address].", True, True),
    ("detectable_content:number_placeholders", {"num_placeholders": 2},
     "Dear [name], see you soon.", False, False),
    ("detectable_content:postscript", {"postscript_marker": "P.S."},
     "See you.\n\nP.S. Bring a coat.", True, True),
    ("detectable_content:postscript", {"postscript_marker": "P.S."},
     "See you.\n\nPS bring a coat.", False, False),
    ("detectable_content:postscript", {"postscript_marker": "P.P.S"},
     "See you.\nP.S. One.\nP.P.S Two.", True, True),
    ("detectable_content:postscript", {"postscript_marker": "P.P.S"},
     "See you.\nP.S. One.", False, False),  # a P.S. is not a P.P.S
    ("detectable_format:constrained_response", {}, "My answer is maybe.", True, True),
    ("detectable_format:constrained_response", {}, "My answer is perhaps.", False, False),
    ("detectable_format:json_format", {}, '```json\n{"a": [1, 2]}\n```', True, True),
    ("detectable_format:json_format", {}, '  {"a": 1}  ', True, True),
    ("detectable_format:json_format", {}, 'Here you go: {"a": 1}', False, False),
    ("detectable_format:json_format", {}, 'Here you go:\n{"a": 1}', False, True),
    ("detectable_format:multiple_sections", {"num_sections": 2, "section_spliter": "Section"},
     "Section 1\nIntro.\nSection 2\nBody.", True, True),
    ("detectable_format:multiple_sections", {"num_sections": 3, "section_spliter": "Section"},
     "Section 1\nIntro.\nSection 2\nBody.", False, False),
    ("detectable_format:number_bullet_lists", {"num_bullets": 2}, "* one\n* two", True, True),
    # exactly N, not at least N; loose may drop a line, and then two are left
    ("detectable_format:number_bullet_lists", {"num_bullets": 2}, "- one\n* two\n- three",
     False, True),
    ("detectable_format:number_bullet_lists", {"num_bullets": 3}, "- one\n- two", False, False),
    # a *** divider is not a bullet
    ("detectable_format:number_bullet_lists", {"num_bullets": 1}, "* one\n***\nend", True, True),
    ("detectable_format:number_highlighted_sections", {"num_highlights": 2},
     "This is *key* and **vital**.", True, True),
    ("detectable_format:number_highlighted_sections", {"num_highlights": 2},
     "This is *key* and ** ** not.", False, False),  # an empty highlight does not count
    ("detectable_format:title", {}, "<<The Sea>>\nIt is vast.", True, True),
    ("detectable_format:title", {}, "<< >>\nIt is vast.", False, False),
    ("detectable_format:title", {}, "<The Sea>\nIt is vast.", False, False),
    ("keywords:existence", {"keywords": ["river", "Moon"]}, "The moon over the RIVER.",
     True, True),
    ("keywords:existence", {"keywords": ["river", "moon"]}, "The moon.", False, False),
    ("keywords:forbidden_words", {"forbidden_words": ["cat"]}, "Concatenate the dogs.",
     True, True),  # whole words only
    ("keywords:forbidden_words", {"forbidden_words": ["cat"]}, "A Cat sat.", False, False),
    ("keywords:frequency", {"keyword": "sea", "frequency": 3, "relation": "at least"},
     "Sea, sea and SEA.", True, True),
    ("keywords:frequency", {"keyword": "sea", "frequency": 3, "relation": "less than"},
     "Sea, sea and SEA.", False, False),  # 3 is not less than 3
    ("keywords:letter_frequency", {"letter": "Z", "let_frequency": 3, "let_relation": "at least"},
     "Zig zag zoo.", True, True),  # letters counted case-insensitively
    ("keywords:letter_frequency", {"letter": "z", "let_frequency": 3, "let_relation": "less than"},
     "Zig zag zoo.", False, False),
    ("keywords:letter_frequency", {"letter": "#", "let_frequency": 2, "let_relation": "at least"},
     "#one #two", True, True),  # any one character, as the public rows that use # and ! mean
    ("keywords:letter_frequency", {"letter": "!", "let_frequency": 2, "let_relation": "less than"},
     "Wow! Yes! No!", False, False),
    ("language:response_language", {"language": "de"},
     "Der Fluss fließt schnell durch die alte Stadt und die Berge.", True, True),
    ("language:response_language", {"language": "de"},
     "The river runs fast through the old town and the hills.", False, False),
    ("language:response_language", {"language": "fr"}, "12345 !!!", True, True),  # no letters
    ("length_constraints:nth_paragraph_first_word",
     {"num_paragraphs": 3, "nth_paragraph": 2, "first_word": "then"},
     "First it rained.\n\n\"Then, the sun came.\n\nAt last, night.", True, True),
    ("length_constraints:nth_paragraph_first_word",
     {"num_paragraphs": 3, "nth_paragraph": 2, "first_word": "then"},
     "First it rained.\n\nAfter that, sun.\n\nAt last, night.", False, False),
    ("length_constraints:nth_paragraph_first_word",
     {"num_paragraphs": 2, "nth_paragraph": 2, "first_word": "then"},
     "First it rained.\n\nThen sun.\n\nAt last, night.", False, True),  # three; loose drops one
    ("length_constraints:number_paragraphs", {"num_paragraphs": 2}, "One.\n***\nTwo.", True, True),
    ("length_constraints:number_paragraphs", {"num_paragraphs": 2}, "One.\n***\nTwo.\n***\n",
     True, True),  # an empty last paragraph is not counted
    ("length_constraints:number_paragraphs", {"num_paragraphs": 2}, "One.\n***\n***\nTwo.",
     False, False),  # an empty paragraph between dividers fails
    ("length_constraints:number_paragraphs", {"num_paragraphs": 2}, "One.\n\nTwo.", False, False),
    # abbreviations, decimals and times stay inside a sentence: this is two
    ("length_constraints:number_sentences", {"num_sentences": 3, "relation": "less than"},
     "Dr. Smith paid 3.50 dollars, e.g. for tea. He left at 10 a.m. today.", True, True),
    ("length_constraints:number_sentences", {"num_sentences": 2, "relation": "less than"},
     "Dr. Smith paid 3.50 dollars, e.g. for tea. He left at 10 a.m. today.", False, False),
    ("length_constraints:number_sentences", {"num_sentences": 2, "relation": "at least"},
     "One sentence. Two sentences!", True, True),
    ("length_constraints:number_words", {"num_words": 6, "relation": "less than"},
     "one two three four five", True, True),
    ("length_constraints:number_words", {"num_words": 6, "relation": "less than"},
     "one two three four five six", False, False),  # six is not fewer than 6
    ("length_constraints:number_words", {"num_words": 6, "relation": "at least"},
     "one two three four five six", True, True),
    ("punctuation:no_comma", {}, "No commas here.", True, True),
    ("punctuation:no_comma", {}, "Well, yes.", False, False),
    ("startend:end_checker", {"end_phrase": "Any other questions?"},
     "Done.\nany other questions?  ", True, True),
    ("startend:end_checker", {"end_phrase": "Any other questions?"},
     "Any other questions? Bye.", False, False),
    ("startend:quotation", {}, '  "The sea is vast."  \n', True, True),
    ("startend:quotation", {}, 'The "sea" is vast.', False, False),
    ("startend:quotation", {}, 'Here:\n"The sea is vast."', False, True),
]  # fmt: skip


def test_every_one_of_the_25_ids_has_passing_and_failing_cases() -> None:
    assert len(INSTRUCTION_IDS) == 25
    for instruction_id in INSTRUCTION_IDS:
        verdicts = {strict for i, _, _, strict, _ in CASES if i == instruction_id}
        assert verdicts == {True, False}, instruction_id


@pytest.mark.parametrize(("instruction_id", "kwargs", "response", "strict", "loose"), CASES)
def test_each_instruction_strict_and_loose(
    instruction_id: str, kwargs: dict[str, Any], response: str, strict: bool, loose: bool
) -> None:
    check = instruction(instruction_id, kwargs)
    assert check.strict(response) is strict
    assert check.loose(response) is loose


def test_loose_tries_the_eight_forms_and_a_strict_pass_is_a_loose_pass() -> None:
    forms = loose_variants("Sure:\n**BODY**\nBye")
    assert forms == [
        "Sure:\n**BODY**\nBye",
        "**BODY**\nBye",
        "Sure:\n**BODY**",
        "**BODY**",
        "Sure:\nBODY\nBye",
        "BODY\nBye",
        "Sure:\nBODY",
        "BODY",
    ]
    for instruction_id, _, response, strict, loose in CASES:
        assert loose or not strict, (instruction_id, response)


def test_null_padded_kwargs_are_ignored_and_bad_kwargs_are_refused() -> None:
    padded = {"num_words": 3, "relation": "at least", "keyword": None, "language": None}
    assert instruction("length_constraints:number_words", padded).kwargs == {
        "num_words": 3,
        "relation": "at least",
    }
    bad: list[tuple[str, dict[str, Any]]] = [
        ("length_constraints:number_words", {"num_words": 3, "relation": "at most"}),
        ("length_constraints:number_words", {"num_words": "3", "relation": "at least"}),
        ("keywords:letter_frequency", {"letter": "ab", "let_frequency": 1, "let_relation": "at least"}),  # noqa: E501
        ("keywords:existence", {"keywords": []}),
        ("startend:end_checker", {}),
        ("no:such_id", {}),
    ]  # fmt: skip
    for instruction_id, kwargs in bad:
        with pytest.raises(UnsupportedInstruction):
            instruction(instruction_id, kwargs)


def _rows_using_every_id() -> list[dict[str, Any]]:
    """One row per case that passes strict, so every id appears; two ids share the last row."""
    rows: list[dict[str, Any]] = []
    seen: set[str] = set()
    for instruction_id, kwargs, _, strict, _ in CASES:
        if strict and instruction_id not in seen:
            seen.add(instruction_id)
            padded = {**kwargs, "unused_by_this_id": None}
            rows.append(
                {
                    "key": len(rows) + 1,
                    "prompt": f"A prompt with {instruction_id}.",
                    "instruction_id_list": [instruction_id],
                    "kwargs": [padded],
                }
            )
    rows.append(
        {
            "key": 1000,
            "prompt": "Write fewer than 6 words, no commas.",
            "instruction_id_list": ["length_constraints:number_words", "punctuation:no_comma"],
            "kwargs": [{"relation": "less than", "num_words": 6}, {}],
        }
    )
    return rows


def test_a_file_with_every_id_imports_with_nothing_skipped(tmp_path: Path) -> None:
    path = tmp_path / "ifeval.jsonl"
    rows = _rows_using_every_id()
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    imported = load(path)
    assert imported.skipped_rows == 0
    assert {i for row in imported.rows for i in row.instruction_ids} == set(INSTRUCTION_IDS)
    two = imported.rows[-1]
    assert verify(two, "Rome is very old") == {
        "strict": True,
        "loose": True,
        "instructions_strict": [True, True],
        "instructions_loose": [True, True],
    }
    assert verify(two, "Rome is old, very old.")["instructions_strict"] == [True, False]


def test_rows_outside_the_25_ids_or_with_bad_kwargs_are_skipped_and_counted(
    tmp_path: Path,
) -> None:
    rows = [
        {"key": 1, "prompt": "p", "instruction_id_list": ["change_case:english_lowercase"],
         "kwargs": [{}]},
        {"key": 2, "prompt": "p", "instruction_id_list": ["detectable_format:haiku"],
         "kwargs": [{}]},
        {"key": 3, "prompt": "p", "instruction_id_list": ["length_constraints:number_words"],
         "kwargs": [{"num_words": 5}]},
        {"key": 4, "prompt": "p", "instruction_id_list": [], "kwargs": []},
    ]  # fmt: skip
    path = tmp_path / "ifeval.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    imported = load(path)
    assert [r.key for r in imported.rows] == ["1"]
    assert imported.skipped["detectable_format:haiku"] == 1
    assert imported.skipped["(no instructions)"] == 1
    [bad] = [k for k in imported.skipped if k.startswith("length_constraints:number_words")]
    assert "relation" in bad


ROWS = [
    {
        "key": 1,
        "prompt": "Write about Rome in lowercase.",
        "instruction_id_list": ["change_case:english_lowercase"],
        "kwargs": [{}],
    },
    {
        "key": 2,
        "prompt": "Describe Rome. Write fewer than 6 words. Do not use any commas.",
        "instruction_id_list": ["length_constraints:number_words", "punctuation:no_comma"],
        "kwargs": [{"relation": "less than", "num_words": 6}, {}],
    },
    {
        "key": 3,
        "prompt": "Answer in a haiku.",
        "instruction_id_list": ["detectable_format:haiku"],
        "kwargs": [{}],
    },
    {
        "key": 4,
        "prompt": "Use the words river and moon.",
        "instruction_id_list": ["keywords:existence"],
        "kwargs": [{"keywords": ["river", "moon"]}],
    },
]


def test_a_dataset_runs_the_whole_grid_through_a_remote_server_and_reports(
    tmp_path: Path,
) -> None:
    import subprocess
    import sys

    from salience.evals.store import Store
    from tests.fakes.openai_server import Behaviour, fake_openai

    path = tmp_path / "ifeval.jsonl"
    rows = [*ROWS]
    rows[0] = {**rows[0], "rules": ["in lowercase"]}  # the row's own rule span
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    db = str(tmp_path / "d.sqlite3")
    root = Path(__file__).resolve().parents[2]
    with fake_openai(Behaviour()) as url:
        out = subprocess.run(
            [sys.executable, "-m", "salience", "eval", "run", "--dataset", str(path), "--db", db,
             "--name", "d", "--base-url", url, "--remote-model", "m", "--methods", "none,xml",
             "--lengths", "0,64", "--kinds", "prose", "--positions", "before,after",
             "--items", "3", "--quiet"],
            cwd=root, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "3 rows can be verified; skipped rows: detectable_format:haiku: 1" in out.stdout
    store = Store(db)
    records = list(store.records("d"))
    store.close()
    # 3 rows × 2 lengths × 2 positions × 2 methods, less the prompts that coincide: at length
    # 0 the positions do (3 prompts), and the row without a rule has one prompt at 64 (5)
    assert len(records) == (3 + 5) * 2
    assert {r["length"] for r in records} == {0, 64}
    assert {r["method"] for r in records} == {"none", "xml"}
    by_row = {r["task"]: r for r in records}
    assert by_row["row-1"]["rules_source"] == "row"
    assert by_row["row-2"]["rules_source"] == "detected"
    assert by_row["row-2"]["instructions"] == [
        "length_constraints:number_words",
        "punctuation:no_comma",
    ]
    assert all(len(r["instructions_strict"]) == len(r["instructions"]) for r in records)
    assert all(r["split"] == "dataset" and r["dataset"] == str(path) for r in records)
    report = subprocess.run(
        [sys.executable, "-m", "salience", "eval", "report", "d", "--db", db],
        cwd=root, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert report.returncode == 0, report.stderr
    assert "## IFEval scores" in report.stdout
    # at 64 tokens, 3 rows × 2 positions, but the row with no rule found has one prompt for both
    assert "| none | 64 | 5 |" in report.stdout and "| xml | 0 | 3 |" in report.stdout
    assert by_row["row-4"]["rules_source"] == "none"


def test_dataset_rows_become_items_with_their_rules_placed_apart_from_the_task() -> None:
    from salience.evals.ifeval import Imported, Row, items

    prompt = "Write a poem about the sea. Your entire response must be in lowercase letters."
    check = instruction("change_case:english_lowercase", {})
    detected, given = items(
        Imported(
            rows=[
                Row("1", prompt, ("change_case:english_lowercase",), (check,)),
                Row("2", prompt, ("change_case:english_lowercase",), (check,), ((0, 27),)),
            ]
        )
    )
    assert detected.rule == "Your entire response must be in lowercase letters."
    assert detected.task.prompt == "Write a poem about the sea."
    assert detected.family.rules_source == "detected"  # type: ignore[attr-defined]
    assert given.rule == "Write a poem about the sea."
    assert given.family.rules_source == "row"  # type: ignore[attr-defined]
    assert detected.family.strict("a calm grey sea.", {})
    assert not detected.family.strict("A calm grey sea.", {})
