"""Ordinary mistakes on the command line, each run as a real process: one line on stderr in the
shape ``salience <command>: error: …``, a non-zero exit (2 for usage), never a traceback —
unless SALIENCE_DEBUG=1 asks for one. Grid mistakes are caught before any model loads."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

SALIENCE = [sys.executable, "-m", "salience"]
ROOT = Path(__file__).resolve().parent.parent


def run(
    *args: str, stdin: str | bytes | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run salience; the output is decoded here (a Latin-1 stdin must not trip the harness)."""
    done = subprocess.run(
        [*SALIENCE, *args],
        input=stdin.encode() if isinstance(stdin, str) else stdin,
        capture_output=True,
        cwd=ROOT,
        env={**os.environ, "NO_COLOR": "1", **(env or {})},
        timeout=120,
    )
    return subprocess.CompletedProcess(
        done.args,
        done.returncode,
        done.stdout.decode("utf-8", "replace"),
        done.stderr.decode("utf-8", "replace"),
    )


def one_line_error(out: subprocess.CompletedProcess[str], command: str, *words: str) -> str:
    assert "Traceback" not in out.stderr, out.stderr
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, out.stderr
    assert lines[0].startswith(f"salience {command}: error: "), lines[0]
    for word in words:
        assert word in lines[0], (word, lines[0])
    return lines[0]


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("cli")
    latin = root / "latin1.txt"
    latin.write_bytes("Résumé: <rule>be brief</rule>".encode("latin-1"))
    folder = root / "a-folder"
    folder.mkdir()
    not_a_model = root / "notes.gguf"
    not_a_model.write_text("this is not a model\n", encoding="utf-8")
    readonly = root / "readonly"
    readonly.mkdir()
    readonly.chmod(0o555)
    return {"latin": latin, "folder": folder, "not_a_model": not_a_model, "readonly": readonly}


def test_a_missing_input_file(files: dict[str, Path]) -> None:
    out = run("annotate", "nonexist.txt")
    assert out.returncode == 1
    one_line_error(out, "annotate", "nonexist.txt", "no such file")


def test_a_folder_given_as_input(files: dict[str, Path]) -> None:
    out = run("annotate", str(files["folder"]))
    assert out.returncode == 1
    one_line_error(out, "annotate", "is a folder")


def test_a_latin1_file_names_the_byte_offset(files: dict[str, Path]) -> None:
    out = run("annotate", str(files["latin"]))
    assert out.returncode == 1
    one_line_error(out, "annotate", "not UTF-8 at byte 1", "0xe9")


def test_latin1_on_standard_input() -> None:
    out = run("annotate", stdin="caf\xe9".encode("latin-1"))
    assert out.returncode == 1
    one_line_error(out, "annotate", "<stdin>", "not UTF-8 at byte 3")


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--lengths", "0,abc"], ["--lengths", "'abc' is not a whole number"]),
        (["--lengths", "0,-5"], ["--lengths", "below 0"]),
        (["--methods", "none,bogus"], ["--methods", "'bogus'"]),
        (["--methods", "uniform@x"], ["--methods", "not a number"]),
        (["--kinds", "foo"], ["--kinds", "'foo'", "prose"]),
        (["--positions", "middle"], ["--positions", "'middle'", "before"]),
        (["--families", "nope"], ["--families", "'nope'"]),
        (["--items", "0"], ["--items", "below 1"]),
        (["--samples", "-1"], ["--samples", "below 0"]),
    ],
)
def test_bad_grid_values_are_usage_errors(args: list[str], words: list[str]) -> None:
    out = run("eval", "run", "--db", "/no-such-dir-salience/x.sqlite3", *args)
    assert out.returncode == 2
    one_line_error(out, "eval run", *words)


def test_unwritable_db_is_refused_before_any_model_loads(files: dict[str, Path]) -> None:
    # not even root can create a file in /proc
    target = "/proc/x.sqlite3" if os.geteuid() == 0 else str(files["readonly"] / "x.sqlite3")
    out = run("eval", "run", "--db", target, "--items", "1")
    assert out.returncode == 1
    one_line_error(out, "eval run", "--db", "not writable")
    assert "Loading" not in out.stderr


def test_a_nonexistent_model_path(tmp_path: Path) -> None:
    missing = str(tmp_path / "no-such-model.gguf")
    out = run("generate", "--model", missing, "x.md")
    assert out.returncode == 2
    one_line_error(out, "generate", f"--model {missing}", "no such file")
    out = run("eval", "run", "--model", missing, "--db", str(tmp_path / "x.sqlite3"))
    assert out.returncode == 2
    one_line_error(out, "eval run", f"--model {missing}")
    assert not (tmp_path / "x.sqlite3").exists()


def test_a_file_that_is_not_a_model(files: dict[str, Path]) -> None:
    out = run("generate", "--model", str(files["not_a_model"]), stdin="Say hi.")
    assert out.returncode == 1
    one_line_error(out, "generate", "cannot load", str(files["not_a_model"]))


def test_report_on_a_missing_database_is_an_error_and_creates_nothing(tmp_path: Path) -> None:
    db = tmp_path / "missing.sqlite3"
    out = run("eval", "report", "some-run", "--db", str(db))
    assert out.returncode == 1
    one_line_error(out, "eval report", "no such database")
    assert not db.exists()
    out = run("eval", "list", "--db", str(db))
    assert out.returncode == 1
    one_line_error(out, "eval list", "no such database")
    assert not db.exists()


def test_a_bad_port_in_the_environment() -> None:
    out = run("serve", env={"SALIENCE_PORT": "abc"})
    assert out.returncode == 2
    one_line_error(out, "serve", "SALIENCE_PORT='abc'")


def test_an_unknown_option_is_one_line_too() -> None:
    out = run("annotate", "--colour", "always")
    assert out.returncode == 2
    one_line_error(out, "annotate", "--colour", "--help")


def test_a_broken_pipe_ends_quietly() -> None:
    text = "<rule>Be brief.</rule> " + "word " * 200_000
    proc = subprocess.Popen(
        [*SALIENCE, "annotate", "--tokens"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=ROOT,
    )
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    proc.stdin.write(text.encode())
    proc.stdin.close()
    proc.stdout.readline()  # read one line, then hang up like `| head -1`
    proc.stdout.close()
    err = proc.stderr.read().decode()
    code = proc.wait(timeout=120)
    assert "Traceback" not in err and "BrokenPipe" not in err, err
    assert code == 141


def test_an_expected_failure_stays_one_line_in_debug_mode() -> None:
    out = run("annotate", "nonexist.txt", env={"SALIENCE_DEBUG": "1"})
    assert out.returncode == 1
    one_line_error(out, "annotate", "no such file")


def test_help_shows_every_default() -> None:
    out = run("eval", "run", "--help")
    assert out.returncode == 0
    text = " ".join(out.stdout.split())
    for option, default in [
        ("--db", "evals.sqlite3"),
        ("--items", "4"),
        ("--lengths", "0,256"),
        ("--methods", "none,uniform"),
        ("--seed", "0"),
        ("--max-new-tokens", "64"),
    ]:
        assert option in text
        assert f"(default: {default})" in text, option


def test_every_option_of_every_command_has_help() -> None:
    from salience.service.cli import _leaves, build_parser

    missing = [
        f"{leaf.prog} {action.option_strings[0]}"
        for leaf in _leaves(build_parser())
        for action in leaf._actions
        if action.option_strings and action.dest != "help" and not action.help
    ]
    assert missing == []
