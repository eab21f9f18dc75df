"""What every subcommand shares: one error path, argument types that check values before any
model loads, help that shows defaults, and input reading with errors a person can act on.

An expected failure raises ``CliError``; ``salience.main`` prints it as one line,

    salience <command>: error: <what>, <where> (<what to do>)

and exits 1 (2 for a usage error). argparse's own errors take the same one-line shape. Nothing
prints a traceback unless ``SALIENCE_DEBUG=1``.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn, TypeVar

EXIT_OK, EXIT_RUNTIME, EXIT_USAGE = 0, 1, 2
T = TypeVar("T")
MODEL_HELP = "a .gguf file or model folder (default: embedded)"


class CliError(Exception):
    """An expected failure: its message is the whole report (one line). ``name`` is its code
    in a JSON error (``--json``)."""

    def __init__(self, message: str, code: int = EXIT_RUNTIME, name: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.name = name or ("usage" if code == EXIT_USAGE else "failed")


def report_error(prog: str, as_json: bool, code: str, message: str, **fields: Any) -> None:
    """An error on stderr: ``prog: error: message``, or with ``--json`` one JSON object
    ``{"error": {"code", "message", "command", …fields}}``."""
    if as_json:
        import json

        error = {"code": code, "message": message, "command": prog, **fields}
        print(json.dumps({"error": error}, ensure_ascii=False), file=sys.stderr)
    else:
        print(f"{prog}: error: {message}", file=sys.stderr)


class HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """Descriptions as written, and every option's default after its help."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        default = action.default
        if default is None and action.option_strings and not action.required:
            # an option that does nothing unless given says so, unless its help says otherwise
            return text if "default" in text else f"{text} (default: unset)"
        if "%(default)" in text or default is None or default is False or default == "==SUPPRESS==":
            return text
        if action.option_strings or action.nargs in ("?", "*"):
            return f"{text} (default: %(default)s)" if text else "(default: %(default)s)"
        return text


