"""``salience config``: every setting of the service, its value and where it came from.

Precedence, first found wins: a command-line flag, the ``SALIENCE_*`` environment variable, the
config file (``$SALIENCE_CONFIG``, else ``salience.toml`` here, else ``[tool.salience]`` in
``pyproject.toml`` here), the default.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from .common import CliError, command, json_option


def register(commands: Any) -> None:
    p = command(
        commands,
        "config",
        "print the effective settings and where each came from",
        __doc__,
        run=run,
    )
    p.add_argument(
        "--changed", action="store_true", help="only the settings that are not at their default"
    )
    json_option(p, "one JSON object: the config file in force and every setting")


def run(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from ..core.config import ConfigError, config_file, provenance

    try:
        found = config_file()
        rows = provenance()
    except ConfigError as error:
        raise CliError(str(error), name="bad-config") from None
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc']))}={e.get('input')!r}: {e['msg']}" for e in error.errors()
        )
        raise CliError(f"bad setting: {problems}", name="bad-config") from None
    if args.changed:
        rows = [r for r in rows if r["source"] != "default"]
    file = None if found is None else {"path": str(found[0]), "table": found[1] or None}
    if args.json:
        print(json.dumps({"schema_version": 1, "config_file": file, "settings": rows},
                         ensure_ascii=False, default=str))  # fmt: skip
        return 0
    where = "none" if found is None else f"{found[0]}" + (f" [{found[1]}]" if found[1] else "")
    print(f"# config file: {where}", file=sys.stderr)
    width = max((len(r["name"]) for r in rows), default=0)
    for r in rows:
        value = json.dumps(r["value"], ensure_ascii=False, default=str)
        print(f"{r['name']:<{width}} = {value}  # {r['source']}")
    return 0
