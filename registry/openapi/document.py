"""The served OpenAPI 3.1 document: Litestar's, completed from the code that enforces it.

Invariants:
- every operation says which role it needs, read from the route's guards
  (``registry.domain.auth.guards.roles_of``): in its description, in
  ``x-reliquary-role`` / ``x-reliquary-roles`` and in its ``security``;
- every error answer is ``application/problem+json`` with the ``Problem`` schema, whose
  ``type`` lists every slug of ``registry.problems`` (derived, never copied); under
  ``/v2`` it is the OCI error body (``OciErrors``, codes from ``registry.ocierrors``);
- the ``/v2`` operations that one catch-all route dispatches are listed one by one from
  ``registry.domain.oci.routes.OCI_ROUTES`` at their template paths, with the roles their
  access (pull, push, catalog) admits;
- raw bodies, hand-read headers and hand-built answers come from
  ``registry.openapi.operations``; links name their target by method and path and are
  resolved to operationIds here, so a renamed handler cannot leave a dangling link.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

import msgspec
from litestar import Litestar
from litestar.routes import HTTPRoute

from registry.core.digest import Algorithm
from registry.core.manifest import Manifest
from registry.core.problems import PROBLEM_BASE
from registry.core.roles import READ_ROLES, Role
from registry.domain.auth.guards import logged_in, roles_of
from registry.domain.oci.routes import OCI_ROUTES, Access, OciRoute
from registry.ocierrors import is_oci_path
from registry.openapi.operations import (
    ENVELOPE_SCHEMA,
    OCI_ERROR_MEDIA_TYPE,
    OCI_PATH_PARAMETERS,
    OPERATIONS,
    Doc,
    oci_errors_schema,
    oci_key,
    ref,
)
from registry.problems import MEDIA_TYPE, OTHER_HTTP_SLUG, problem_catalogue

BEARER = "bearerAuth"
BASIC = "basicAuth"  # under /v2 only: what registry clients send
METHODS = ("get", "head", "put", "post", "patch", "delete")
DIGEST_PATTERN = f"^({'|'.join(a.value for a in Algorithm)}):[0-9a-f]{{64}}$"
DESCRIPTION = """\
A content-addressed registry for ML models and container images: blobs, signed
manifests, attestations, release channels and a verifiable transparency log.

**Authentication.** Send `Authorization: Bearer <token>`. Each operation names the role
it needs (`x-reliquary-role`); `admin` passes every check. Read operations take any
token, and none when the server runs with `RELIQUARY_ANONYMOUS_READS=true`. Health,
metrics, this document and the log's checkpoint, key and proofs need no token.

