"""The ``salience`` command: one module per subcommand, dispatched from here."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterator, Sequence

from . import (
    annotate,
    completion,
    config_cmd,
    eval_calibrate,
    eval_cmd,
    generate,
    model_cmd,
    serve,
)
from .common import EXIT_RUNTIME, EXIT_USAGE, CliError, HelpFormatter, Parser, report_error

EPILOG = """\
examples:
  salience serve                              the HTTP service on 127.0.0.1:8000 (docs at /docs)
  salience annotate prompt.md                 highlight what is marked (colour on a terminal)
  echo '<rule>Reply in JSON.</rule> Hi' | salience annotate --json
  salience annotate --render echo prompt.md   the text a model without a bias should get
  salience annotate --messages chat.json      OpenAI-style messages; markup only in trusted roles
  salience generate --method none,uniform p.md  answer on the local model, steered and not
"""


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="salience",
        description="Mark what matters in a prompt; make the model heed it.",
        epilog=EPILOG,
        formatter_class=HelpFormatter,
    )
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="show model-loading progress and details"
    )
    parser.add_argument("--version", action="version", version=f"salience {_version()}")
    parser.add_argument(
        "--json", action="store_true", dest="json_global",
        help="JSON output, for the commands that have it (the same as --json after the "
        "command), and errors as JSON on stderr",
    )  # fmt: skip
    parser.set_defaults(root_parser=parser)  # salience completion walks it
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    annotate.register(commands)
    serve.register(commands)
    generate.register(commands)
    model_cmd.register(commands)
    eval_calibrate.register(eval_cmd.register(commands))
    config_cmd.register(commands)
    completion.register(commands)
    return parser


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("salience")
    except PackageNotFoundError:  # a checkout that was never installed
        return "0+unknown"


def _leaves(parser: argparse.ArgumentParser) -> Iterator[argparse.ArgumentParser]:
    """The parsers that run something (no subcommands of their own)."""
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        yield parser
    for action in subs:
        for child in dict.fromkeys(action.choices.values()):
            yield from _leaves(child)


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command. Expected failures print one line and exit 1 (2: usage); so does an
    unexpected one, unless SALIENCE_DEBUG=1 asks for its traceback."""
    parser = build_parser()
    leaves = {leaf.prog: leaf for leaf in _leaves(parser)}
    for prog, leaf in leaves.items():
        leaf.set_defaults(prog=prog)
    args, extra = parser.parse_known_args(argv)
    if extra:  # said by the subcommand that was given them, not by the top-level parser
        leaves.get(getattr(args, "prog", ""), parser).error(
            f"unrecognized arguments: {' '.join(extra)}"
        )
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    prog = getattr(args, "prog", "salience")
    if args.json_global:
        if not hasattr(args, "json"):
            report_error(prog, True, "usage", f"--json: {prog} has no JSON output")
            return EXIT_USAGE
        args.json = True
    as_json = bool(getattr(args, "json", False))
    if args.verbose:
        os.environ["SALIENCE_VERBOSE"] = "1"
    try:
        code: int = args.run(args)
        sys.stdout.flush()
    except CliError as error:
        report_error(prog, as_json, error.name, str(error))
        return error.code
    except BrokenPipeError:
        # the reader went away (``| head``): stop quietly; stdout goes nowhere from here on, so
        # the interpreter's own flush at exit cannot fail again
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141  # 128 + SIGPIPE, what a shell reports for a command a pipe cut short
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except Exception as error:
        if os.environ.get("SALIENCE_DEBUG"):
            raise
        message = f"{type(error).__name__}: {error} (SALIENCE_DEBUG=1 shows the traceback)"
        report_error(prog, as_json, "internal", message)
        return EXIT_RUNTIME
    return code


if __name__ == "__main__":
    sys.exit(main())
