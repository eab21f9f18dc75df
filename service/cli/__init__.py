"""The ``salience`` command: one module per subcommand, dispatched from here."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from . import annotate, eval_cmd, generate, model_cmd, serve

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
    parser = argparse.ArgumentParser(
        prog="salience",
        description="Mark what matters in a prompt; make the model heed it.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    annotate.register(commands)
    serve.register(commands)
    generate.register(commands)
    model_cmd.register(commands)
    eval_cmd.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    code: int = args.run(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
