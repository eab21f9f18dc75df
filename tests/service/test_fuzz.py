"""Schemathesis against the live /openapi.json: no 500, no response outside its schema.

Every operation is fuzzed with schema-valid and schema-violating requests (bounded examples);
``call_and_validate`` runs schemathesis's checks on each response: not a server error, a
documented status code and content type, a body that matches its schema, and bad input refused.
"""

from __future__ import annotations

from typing import Any

import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.core.result import Ok

from .server import Server

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
