"""schemathesis's command line, every phase (examples, coverage, fuzzing, stateful), against a
live server with an upstream behind /v1 and a tiny budget for the local model's eval jobs: the
long form of tests/service/test_fuzz.py, for a release or a change to the API.

    .venv/bin/python -m tests.fuzz_live [-n 100] [any other `schemathesis run` option]

What is excluded, and why: ``positive_data_acceptance`` (a schema-valid request may still be
refused for what it means: strict markup that does not parse, an encoding not on this machine,
a grid over the limit) and ``use_after_free`` (DELETE /eval/{id} cancels a job; the job and its
records stay readable by design).
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from tests.fakes.openai_server import Behaviour, fake_openai
from tests.service.server import ROOT, Server, running_server

EXCLUDED = "positive_data_acceptance,use_after_free"


@contextmanager
def live_server() -> Iterator[Server]:
    """salience serve with a canned upstream behind /v1 and a tiny budget for eval jobs."""
    with (
        fake_openai(Behaviour(canned=True)) as upstream,
        running_server(
            SALIENCE_UPSTREAM_URL=upstream,
            SALIENCE_MAX_EVAL_SAMPLES="8",
            SALIENCE_LOCAL_MAX_TOKENS="4",
        ) as server,
    ):
        yield server


def main(argv: list[str]) -> int:
    with live_server() as server:
        command = [
            str(ROOT / ".venv" / "bin" / "schemathesis"), "run", f"{server.url}/openapi.json",
            "--phases", "examples,coverage,fuzzing,stateful", "--exclude-checks", EXCLUDED,
            "--request-timeout", "120", "--no-color", *(argv or ["-n", "100"]),
        ]  # fmt: skip
        return subprocess.run(command, check=False).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
