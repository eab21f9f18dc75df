"""``salience serve``: run the HTTP service with uvicorn.

Settings come from ``SALIENCE_*`` environment variables and the config file (``salience
config`` shows each and where it came from); ``--host``/``--port``/``--workers`` override them.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

from .common import CliError, at_least, command


def register(commands: Any) -> None:
    p = command(commands, "serve", "run the HTTP service (POST /annotate, /docs)", __doc__, run=run)
    p.add_argument("--host", default=None, help="default: $SALIENCE_HOST or 127.0.0.1")
    p.add_argument("--port", type=at_least(1), default=None, help="default: $SALIENCE_PORT or 8000")
    p.add_argument(
        "--workers", type=at_least(1), default=None, help="default: $SALIENCE_WORKERS or 1"
    )


def run(args: argparse.Namespace) -> int:
    import uvicorn
    from pydantic import ValidationError

    from ..app import create_app
    from ..core.config import ConfigError, Settings

    flags = {"host": args.host, "port": args.port, "workers": args.workers}
    overrides = {k: v for k, v in flags.items() if v is not None}
    try:
        settings = Settings(**overrides)
    except ConfigError as error:
        raise CliError(str(error), 2, name="bad-config") from None
    except ValidationError as error:
        problems = "; ".join(
            f"{_where('_'.join(map(str, e['loc'])))}={e.get('input')!r}: {e['msg']}"
            for e in error.errors()
        )
        raise CliError(
            f"bad setting: {problems} (fix it where it is set: `salience config` says where)", 2
        ) from None
    print(
        f"salience: serving on http://{settings.host}:{settings.port} (docs at /docs)", flush=True
    )
    common: dict[str, Any] = {
        "host": settings.host,
        "port": settings.port,
        "log_level": settings.log_level,
        "access_log": False,
        # a client whose headers never finish is answered 408 and closed (service.core)
        "http": "salience.service.core.slow_clients:HeaderTimeoutProtocol",
    }
    if settings.workers == 1:
        uvicorn.run(create_app(settings), **common)
        return 0
    # Worker processes build their own app from the environment: pass the overrides on.
    for key, value in overrides.items():
        os.environ[f"SALIENCE_{key.upper()}"] = str(value)
    uvicorn.run("salience.service.app:create_app", factory=True, workers=settings.workers, **common)
    return 0


def _where(name: str) -> str:
    """A setting as its user set it: the environment variable where one is set, else the
    config file's key."""
    variable = f"SALIENCE_{name.upper()}"
    return variable if variable in os.environ else name
