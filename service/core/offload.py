"""Work off the event loop: every parse, document read, tokenization and serialisation too big
to do inline runs on the app's one parse pool.

One pool, and by default one thread (``SALIENCE_PARSE_THREADS``): the parsers are Python, so a
second thread adds no speed, and two threads that both hold the GIL starve the event loop of it
(/healthz took 216 ms behind a hostile batch parsed on two threads, 12 ms on one;
bench/adversarial.py). Everything that parses reaches the pool through ``off_loop``.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from starlette.requests import HTTPConnection

T = TypeVar("T")


def parse_pool(threads: int) -> ThreadPoolExecutor:
    return ThreadPoolExecutor(threads, thread_name_prefix="salience-parse")


async def off_loop(
    connection: HTTPConnection, func: Callable[..., T], *args: Any, **kwargs: Any
) -> T:
    """``func(*args, **kwargs)`` on the app's parse pool."""
    pool: ThreadPoolExecutor = connection.app.state.parse_pool
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(pool, functools.partial(func, *args, **kwargs))
