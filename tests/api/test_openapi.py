"""The OpenAPI document and its page: public, complete, and true to what the server enforces.

A client author (or a fuzzer) reads /schema/openapi.json without a token and finds every
endpoint with the role it needs, its bodies (raw ones included) and answers, and every
problem type. The roles are checked against the role matrix (tests/support/access.py)
that tests/api/test_auth.py proves by calling each endpoint with each role.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from registry import fastpath
from registry.core.manifest import MANIFEST_MEDIA_TYPE
from registry.core.problems import PROBLEM_BASE
from registry.openapi.document import served_routes
from registry.openapi.operations import OPERATIONS
from registry.problems import _HTTP_SLUGS, OTHER_HTTP_SLUG, PROBLEMS
from tests.conftest import Api
from tests.support.access import MATRIX

METHODS = ("get", "head", "put", "post", "patch", "delete")


@pytest.fixture
def document(api: Api) -> dict[str, Any]:
    answer = api.client.get("/schema/openapi.json")  # no token
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("application/vnd.oai.openapi+json")
    doc: dict[str, Any] = answer.json()
    return doc


def operations(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        f"{method.upper()} {path}": item[method]
        for path, item in doc["paths"].items()
        for method in METHODS
        if method in item
    }


def test_document_is_openapi_3_1_and_names_every_route(api: Api, document: dict[str, Any]) -> None:
    assert document["openapi"].startswith("3.1.")
    routes = {r.key for r in served_routes(api.app.app)}
    documented = set(operations(document))
    assert documented == routes
    assert set(OPERATIONS) == routes, "every route needs an entry in registry/openapi/operations.py"
    assert len(routes) >= 41
    for key, op in operations(document).items():
        assert op["summary"] == OPERATIONS[key].summary
        assert op["tags"] == [OPERATIONS[key].tag]


def test_every_operation_names_the_role_the_server_enforces(document: dict[str, Any]) -> None:
    ops = operations(document)
    for method, template, _, allowed in MATRIX:
        key = f"{method} {re.sub(r':[a-z]+}', '}', template)}"
        if key not in ops:  # the document's own pages; the /v2 table (documented next)
            assert template.startswith(("/schema", "/v2/"))
            continue
        op = ops[key]
        assert op["x-reliquary-roles"] == sorted(r.value for r in allowed or ()), key
        assert op["x-reliquary-role"] in op["description"], key
        if allowed is None:
            assert op["x-reliquary-role"] == "anyone"
            assert op["security"] == []
        else:
            assert {"bearerAuth": []} in op["security"], key
            assert {"401", "403"} <= set(op["responses"]), key
    scheme = document["components"]["securitySchemes"]["bearerAuth"]
    assert scheme == {**scheme, "type": "http", "scheme": "bearer"}
    roles = {op["x-reliquary-role"] for op in ops.values()}
    assert {"anyone", "reader", "publisher", "admin", "governor", "worker"} <= roles


def test_every_error_is_a_problem_of_a_listed_type(document: dict[str, Any]) -> None:
    problem = document["components"]["schemas"]["Problem"]
    assert set(problem["required"]) == {"type", "title", "status", "detail"}
    listed = set(problem["properties"]["type"]["enum"])
    from_table = {PROBLEM_BASE + kind.slug for kind in PROBLEMS.values()}
    from_http = {PROBLEM_BASE + slug for slug in _HTTP_SLUGS.values()}
    assert listed == from_table | from_http | {PROBLEM_BASE + OTHER_HTTP_SLUG}
    catalogue = {(p["type"], p["status"]) for p in problem["x-reliquary-problem-types"]}
    assert {(PROBLEM_BASE + k.slug, k.status) for k in PROBLEMS.values()} <= catalogue
    for key, op in operations(document).items():
        errors = {code: answer for code, answer in op["responses"].items() if code[0] in "45"}
        assert {"4XX", "5XX"} <= set(errors), key
        for code, answer in errors.items():
            assert answer["content"] == {
                "application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}
            }, (key, code)


def test_raw_bodies_are_documented(api: Api, document: dict[str, Any]) -> None:
    ops = operations(document)
    raw = {  # handlers that read their body from ASGI themselves
        f"{method} {route.path_format}"
        for route in api.app.app.routes
        for method, (handler, _) in getattr(route, "route_handler_map", {}).items()
        if handler.request_max_body_size is None and handler.resolve_include_in_schema()
    }
    assert raw == {
        "PUT /v1/blobs/{digest}",
        "PATCH /v1/uploads/{upload_id}",
        "PUT /v1/artifacts",
        "POST /v1/artifacts/{digest}/attestations",
        "POST /v1/jobs/{job_id}/complete",
    }
    media = {key: set(ops[key]["requestBody"]["content"]) for key in raw}
    assert media["PUT /v1/blobs/{digest}"] == {"application/octet-stream"}
    assert media["PATCH /v1/uploads/{upload_id}"] == {"application/octet-stream"}
    assert media["PUT /v1/artifacts"] == {MANIFEST_MEDIA_TYPE}
    for key in ("POST /v1/artifacts/{digest}/attestations", "POST /v1/jobs/{job_id}/complete"):
        assert ops[key]["requestBody"]["content"]["application/json"]["schema"] == {
            "$ref": "#/components/schemas/Envelope"
        }
    manifest = document["components"]["schemas"]["Manifest"]
    assert {"schema", "kind", "name", "version", "files"} <= set(manifest["required"])
    patch = ops["PATCH /v1/uploads/{upload_id}"]
    assert any(p["name"] == "Upload-Offset" and p["in"] == "header" for p in patch["parameters"])
    get_blob = ops["GET /v1/blobs/{digest}"]
    assert any(p["name"] == "Range" for p in get_blob["parameters"])
    assert {"200", "206", "304", "416"} <= set(get_blob["responses"])


def test_fast_path_answers_are_described(document: dict[str, Any]) -> None:
    ops = operations(document)
    head = ops[f"HEAD {fastpath.BLOBS}{{digest}}"]
    get = ops[f"GET {fastpath.ARTIFACTS}{{digest}}"]
    for op in (head, get):
        assert op["x-reliquary-fast-path"] is True
        assert "ETag" in op["responses"]["200"]["headers"]
    assert MANIFEST_MEDIA_TYPE in get["responses"]["200"]["content"]


def test_links_lead_to_operations_that_exist(document: dict[str, Any]) -> None:
    ids = {op["operationId"] for op in operations(document).values()}
    links = [
        link
        for op in operations(document).values()
        for answer in op["responses"].values()
        for link in answer.get("links", {}).values()
    ]
    assert len(links) >= 15
    for link in links:
        assert link["operationId"] in ids
        assert all(v.startswith("$response.body#/") for v in link["parameters"].values())


def test_the_page_lists_every_operation_and_loads_nothing_from_elsewhere(
    api: Api, document: dict[str, Any]
) -> None:
    page = api.client.get("/schema")  # no token
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    html = page.text
    assert api.client.get("/schema/docs").text == html
    assert "<script" not in html
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html)
    assert "default-src 'none'" in html
    for key, op in operations(document).items():
        method, path = key.split(" ", 1)
        assert f'<h3 id="{op["operationId"]}"><span class="m {method.lower()}">' in html
        assert f"<code>{path}</code>" in html
    for kind in PROBLEMS.values():
        assert f"<code>{PROBLEM_BASE}{kind.slug}</code>" in html
    assert '<a href="/schema/openapi.json">' in html


def test_unknown_schema_pages_are_problems(api: Api) -> None:
    for path in ("/schema/swagger", "/schema/openapi.yaml", "/schema/nope.json"):
        answer = api.client.get(path)
        assert answer.status_code == 404
        assert answer.headers["content-type"] == "application/problem+json"
        assert answer.json()["detail"].startswith("no page")


def test_every_schema_reference_resolves(document: dict[str, Any]) -> None:
    text = json.dumps(document)
    named = set(re.findall(r'"#/components/schemas/([^"]+)"', text))
    assert named and named <= set(document["components"]["schemas"]), sorted(
        named - set(document["components"]["schemas"])
    )
