"""The OpenAPI document and its page: public, complete, and true to what the server enforces.

A client author (or a fuzzer) reads /schema/openapi.json without a token and finds every
endpoint with the role it needs, its bodies (raw ones included) and answers, and every
problem type. The roles are checked against the role matrix (tests/support/access.py)
that tests/api/test_auth.py proves by calling each endpoint with each role. The /v2
operations that one catch-all route dispatches (registry/domain/oci/routes.py) are
documented one by one, their errors in the OCI error body rather than problem+json.
"""

from __future__ import annotations

import base64
import json
import re
from typing import Any

import pytest

from registry import fastpath
from registry.core.manifest import MANIFEST_MEDIA_TYPE
from registry.core.problems import PROBLEM_BASE
from registry.core.roles import Role
from registry.domain.oci.routes import OCI_ROUTES
from registry.ocierrors import OCI_ERRORS, oci_code_for_status
from registry.openapi.document import served_routes
from registry.openapi.operations import OPERATIONS
from registry.problems import _HTTP_SLUGS, OTHER_HTTP_SLUG, PROBLEMS
from tests.conftest import Api, Deployment
from tests.support.access import MATRIX

METHODS = ("get", "head", "put", "post", "patch", "delete")
OCI_ERROR_CONTENT = {"application/json": {"schema": {"$ref": "#/components/schemas/OciErrors"}}}
PROBLEM_CONTENT = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}


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


def test_every_oci_operation_is_documented_at_its_template(document: dict[str, Any]) -> None:
    ops = operations(document)
    oci = {key: op for key, op in ops.items() if key.split(" ", 1)[1].startswith("/v2")}
    ordinary = {"GET /v2", "GET /v2/token"}  # Litestar routes; the rest: the catch-all's table
    assert set(oci) == ordinary | {f"{r.method} {r.template}" for r in OCI_ROUTES}
    assert "/v2/{name}/blobs/{digest}" in document["paths"]
    assert all(op["tags"] == ["oci"] for op in oci.values())
    assert len({op["operationId"] for op in ops.values()}) == len(ops)
    for route in OCI_ROUTES:
        op = ops[f"{route.method} {route.template}"]
        assert op["summary"] == route.summary
        in_path = {p["name"]: p for p in op["parameters"] if p["in"] == "path"}
        assert set(in_path) == set(re.findall(r"\{(\w+)\}", route.template)), route
        name = in_path.get("name")
        if name is not None:  # every route but the catalog
            assert name["required"] is True
            assert "`/`" in name["description"]
            assert re.fullmatch(name["schema"]["pattern"].strip("^$"), "library/app")
            assert not re.fullmatch(name["schema"]["pattern"].strip("^$"), "Library/App")
        success = {code for code in op["responses"] if code[0] in "23"}
        if route.method == "DELETE" and "uploads" not in route.template:
            assert success == set(), route  # refused: nothing is ever deleted
            assert "405" in op["responses"]
        else:
            assert success, route
    uploads = ops["POST /v2/{name}/blobs/uploads/"]
    assert {"201", "202"} <= set(uploads["responses"])
    assert "Location" in uploads["responses"]["202"]["headers"]
    digest = next(p for p in uploads["parameters"] if p["name"] == "digest")
    assert digest["required"] is False  # a session needs no digest; a one-request upload does
    assert digest["schema"]["pattern"] == "^sha256:[0-9a-f]{64}$"
    finish = ops["PUT /v2/{name}/blobs/uploads/{upload_id}"]
    assert next(p for p in finish["parameters"] if p["name"] == "digest")["required"] is True
    referrers = ops["GET /v2/{name}/referrers/{digest}"]["responses"]["200"]
    assert set(referrers["content"]) == {"application/vnd.oci.image.index.v1+json"}
    manifest = ops["PUT /v2/{name}/manifests/{reference}"]
    assert "application/vnd.oci.image.manifest.v1+json" in manifest["requestBody"]["content"]
    assert {"201", "409"} <= set(manifest["responses"])