class Parser(argparse.ArgumentParser):
    """argparse with a one-line error (usage errors exit 2) and defaults in the help."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]

    def error(self, message: str) -> NoReturn:
        if "--json" in sys.argv[1:]:
            report_error(self.prog, True, "usage", f"{message} (see {self.prog} --help)")
            self.exit(EXIT_USAGE)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def command(
    commands: Any,
    name: str,
    help: str,
    description: str | None = None,
    run: Callable[[argparse.Namespace], int] | None = None,
) -> argparse.ArgumentParser:
    """A (sub)command: ``help`` in its parent's command list, ``description`` (a module's
    docstring, say) written as it is but for its literal quotes (``x`` reads as x on a
    terminal), every option's default after its help, and ``run`` the function
    ``salience.main`` calls with the parsed arguments."""
    if description is not None:
        description = description.replace("``", "")
    parser: argparse.ArgumentParser = commands.add_parser(
        name, help=help, description=description, formatter_class=HelpFormatter
    )
    if run is not None:
        parser.set_defaults(run=run)
        # global flags work after the subcommand too (unset here, the top level's value stands)
        parser.add_argument(
            "-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
            help="show model-loading progress and details",
        )  # fmt: skip
    return parser


def json_option(parser: argparse.ArgumentParser, help: str) -> None:
    """``--json``: ``help`` says what it prints; errors are then JSON on stderr too (given
    before the subcommand, ``salience --json …``, it means the same)."""
    parser.add_argument("--json", action="store_true", help=f"{help}; errors as JSON on stderr")


def prompt_options(parser: argparse.ArgumentParser, *, what: str) -> None:
    """The prompt a command reads: FILE (``what`` it is) or standard input, ``--messages`` for
    JSON chat messages, and ``--detect-rules``."""
    parser.add_argument("file", nargs="?", default=None, help=f"{what}, or - for standard input")
    parser.add_argument("--messages", action="store_true", help="input is JSON chat messages")
    parser.add_argument(
        "--detect-rules",
        action="store_true",
        help="also mark sentences that state a rule as hard (source detected) where no explicit "
        "mark lies; in trusted messages only",
    )


def model_options(parser: argparse.ArgumentParser, *, seed: str) -> None:
    """``--seed`` (what it seeds: ``seed``), ``--threads`` and ``--model``: the options of every
    command that loads the local model."""
    parser.add_argument("--seed", type=int, default=0, help=seed)
    parser.add_argument(
        "--threads", type=at_least(1), default=None, help="torch threads (default: all)"
    )
    parser.add_argument("--model", default=None, help=MODEL_HELP)


def from_options(cls: Callable[..., T], args: argparse.Namespace, **given: Any) -> T:
    """The dataclass ``cls`` built from the command line: each of its fields that is an option
    of the same name takes the option's value, ``given`` overrides those (values an option
    holds in another form), and every other field keeps its default."""
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    values = {n: getattr(args, n) for n in names if hasattr(args, n)}
    return cls(**{**values, **given})


def read_text(path: str | None, what: str = "input") -> tuple[str, str | None]:
    """(name, text) of FILE, or of standard input for ``-`` or when input is piped (None: no
    input at all). UTF-8 only; a file that is missing, a folder, unreadable or not UTF-8 is a
    ``CliError`` that says which, and where."""
    if path is None or path == "-":
        if path is None and sys.stdin.isatty():
            return "<stdin>", None
        data = sys.stdin.buffer.read()
        return "<stdin>", _decode(data, "<stdin>")
    target = Path(path)
    try:
        data = target.read_bytes()
    except FileNotFoundError:
        raise CliError(
            f"{path}: no such file (pass an existing {what} file, or - for stdin)"
        ) from None
    except IsADirectoryError:
        raise CliError(
            f"{path}: is a folder, not a file (pass the {what} file inside it)"
        ) from None
    except PermissionError:
        raise CliError(f"{path}: permission denied (check the file's read permission)") from None
    except OSError as error:
        raise CliError(f"{path}: cannot read it: {error.strerror or error}") from None
    return path, _decode(data, path)


def _decode(data: bytes, name: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise CliError(
            f"{name}: not UTF-8 at byte {error.start} (byte 0x{data[error.start]:02x}; "
            "convert it first, e.g. iconv -f latin1 -t utf-8)"
        ) from None


def writable_file(path: str, what: str) -> Path:
    """``path`` as a file this process can create or write, or a ``CliError`` saying why not
    (checked before any work is done, by creating a scratch file beside it)."""
    target = Path(path)
    if target.is_dir():
        raise CliError(f"{what} {path}: is a folder (name a file)")
    if target.exists():
        try:
            with open(target, "ab"):
                pass
        except OSError as error:
            raise CliError(f"{what} {path}: not writable ({error.strerror})") from None
        return target
    _probe(target.parent, f"{what} {path}")
    return target


def writable_folder(path: str, what: str) -> Path:
    target = Path(path)
    if target.exists() and not target.is_dir():
        raise CliError(f"{what} {path}: is a file, not a folder")
    _probe(target, f"{what} {path}")
    return target


def _probe(folder: Path, label: str) -> None:
    """Can a file be created in ``folder`` (or, where it does not exist yet, in its nearest
    existing ancestor, where it would be made)?"""
    import tempfile

    probe = folder
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        raise CliError(f"{label}: {probe} is not a folder")
    try:
        with tempfile.TemporaryFile(dir=probe):
            pass
    except OSError as error:
        raise CliError(f"{label}: not writable ({error.strerror or error})") from None


# ---- argument types: argparse reports a ValueError/ArgumentTypeError as a usage error --------


def names(allowed: Sequence[str], what: str) -> Callable[[str], list[str]]:
    """A comma-separated list of names from ``allowed``."""

    def parse(text: str) -> list[str]:
        items = [p.strip() for p in text.split(",") if p.strip()]
        if not items:
            raise argparse.ArgumentTypeError(f"no {what} given")
        bad = [p for p in items if p not in allowed]
        if bad:
            raise argparse.ArgumentTypeError(
                f"unknown {what} {', '.join(map(repr, bad))} (use {', '.join(allowed)})"
            )
        return items

    parse.__name__ = what
    return parse


def whole_numbers(minimum: int = 0) -> Callable[[str], list[int]]:
    """A comma-separated list of whole numbers ≥ ``minimum``."""
    one = at_least(minimum)

    def parse(text: str) -> list[int]:
        out = [one(part.strip()) for part in text.split(",") if part.strip()]
        if not out:
            raise argparse.ArgumentTypeError("no numbers given")
        return out

    parse.__name__ = "numbers"
    return parse


def at_least(minimum: int) -> Callable[[str], int]:
    """A whole number ≥ ``minimum``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{value} is below {minimum}")
        return value

    parse.__name__ = "number"
    return parse


def check_model_path(path: str | None) -> None:
    """A ``--model`` that is given must exist (checked before anything loads), unless it reads
    as a Hugging Face model id (``owner/name``: the loader says why it cannot be had)."""
    if path and not Path(path).exists() and not _hub_id(path):
        raise CliError(
            f"--model {path}: no such file or folder (a .gguf file, a model folder or a Hugging "
            "Face model id; leave it out for the embedded model)",
            EXIT_USAGE,
        )


def _hub_id(name: str) -> bool:
    parts = name.split("/")
    return (
        len(parts) == 2
        and all(p and not p.startswith((".", "~")) for p in parts)
        and not (name.lower().endswith(".gguf"))
    )


DEVICES = ("auto", "cpu", "cuda", "mps")  # model.loader.DEVICES (tested)


def device_name(text: str) -> str:
    """``--device``: auto, cpu, cuda, cuda:N or mps (whether this machine has it is the
    loader's to say)."""
    kind, _, index = text.partition(":")
    if kind not in DEVICES or (index and (kind != "cuda" or not index.isdigit())):
        raise argparse.ArgumentTypeError(
            f"{text!r}: one of {', '.join(DEVICES)} (or cuda:N for one of several GPUs)"
        )
    return text


def methods(text: str) -> list[str]:
    """Method names (``uniform@0.5`` style values included), checked without loading a model."""
    from salience.model.methods import check_name

    items = [p.strip() for p in text.split(",") if p.strip()]
    if not items:
        raise argparse.ArgumentTypeError("no methods given")
    for item in items:
        try:
            check_name(item)
        except ValueError as error:
            raise argparse.ArgumentTypeError(str(error)) from None
    return items
