"""Schemathesis against the live /openapi.json: no 500, no response outside its schema.

Every operation is fuzzed with schema-valid and schema-violating requests (bounded examples);
``call_and_validate`` runs schemathesis's checks on each response: not a server error, a
documented status code and content type, a body that matches its schema, and bad input refused.
Then sequences of calls (schemathesis's state machine, following the API's links and the ones
it infers: POST /eval → the job's GET, events, report, DELETE), against a server with an
upstream behind /v1 and a tiny budget for the local model's eval jobs.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.core.result import Ok

from tests.fakes.openai_server import Behaviour, fake_openai

from .server import Server, running_server

MAX_EXAMPLES = 40
# A schema-valid request may still be refused for what it means (strict markup that does not
# parse, an encoding that is not on this machine, a prompt over the token limit), with a 422
# problem: that is the API's contract, so the "positive data is accepted" check does not apply.
SEMANTIC = [schemathesis.checks.positive_data_acceptance]
# DELETE /eval/{id} cancels a job; the job and its records stay readable (by design), which the
# "deleted resource still available" check would count as a failure
CANCEL_KEEPS = [schemathesis.checks.use_after_free]


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
    with (
        fake_openai(Behaviour(canned=True)) as upstream,
        running_server(
            SALIENCE_UPSTREAM_URL=upstream,
            SALIENCE_MAX_EVAL_SAMPLES="8",
            SALIENCE_LOCAL_MAX_TOKENS="4",
        ) as server,
    ):
        yield server


def test_sequences_of_calls_never_fail(live: Server) -> None:
    schema = schemathesis.openapi.from_url(f"{live.url}/openapi.json")
    machine = schema.as_state_machine()

    class Checked(machine):  # type: ignore[valid-type, misc]
        def validate_response(self, response: Any, case: Any, *args: Any, **kwargs: Any) -> None:
            case.validate_response(response, excluded_checks=SEMANTIC + CANCEL_KEEPS)

    Checked.run(
        settings=settings(
            max_examples=25,
            stateful_step_count=6,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
    )