def test_every_operation_names_the_role_the_server_enforces(document: dict[str, Any]) -> None:
    ops = operations(document)
    for method, template, _, allowed in MATRIX:
        key = f"{method} {re.sub(r':[a-z]+}', '}', template)}"
        if key not in ops:  # the document's own pages
            assert template.startswith("/schema")
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
    # registry clients learn where to log in from an unauthenticated GET /v2 (a 401)
    assert ops["GET /v2"]["security"] == [{"bearerAuth": []}, {"basicAuth": []}]
    assert "even when" in ops["GET /v2"]["description"]
    push = ops["PUT /v2/{name}/manifests/{reference}"]
    assert push["x-reliquary-roles"] == ["admin", "publisher"]
    assert push["x-reliquary-role"] == "publisher"
    assert push["security"] == [{"bearerAuth": []}, {"basicAuth": []}]
    pull = ops["GET /v2/{name}/blobs/{digest}"]
    assert pull["x-reliquary-role"] == "reader"
    assert pull["security"] == [{"bearerAuth": []}, {"basicAuth": []}, {}]
    for key, op in ops.items():  # Basic (a token as the password) is taken under /v2 only
        basic = {"basicAuth": []} in op["security"]
        assert basic == key.split(" ", 1)[1].startswith("/v2"), key
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
        oci = key.split(" ", 1)[1].startswith("/v2")
        for code, answer in errors.items():
            assert answer["content"] == (OCI_ERROR_CONTENT if oci else PROBLEM_CONTENT), (key, code)
        if oci and "401" in errors:
            assert "WWW-Authenticate" in errors["401"]["headers"], key


def test_the_oci_error_body_lists_every_code_the_server_answers(
    api: Api, document: dict[str, Any]
) -> None:
    schema = document["components"]["schemas"]["OciErrors"]
    item = schema["properties"]["errors"]["items"]
    codes = set(item["properties"]["code"]["enum"])
    answered = {c.code for c in OCI_ERRORS.values()}
    answered |= {oci_code_for_status(s).code for s in range(400, 600)}
    assert codes == answered
    assert {"BLOB_UNKNOWN", "MANIFEST_UNKNOWN", "UNAUTHORIZED", "DENIED", "UNSUPPORTED"} <= codes
    catalogue = {(c["code"], c["status"]) for c in schema["x-reliquary-oci-codes"]}
    assert {(c.code, c.status) for c in OCI_ERRORS.values()} <= catalogue
    # what the server answers has the documented shape: no token, a bad name, a refusal
    no_token = api.client.get("/v2/library/app/blobs/sha256:" + "0" * 64)
    bad_name = api.client.get("/v2/Library/tags/list", headers=api.auth(Role.READER))
    refused = api.client.delete("/v2/library/app/manifests/v1", headers=api.auth(Role.ADMIN))
    for answer, status, code in (
        (no_token, 401, "UNAUTHORIZED"),
        (bad_name, 400, "NAME_INVALID"),
        (refused, 405, "UNSUPPORTED"),
    ):
        assert answer.status_code == status
        assert answer.headers["content-type"].split(";")[0] == "application/json"
        body = answer.json()
        assert set(body) == {"errors"} and len(body["errors"]) == 1
        error = body["errors"][0]
        assert set(item["required"]) <= set(error) <= set(item["properties"])
        assert error["code"] == code and code in codes
    assert no_token.headers["www-authenticate"].startswith('Bearer realm="')


def test_security_says_which_operations_anonymous_callers_reach(
    deployment: Deployment, document: dict[str, Any]
) -> None:
    """``security`` lists ``{}`` exactly where an anonymous caller passes the guard when
    RELIQUARY_ANONYMOUS_READS is on, and ``basicAuth`` exactly where an admin token sent
    as a Basic password passes it."""
    ops = operations(document)
    admin = base64.b64encode(f"any:{deployment.token(Role.ADMIN)}".encode()).decode()
    with deployment.client(RELIQUARY_ANONYMOUS_READS="true") as client:
        for method, template, path, allowed in MATRIX:
            key = f"{method} {re.sub(r':[a-z]+}', '}', template)}"
            if key not in ops or allowed is None:
                continue
            body = b"" if method in ("GET", "HEAD", "DELETE") else b"x"
            status = client.request(method, path, content=body).status_code
            assert (status != 401) == ({} in ops[key]["security"]), (key, status)
            basic = {"authorization": f"Basic {admin}"}
            status = client.request(method, path, content=body, headers=basic).status_code
            assert (status != 401) == ({"basicAuth": []} in ops[key]["security"]), (key, status)


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
    for code in {c.code for c in OCI_ERRORS.values()}:
        assert f"<tr><td><code>{code}</code></td>" in html
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


def test_evaluation_shapes_are_in_the_document(document: dict[str, Any]) -> None:
    """A worker author finds what an evaluate job carries, a requester how to ask for one,
    a reader where the channel's evaluation stands."""
    schemas = document["components"]["schemas"]
    job = schemas["Job"]["properties"]
    assert {"task", "channel", "evaluation"} <= set(job)
    task = schemas["EvaluationTask"]["properties"]
    assert {"dataset", "thresholds", "baseline", "baseline_predictions", "tolerance"} <= set(task)
    assert {"task", "channel"} <= set(schemas["VerifyRequest"]["properties"])
    state = schemas["EvaluationState"]["properties"]
    assert {"dataset", "digest", "metrics", "changes", "drift", "finding"} <= set(state)
    assert "evaluation" in schemas["ChannelStatus"]["properties"]
