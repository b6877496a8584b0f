"""Schemathesis against a running server: every operation, generated input, four checks.

Used by tests/console/test_schemathesis.py and tests/sync/test_schemathesis.py. Bounded
(a few examples per operation, derandomised, no example database) so it fits `make test`.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Any

import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.core.result import Ok

#: No 5xx; status codes, content types and bodies as the OpenAPI document says.
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


def failures(
    spec: dict[str, Any],
    base_url: str,
    *,
    headers: dict[str, str] | None = None,
    max_examples: int = 4,
    only: Callable[[str, str], bool] = lambda method, path: True,
    skip: Collection[str] = (),
    prepare: Callable[[Any], Any] = lambda case: case,
) -> list[str]:
    """Every failure schemathesis finds in the operations ``only`` picks (none: all pass).

    ``prepare`` may adjust each generated case (say, a path parameter to a gate that
    exists) before it is sent; ``skip`` names paths left out, each with its reason.
    """
    schema = schemathesis.openapi.from_dict(spec)
    found: list[str] = []
    operations = 0
    session = requests.Session()  # one connection for all calls, not one each
    for result in schema.get_all_operations():
        if not isinstance(result, Ok):  # the document itself is broken here
            found.append(f"unloadable operation: {result.err()}")
            continue
        operation = result.ok()
        method = operation.method.upper()
        if operation.path in skip or not only(method, operation.path):
            continue
        operations += 1

        @settings(
            max_examples=max_examples,
            derandomize=True,
            database=None,
            deadline=None,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        @given(case=operation.as_strategy())
        def call(case: Any) -> None:
            prepare(case).call_and_validate(
                base_url=base_url, session=session, headers=headers, checks=CHECKS
            )

        try:
            call()
        except BaseException as exc:  # schemathesis raises a FailureGroup (BaseException)
            if isinstance(exc, KeyboardInterrupt):
                raise
            found.append(f"{method} {operation.path}: {' '.join(str(exc).split())[:600]}")
    session.close()
    assert operations > 0, "no operation was called: the filter is wrong"
    return found