**Errors.** Every error is `application/problem+json` (RFC 9457) with a stable `type`
(`https://reliquary.dev/problems/<slug>`): the `Problem` schema lists them all. Under
`/v2` (the OCI distribution API, tag `oci`) errors are the OCI error body
`{"errors": [{"code", "message", "detail"}]}` instead (the `OciErrors` schema), and a
401 carries a Bearer challenge naming the token endpoint: registry clients log in with
any user name and a Reliquary token as the password.
"""
# the one route that serves every /v2 operation of ``OCI_ROUTES`` (its own entry is hidden)
OCI_CATCH_ALL = "/v2/{path:path}"
# who each access of ``registry.domain.auth.guards.repository_access`` admits
OCI_ACCESS_ROLES: dict[Access, frozenset[Role]] = {
    "pull": READ_ROLES,
    "catalog": READ_ROLES,
    "push": frozenset({Role.PUBLISHER, Role.ADMIN}),
}


@dataclass(frozen=True, slots=True)
class Route:
    """One operation as the app serves it: its key in ``OPERATIONS`` and who may call it."""

    key: str  # "METHOD /path/{param}"
    roles: frozenset[Role] | None  # None: public, no guard
    # whether anonymous callers pass when RELIQUARY_ANONYMOUS_READS is on (read roles)
    anonymous: bool = True
    oci: OciRoute | None = None  # a /v2 operation of the catch-all route


def served_routes(app: Litestar) -> list[Route]:
    """Every documented (method, path) the app routes, with the roles its guards admit;
    where the app serves the ``/v2`` catch-all, every operation of ``OCI_ROUTES``."""
    routes: list[Route] = []
    for route in app.routes:
        if not isinstance(route, HTTPRoute):
            continue
        if route.path == OCI_CATCH_ALL:
            routes += [Route(oci_key(r), OCI_ACCESS_ROLES[r.access], oci=r) for r in OCI_ROUTES]
            continue
        for method, (handler, _) in route.route_handler_map.items():
            if method == "OPTIONS" or not handler.resolve_include_in_schema():
                continue
            roles: frozenset[Role] | None = None
            anonymous = True
            for guard in handler.resolve_guards():
                admitted = roles_of(guard)
                if admitted is None:
                    raise RuntimeError(f"{method} {route.path_format}: a guard of unknown roles")
                roles = admitted if roles is None else roles & admitted
                anonymous = anonymous and guard is not logged_in
            routes.append(Route(f"{method} {route.path_format or '/'}", roles, anonymous))
    return routes


def role_name(roles: frozenset[Role] | None) -> str:
    """``anyone``, ``reader`` (every token) or the roles besides admin: ``publisher``."""
    if roles is None:
        return "anyone"
    if roles >= READ_ROLES:
        return "reader"
    named = sorted(r.value for r in roles - {Role.ADMIN})
    return " | ".join(named) if named else Role.ADMIN.value


def role_sentence(roles: frozenset[Role] | None, anonymous: bool = True) -> str:
    if roles is None:
        return "**Role:** anyone (no token)."
    if roles >= READ_ROLES and not anonymous:
        return "**Role:** reader: any token, even when RELIQUARY_ANONYMOUS_READS is on."
    if roles >= READ_ROLES:
        return "**Role:** reader: any token; none needed when RELIQUARY_ANONYMOUS_READS is on."
    if roles == {Role.ADMIN}:
        return "**Role:** admin."
    return f"**Role:** {role_name(roles)} (admin passes too)."


def problem_schema() -> dict[str, Any]:
    catalogue = problem_catalogue()
    types = sorted({PROBLEM_BASE + k.slug for k in catalogue} | {PROBLEM_BASE + OTHER_HTTP_SLUG})
    return {
        "type": "object",
        "title": "Problem",
        "description": "An RFC 9457 problem. Errors may add machine-readable members "
        "(for example `missing` digests, `allowed_roles`, `problems`).",
        "required": ["type", "title", "status", "detail"],
        "properties": {
            "type": {
                "type": "string",
                "format": "uri",
                "enum": types,
                "description": f"`{PROBLEM_BASE}<slug>`; `{OTHER_HTTP_SLUG}` is any other "
                "HTTP error",
            },
            "title": {"type": "string"},
            "status": {"type": "integer", "minimum": 400, "maximum": 599},
            "detail": {"type": "string", "description": "what went wrong and what to do"},
            "instance": {"type": "string", "description": "the request path"},
        },
        "additionalProperties": True,
        "x-reliquary-problem-types": [
            {"type": PROBLEM_BASE + k.slug, "status": k.status, "title": k.title} for k in catalogue
        ],
    }


def _problem_answer(status: str) -> dict[str, Any]:
    if status == "4XX":
        phrase = "Another client error"
    elif status == "5XX":
        phrase = "The registry could not answer (storage, database, or a bug)"
    else:
        phrase = HTTPStatus(int(status)).phrase
    return {
        "description": f"{phrase} (a Problem)",
        "content": {MEDIA_TYPE: {"schema": ref("Problem")}},
    }


def _oci_error_answer(status: str) -> dict[str, Any]:
    answer: dict[str, Any] = {
        "description": _problem_answer(status)["description"].replace(
            "(a Problem)", "(OCI error body)"
        ),
        "content": {OCI_ERROR_MEDIA_TYPE: {"schema": ref("OciErrors")}},
    }
    if status == "401":
        answer["headers"] = {
            "WWW-Authenticate": {
                "description": 'Bearer realm="<base>/v2/token",service="reliquary",'
                'scope="repository:<name>:pull[,push]": where to get a token, for what',
                "schema": {"type": "string"},
            }
        }
    return answer


def _error_statuses(op: dict[str, Any], roles: frozenset[Role] | None, doc: Doc) -> list[str]:
    params = op.get("parameters", [])
    statuses = set(doc.problems)
    if params or "requestBody" in op:
        statuses.add(400)
    if roles is not None:
        statuses |= {401, 403}
    if any(p.get("in") == "path" for p in params):
        statuses.add(404)
    if "requestBody" in op:
        statuses.add(413)
    return [str(s) for s in sorted(statuses)] + ["4XX", "5XX"]


def _complete_operation(
    op: dict[str, Any], route: Route, doc: Doc | None, operation_ids: dict[str, str]
) -> None:
    doc = doc or Doc(summary=op.get("summary", ""), tag="other")
    oci = is_oci_path(route.key.split(" ", 1)[1])
    op["summary"] = doc.summary
    op["tags"] = [doc.tag]
    sentence = role_sentence(route.roles, route.anonymous)
    op["description"] = "\n\n".join(x for x in (doc.description, sentence) if x)
    op["x-reliquary-role"] = role_name(route.roles)
    op["x-reliquary-roles"] = sorted(r.value for r in route.roles or ())
    logins: list[dict[str, list[str]]] = [{BEARER: []}]
    if oci:
        logins.append({BASIC: []})
    if route.roles is None:
        op["security"] = []
    elif route.roles >= READ_ROLES and route.anonymous:
        op["security"] = [*logins, {}]
    else:
        op["security"] = logins
    if doc.fast_path:
        op["x-reliquary-fast-path"] = True
    params: list[dict[str, Any]] = [*op.get("parameters", []), *copy.deepcopy(doc.parameters)]
    for param in params:
        if not oci and param["in"] in ("path", "query") and param["name"] == "digest":
            schema = {k: v for k, v in param.get("schema", {}).items() if k != "default"}
            param["schema"] = {**schema, "pattern": DIGEST_PATTERN}
            param["required"] = True  # a commit without ?digest= is refused
            param.setdefault("description", "blake3:<64 hex> or sha256:<64 hex>")
        if param["name"] in doc.examples:
            param["example"] = doc.examples[param["name"]]
    if params:
        op["parameters"] = params
    if doc.request_body is not None:
        op["requestBody"] = copy.deepcopy(doc.request_body)
    responses: dict[str, Any] = {
        code: answer for code, answer in op.get("responses", {}).items() if int(code) < 400
    }
    for code, answer in doc.responses.items():
        responses.pop(code, None)
        if answer is not None:
            responses[code] = _resolve_links(copy.deepcopy(answer), operation_ids)
    error_answer = _oci_error_answer if oci else _problem_answer
    for status in _error_statuses(op, route.roles, doc):
        responses.setdefault(status, error_answer(status))
    op["responses"] = dict(
        sorted(responses.items(), key=lambda kv: (kv[0][0], "X" in kv[0], kv[0]))
    )


def _resolve_links(answer: dict[str, Any], operation_ids: dict[str, str]) -> dict[str, Any]:
    for name, target in answer.get("links", {}).items():
        key = target.pop("x-target")
        if key not in operation_ids:
            raise RuntimeError(f"link {name} names {key}, which the app does not route")
        target["operationId"] = operation_ids[key]
    return answer


def _oci_operation(route: OciRoute) -> dict[str, Any]:
    """What Litestar would have generated for a ``/v2`` operation: its id and path
    parameters (the rest comes from ``OPERATIONS`` like any other operation's)."""
    names = [p for p in OCI_PATH_PARAMETERS if "{" + p + "}" in route.template]
    return {
        "operationId": "Oci" + "".join(w.capitalize() for w in route.endpoint.split("_")),
        "parameters": [copy.deepcopy(OCI_PATH_PARAMETERS[n]) for n in names],
        "responses": {},
    }


def _with_oci_paths(paths: dict[str, Any], routes: list[Route]) -> dict[str, Any]:
    """``paths`` with every ``/v2`` operation of ``routes`` at its template, after ``/v2``."""
    oci: dict[str, Any] = {}
    for route in routes:
        if route.oci is not None:
            item = oci.setdefault(route.oci.template, {})
            item[route.oci.method.lower()] = _oci_operation(route.oci)
    out: dict[str, Any] = {}
    for path, item in paths.items():
        out[path] = item
        if path == "/v2":
            out |= oci
    return out | oci


def complete(schema: dict[str, Any], app: Litestar) -> dict[str, Any]:
    """A completed copy of Litestar's document ``schema`` for ``app``.

    Raises:
        RuntimeError: a route guarded by something other than ``requires``, a link to
            an operation the app does not serve, or a schema name used twice.
    """
    doc = copy.deepcopy(schema)
    doc["info"]["description"] = DESCRIPTION
    routes = served_routes(app)
    doc["paths"] = _with_oci_paths(doc.get("paths", {}), routes)
    operations: dict[str, dict[str, Any]] = {}
    for path, item in doc.get("paths", {}).items():
        for method in METHODS:
            if method in item:
                operations[f"{method.upper()} {path}"] = item[method]
    operation_ids = {key: op["operationId"] for key, op in operations.items()}
    for route in routes:
        op = operations.get(route.key)
        if op is not None:
            _complete_operation(op, route, OPERATIONS.get(route.key), operation_ids)
    components = doc.setdefault("components", {})
    components["securitySchemes"] = {
        BEARER: {
            "type": "http",
            "scheme": "bearer",
            "description": "a Reliquary token (`reliquary-server token create`, "
            "or POST /v1/tokens as admin); under `/v2` also a scoped token from "
            "GET /v2/token",
        },
        BASIC: {
            "type": "http",
            "scheme": "basic",
            "description": "under `/v2` only, as registry clients log in: any user name, "
            "a Reliquary token as the password",
        },
    }
    schemas = components.setdefault("schemas", {})
    _, manifest_schemas = msgspec.json.schema_components(
        (Manifest,), ref_template="#/components/schemas/{name}"
    )
    extra = {
        **manifest_schemas,
        "Envelope": ENVELOPE_SCHEMA,
        "Problem": problem_schema(),
        "OciErrors": oci_errors_schema(),
    }
    for name, value in extra.items():
        if name in schemas:
            raise RuntimeError(f"the OpenAPI component schema {name} is defined twice")
        schemas[name] = copy.deepcopy(value)
    schemas["Manifest"]["description"] = (
        "A manifest (ARCHITECTURE §4), sent as its canonical JSON (RFC 8785) bytes: "
        "files sorted by path, unique, relative POSIX paths; unknown fields refused."
    )
    doc["security"] = [{BEARER: []}]
    return doc
