"""Schemathesis against the live /openapi.json: no 500, no response outside its schema.

Every operation is fuzzed with schema-valid and schema-violating requests (bounded examples);
``call_and_validate`` runs schemathesis's checks on each response: not a server error, a
documented status code and content type, a body that matches its schema, and bad input refused.
Then sequences of calls (schemathesis's state machine, following the API's links and the ones
it infers: POST /eval → the job's GET, events, report, DELETE), against a server with an
upstream behind /v1 and a tiny budget for the local model's eval jobs.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.core.result import Ok

from tests.fuzz_live import EXCLUDED, live_server

from .server import ROOT, Server

MAX_EXAMPLES = 40
# A schema-valid request may still be refused for what it means (strict markup that does not
# parse, an encoding that is not on this machine, a prompt over the token limit), with a 422
# problem: that is the API's contract, so the "positive data is accepted" check does not apply.
SEMANTIC = [schemathesis.checks.positive_data_acceptance]


def test_every_operation_conforms_and_never_fails(server: Server) -> None:
    schema = schemathesis.openapi.from_url(f"{server.url}/openapi.json")
    operations = []
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), result
        operations.append(result.ok())
    assert len(operations) >= 6
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=MAX_EXAMPLES,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def fuzz(case: Any) -> None:
            case.call_and_validate(excluded_checks=SEMANTIC)

        fuzz()


@pytest.fixture(scope="module")
def live() -> Iterator[Server]:
    with live_server() as server:
        yield server


def test_sequences_of_calls_never_fail(live: Server) -> None:
    """schemathesis's own stateful engine, by its command line, with a fixed seed on a fresh
    server and a small budget. A hypothesis state machine run in process cannot replay
    sequences whose links depend on the server's state (a job queue that fills up)."""
    command = [
        str(ROOT / ".venv" / "bin" / "schemathesis"), "run", f"{live.url}/openapi.json",
        "--phases", "stateful", "-n", "30", "--seed", "1", "--exclude-checks", EXCLUDED,
        "--request-timeout", "120", "--no-color",
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=900, check=False)
    assert done.returncode == 0, done.stdout[-6000:]
    scenarios = re.search(r"Scenarios:\s+(\d+)", done.stdout)
    assert scenarios is not None and int(scenarios.group(1)) > 0, done.stdout[-3000:]
    assert re.search(r"API Links:\s+[1-9]\d* covered", done.stdout), done.stdout[-3000:]
