"""The HTTP API's description and its authentication answers, as a generated client sees
them."""

from __future__ import annotations

from typing import Any

import httpx


def test_the_openapi_description_is_public_and_names_every_operation(server: Any) -> None:
    r = httpx.get(f"{server.url}/api/v1/openapi.json")
    assert r.status_code == 200
    doc = r.json()
    ids = [op["operationId"] for ops in doc["paths"].values() for op in ops.values()]
    assert len(ids) == len(set(ids)) and "post_gate" in ids


def test_a_401_names_the_scheme_in_www_authenticate(server: Any) -> None:
    r = httpx.get(f"{server.url}/api/v1/traces")
    assert r.status_code == 401
    assert r.headers["www-authenticate"].startswith("Bearer")
    assert r.json()["error"]["code"] == "unauthenticated"
