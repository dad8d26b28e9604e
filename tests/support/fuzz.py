"""Schemathesis against a running registry: its served OpenAPI document, walked with a fixed seed.

``fuzz(base_url, token)`` loads ``/schema/openapi.json`` over HTTP and runs
schemathesis's engine through every phase: the document's examples; coverage
(boundary and invalid values for every parameter and body); fuzzing (generated
positive and negative requests); stateful sequences along the document's links
(PUT blob -> HEAD/GET it, POST upload -> PATCH/HEAD/PUT/DELETE it, PUT manifest ->
GET it and its attestations, POST token -> DELETE it ...). Every response is checked:

- no 5xx (``not_a_server_error``);
- every 4xx/5xx is ``application/problem+json`` with a ``type`` under the problem
  base, ``title``, ``detail`` and the response's own ``status`` (``problem_details``);
  under ``/v2`` it is the OCI error body ``{"errors": [{"code", "message", ...}]}``;
- status codes, content types, headers and bodies are the documented ones, requests
  the document calls invalid are refused, auth is never ignored, a deleted resource
  is gone.

``positive_data_acceptance`` is off: the document does not restate every rule the
server checks (name syntax, profiles, durations), so a schema-valid request may be
refused with a problem, which the other checks still hold to account.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote

import httpx
import rfc8785
import schemathesis
from schemathesis.core import NOT_SET
from schemathesis.engine import Status, events, from_schema

from registry.core.manifest import MANIFEST_MEDIA_TYPE
from registry.core.problems import PROBLEM_BASE
from registry.ocierrors import OCI_PREFIX

FUZZ_SEED = 20261130
PROBLEM_MEDIA_TYPE = "application/problem+json"


def _oci_error(response: schemathesis.Response, case: schemathesis.Case) -> None:
    media = response.headers.get("content-type", [""])[0].split(";")[0].strip()
    if media != "application/json":
        raise AssertionError(f"{response.status_code} under /v2 answered {media!r}, not JSON")
    if case.method.upper() == "HEAD":
        return
    body = response.json()
    errors = body.get("errors") if isinstance(body, dict) else None
    if not isinstance(errors, list) or not errors:
        raise AssertionError(f"not an OCI error body: {response.text[:200]!r}")
    for error in errors:
        if not isinstance(error, dict) or not all(
            isinstance(error.get(m), str) and error.get(m) for m in ("code", "message")
        ):
            raise AssertionError(f"an OCI error without code and message: {error!r}")


@schemathesis.check
def problem_details(ctx: Any, response: schemathesis.Response, case: schemathesis.Case) -> None:
    """Every error answer is an RFC 9457 problem naming its own status (under ``/v2``, the
    OCI error body)."""
    if response.status_code < 400:
        return
    if case.path == OCI_PREFIX or case.path.startswith(OCI_PREFIX + "/"):
        _oci_error(response, case)
        return
    media = response.headers.get("content-type", [""])[0].split(";")[0].strip()
    if media != PROBLEM_MEDIA_TYPE:
        raise AssertionError(f"{response.status_code} answered {media!r}, not {PROBLEM_MEDIA_TYPE}")
    if case.method.upper() == "HEAD":
        return  # no body to read
    problem = response.json()
    if not isinstance(problem, dict):
        raise AssertionError(f"the problem is not a JSON object: {response.text[:200]!r}")
    for member in ("type", "title", "detail"):
        if not isinstance(problem.get(member), str):
            raise AssertionError(f"the problem has no string {member!r}: {problem}")
    if not problem["type"].startswith(PROBLEM_BASE):
        raise AssertionError(f"problem type {problem['type']!r} is not under {PROBLEM_BASE}")
    if problem.get("status") != response.status_code:
        raise AssertionError(f"problem status {problem.get('status')} on a {response.status_code}")


@schemathesis.hook
def before_call(context: Any, case: schemathesis.Case, kwargs: dict[str, Any]) -> None:
    """A manifest is sent as canonical JSON (RFC 8785), so generated ones get past the
    canonical-form check to the manifest rules behind it (bytes go out unchanged)."""
    if case.media_type != MANIFEST_MEDIA_TYPE or not isinstance(case.body, dict | list):
        return
    # a body passed to the call replaces the serialized one; the case stays as generated.
    # What has no canonical form (NaN, huge integers) goes out as JSON and is refused as such.
    with contextlib.suppress(rfc8785.CanonicalizationError, TypeError, ValueError):
        kwargs["data"] = bytes(rfc8785.dumps(case.body))


@dataclass
class FuzzReport:
    cases: int = 0
    seconds: float = 0.0
    failures: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    phases: dict[str, str] = field(default_factory=dict)
    # "METHOD /path" -> status -> responses seen: how deep the run reached
    statuses: dict[str, Counter[int]] = field(default_factory=dict)

    def summary(self) -> str:
        lines = [f"{self.cases} cases in {self.seconds:.1f} s; phases {self.phases}"]
        lines += [f"FAILURE {f}" for f in self.failures]
        lines += [f"ERROR {e}" for e in self.errors]
        return "\n".join(lines)


def _config(token: str, seed: int, max_examples: int) -> schemathesis.Config:
    return schemathesis.Config.from_dict(
        {
            "seed": seed,
            "workers": 1,
            "continue-on-failure": True,
            "headers": {"Authorization": f"Bearer {token}"},
            "cache": {"enabled": False},
            "generation": {"max-examples": max_examples, "database": "none"},
            "checks": {"positive_data_acceptance": {"enabled": False}},
            "phases": {"stateful": {"max-steps": 12}},
            "output": {"sanitization": {"enabled": True}},
        }
    )


def _record(report: FuzzReport, recorder: Any) -> None:
    report.cases += len(recorder.cases)
    for case_id, interaction in recorder.interactions.items():
        node = recorder.cases.get(case_id)
        if interaction.response is None or node is None:
            continue
        operation = f"{node.value.method.upper()} {node.value.path}"
        counts = report.statuses.setdefault(operation, Counter())
        counts[interaction.response.status_code] += 1
    for case_id, checks in recorder.checks.items():
        for check in checks:
            if check.status != Status.FAILURE or check.failure_info is None:
                continue
            info = check.failure_info
            failure = info.failure
            curl = info.steps[-1].curl if info.steps else info.code_sample
            report.failures.append(
                f"{recorder.label} [{check.name}] {failure.title}: {failure.message} "
                f"(case {case_id}) :: {curl[:2000]}"
            )


def fuzz(base_url: str, token: str, *, seed: int = FUZZ_SEED, max_examples: int = 20) -> FuzzReport:
    """Run every schemathesis phase against ``base_url`` as ``token`` (an admin token).

    The token's own id is never sent to ``DELETE /v1/tokens/{token_id}``: revoking
    it would leave the rest of the run unauthenticated.
    """
    own = httpx.get(
        f"{base_url}/v1/tokens", headers={"authorization": f"Bearer {token}"}, timeout=30
    ).json()
    own_ids = {t["id"] for t in own}
    schema = schemathesis.openapi.from_url(
        f"{base_url}/schema/openapi.json", config=_config(token, seed, max_examples)
    )

    def filter_case(context: Any, case: schemathesis.Case) -> bool:
        return not case.path_parameters or case.path_parameters.get("token_id") not in own_ids

    schema.hook(filter_case)
    report = FuzzReport()
    started = time.monotonic()
    for event in from_schema(schema).execute():
        if isinstance(event, events.ScenarioFinished | events.FuzzScenarioFinished):
            _record(report, event.recorder)
        elif isinstance(event, events.NonFatalError):
            report.errors.append(f"{event.label}: {event.info.title}: {event.info.message}")
        elif isinstance(event, events.FatalError):
            report.errors.append(f"fatal: {event.exception!r}")
        elif isinstance(event, events.PhaseFinished):
            report.phases[event.phase.name.value] = event.status.value
        elif isinstance(event, events.EngineFinished):
            for failure in event.failures:
                report.failures.append(f"{failure.operation}: {failure.title}: {failure.message}")
    report.seconds = time.monotonic() - started
    return report


@dataclass(frozen=True)
class Request:
    """One explicit request: a concrete path (with its query) and headers as raw bytes."""

    id: str
    method: str
    path: str
    headers: Mapping[str, bytes]
    body: bytes | None = None
    expect: frozenset[int] = frozenset({400})  # the statuses it may answer


def _operation_for(schema: Any, method: str, path: str) -> tuple[Any, dict[str, str]]:
    """The documented operation routing ``method path``, with its path parameters."""
    for template, item in schema.raw_schema["paths"].items():
        if method.lower() not in item:
            continue
        pattern = re.sub(r"\\{(\w+)\\}", r"(?P<\1>[^/]+)", re.escape(template))
        found = re.fullmatch(pattern, path)
        if found is not None:
            params = {k: unquote(v) for k, v in found.groupdict().items()}
            return schema[template][method.upper()], params
    raise LookupError(f"no documented operation routes {method} {path}")


def replay(base_url: str, token: str, requests: Iterable[Request]) -> list[str]:
    """Send each request as an explicit schemathesis case; every check of ``fuzz`` applies,
    and its status must be one it ``expect``s.

    Returns one line per request whose answer failed a check.
    """
    schema = schemathesis.openapi.from_url(
        f"{base_url}/schema/openapi.json", config=_config(token, FUZZ_SEED, 1)
    )
    failures: list[str] = []
    for request in requests:
        path, _, query = request.path.partition("?")
        operation, params = _operation_for(schema, request.method, path)
        case = operation.Case(
            path_parameters=params,
            query=dict(parse_qsl(query, keep_blank_values=True)),
            body=request.body if request.body is not None else NOT_SET,
            media_type=request.headers.get("content-type", b"").decode() or None,
        )
        response = case.call(headers=dict(request.headers))
        if response.status_code not in request.expect:
            failures.append(f"{request.id}: {response.status_code}, not {sorted(request.expect)}")
        try:
            case.validate_response(response, headers=dict(request.headers))
        except schemathesis.errors.FailureGroup as group:
            found = "; ".join(f"{f.title}: {f.message}" for f in group.exceptions)
            failures.append(f"{request.id}: {response.status_code} {found}".replace("\n", " "))
        except AssertionError as exc:
            failures.append(f"{request.id}: {response.status_code} {exc}".replace("\n", " "))
    return failures
