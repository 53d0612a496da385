"""The OpenAPI description and the server agree: schemathesis generates requests for every
operation from the description a running `tribunal serve` publishes (read without a token),
sends them with an admin token, and checks every answer: no 5xx, a status the operation
documents, the documented content type, and a body valid against the documented schema
(errors included: the one error shape)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any, Iterator, Tuple

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from conftest import Server, _token, start_server, tribunal_bin

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]

# Examples per operation: enough to reach every documented answer of the small API
# surface, few enough that the whole run stays within a couple of minutes on CI.
EXAMPLES = int(os.environ.get("TRIBUNAL_FUZZ_EXAMPLES", "12"))


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tuple[Server, str]]:
    """A server of its own (the fuzzer changes what it holds), with an admin token."""
    d = tmp_path_factory.mktemp("fuzz")
    admin = _token(tribunal_bin(), d, "admin")
    proc, srv = start_server(d, ["--review-deadline-s", "1"])
    try:
        yield srv, admin
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture
def api(fuzzed: Tuple[Server, str]) -> Any:
    srv, _ = fuzzed
    # No token: the description is public.
    return schemathesis.openapi.from_url(f"{srv.url}/api/v1/openapi.json")


schema = schemathesis.pytest.from_fixture("api")


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_every_answer_matches_the_description(case: Any, fuzzed: Tuple[Server, str]) -> None:
    srv, admin = fuzzed
    case.call_and_validate(
        base_url=srv.url,
        headers={"Authorization": f"Bearer {admin}"},
        checks=CHECKS,
        timeout=30,
    )


def test_the_description_is_served_without_a_token(fuzzed: Tuple[Server, str]) -> None:
    srv, _ = fuzzed
    r = httpx.get(f"{srv.url}/api/v1/openapi.json")
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/json")
    doc = r.json()
    assert doc["openapi"].startswith("3.1")
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            assert op.get("operationId"), f"{method} {path}"
            assert any(s.startswith("2") for s in op["responses"]), f"{method} {path}"
