"""IFEval-format import: supported ids verified with salience's families, the rest counted."""

from __future__ import annotations

import json
from pathlib import Path

from evals.ifeval import load, verify

ROWS = [
    {
        "key": 1,
        "prompt": "Write about Rome in lowercase.",
        "instruction_id_list": ["change_case:english_lowercase"],
        "kwargs": [{}],
    },
    {
        "key": 2,
        "prompt": "Write fewer than 6 words, no commas.",
        "instruction_id_list": ["length_constraints:number_words", "punctuation:no_comma"],
        "kwargs": [{"relation": "less than", "num_words": 6}, {}],
    },
    {
        "key": 3,
        "prompt": "Answer in Hindi.",
        "instruction_id_list": ["language:response_language"],
        "kwargs": [{"language": "hi"}],
    },
    {
        "key": 4,
        "prompt": "Use the words a and b.",
        "instruction_id_list": ["keywords:existence"],
        "kwargs": [{"keywords": ["river", "moon"]}],
    },
]


def test_import_verifies_supported_rows_and_counts_the_rest(tmp_path: Path) -> None:
    path = tmp_path / "ifeval.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in ROWS) + "\n")
    imported = load(path)
    assert [r.key for r in imported.rows] == ["1", "2", "4"]
    assert imported.skipped == {"language:response_language": 1}
    first, second, third = imported.rows
    assert verify(first, "rome is old.")["strict"] and not verify(first, "Rome is old.")["strict"]
    assert verify(second, "Rome is very old") == {
        "strict": True,
        "loose": True,
        "instructions_strict": [True, True],
        "instructions_loose": [True, True],
    }
    assert verify(second, "Rome is old, very old.")["instructions_strict"] == [True, False]
    assert not verify(second, "one two three four five six")["strict"]  # six is not fewer than 6
    assert verify(third, "The moon over the river.")["strict"]
    assert verify(third, "The moon.")["instructions_strict"] == [False, True]


def test_a_dataset_runs_through_a_remote_server_and_reports(tmp_path: Path) -> None:
    import subprocess
    import sys

    from tests.fakes.openai_server import Behaviour, fake_openai

    path = tmp_path / "ifeval.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in ROWS) + "\n")
    db = str(tmp_path / "d.sqlite3")
    root = Path(__file__).resolve().parents[2]
    with fake_openai(Behaviour()) as url:
        out = subprocess.run(
            [sys.executable, "-m", "service.cli", "eval", "run", "--dataset", str(path), "--db", db,
             "--name", "d", "--base-url", url, "--remote-model", "m", "--methods", "none,xml",
             "--quiet"],
            cwd=root, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert (
        "3 rows verified (6 new samples); skipped rows: language:response_language: 1" in out.stdout
    )
    report = subprocess.run(
        [sys.executable, "-m", "service.cli", "eval", "report", "d", "--db", db],
        cwd=root, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert report.returncode == 0, report.stderr
    assert "| none | 3 |" in report.stdout and "| xml | 3 |" in report.stdout
