"""The OpenAPI description and the server agree: schemathesis generates requests for every
operation from the description a running `tribunal serve` publishes (read without a token),
sends them with an admin token, and checks every answer: no 5xx, a status the operation
documents, the documented content type, and a body valid against the documented schema
(errors included: the one error shape)."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path
from typing import Any, Dict, Iterator, List, Set, Tuple

import httpx
import pytest
import schemathesis
from schemathesis import GenerationMode
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    ignored_auth,
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
    negative_data_rejection,
    ignored_auth,
]

# Examples per operation: enough to reach every documented answer of the small API
# surface, few enough that the whole run stays within a couple of minutes on CI.
EXAMPLES = int(os.environ.get("TRIBUNAL_FUZZ_EXAMPLES", "25"))


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


def operations(url: str, token: str) -> List[Any]:
    """Every operation of the description the server publishes, read without a token; the
    requests made from it carry `token` as its `bearer` security scheme."""
    config = schemathesis.Config.from_dict({"auth": {"openapi": {"bearer": {"bearer": token}}}})
    schema = schemathesis.openapi.from_url(f"{url}/api/v1/openapi.json", config=config)
    return [result.ok() for result in schema.get_all_operations()]


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_every_answer_matches_the_description(fuzzed: Tuple[Server, str], mode: GenerationMode) -> None:
    """Valid requests (positive) and requests the description forbids (negative): each
    operation's answers checked, every disagreement collected before the test fails."""
    srv, admin = fuzzed
    ops = operations(srv.url, admin)
    assert len(ops) > 50
    failures: List[str] = []
    statuses: Dict[str, Set[int]] = {}
    for op in ops:

        @given(case=op.as_strategy(generation_mode=mode))
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
            database=None,
            print_blob=False,
        )
        def exercise(case: Any) -> None:
            r = case.call_and_validate(base_url=srv.url, checks=CHECKS, timeout=30)
            statuses.setdefault(op.label, set()).add(r.status_code)

        try:
            exercise()
        except Unsatisfiable:
            # Negative mode: the operation takes nothing a request could get wrong (no
            # parameters or body, or only strings any text satisfies).
            assert mode == GenerationMode.NEGATIVE, op.label
            continue
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as e:  # schemathesis' failure groups; all reported together
            failures.append(f"{op.label}: {e}")
    if mode == GenerationMode.POSITIVE:
        # The token was sent: no operation was refused for the lack of one, and valid
        # requests got through to real answers.
        # (Signing in is public, and its 401 is about the token in its body.)
        public = {op.label for op in ops if op.definition.raw.get("security") == []}
        assert not [op for op, seen in statuses.items() if 401 in seen and op not in public], statuses
        answered = [op for op, seen in statuses.items() if any(200 <= s < 300 for s in seen)]
        assert len(answered) >= 15, statuses
    else:
        # Invalid requests (besides those without a token) reached the checks of the routes.
        refused = [op for op, seen in statuses.items() if 400 in seen]
        assert len(refused) >= 10, statuses
    assert not failures, f"{len(failures)} operations disagree with the description:\n\n" + "\n\n".join(failures)


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


def test_every_route_that_needs_a_token_answers_401_with_www_authenticate(
    fuzzed: Tuple[Server, str],
) -> None:
    srv, _ = fuzzed
    doc = httpx.get(f"{srv.url}/api/v1/openapi.json").json()
    asked = 0
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            if op.get("security", doc["security"]) == []:
                continue
            url = srv.url + re.sub(r"\{[^}]+\}", "x", path)
            r = httpx.request(method.upper(), url, json={} if "requestBody" in op else None)
            label = f"{method.upper()} {path}"
            assert r.status_code == 401, f"{label}: {r.status_code} {r.text}"
            assert r.headers.get("www-authenticate", "").startswith("Bearer "), label
            assert r.json()["error"]["code"] == "unauthenticated", label
            assert op["responses"]["401"] == {"$ref": "#/components/responses/Unauthenticated"}, label
            asked += 1
    assert asked > 50
