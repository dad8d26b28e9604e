"""Malformed inputs that once made the API answer 500 (issue 11, item 4), as explicit cases.

Each ``MalformedCase`` is one HTTP request that a client could send. Its path may
name placeholders -- ``{blob}`` (a stored blob), ``{upload}`` (an open upload
session), ``{artifact}`` (a pushed manifest), ``{keyid}`` (a registered publisher
key, ``SIGNER``), ``{job}`` (a job id that does not exist) -- which ``prepare``
creates over HTTP and ``send`` fills in. ``expect`` is the set of acceptable
statuses: always 4xx, always ``application/problem+json``, and the request
changes nothing. ``tests/api/test_malformed_inputs.py`` sends every case to the
real app on both deployments; a fuzz run (schemathesis) can replay the same list
as explicit examples through ``send`` or by reading the fields.

The cases, by kind:
- numbers in headers: ``Range`` and ``Upload-Offset`` with thousands of digits
  (``int()`` stops at 4 300), Latin-1 superscript digits (``str.isdigit()`` accepts
  ``'²'``, ``int()`` does not), values past a signed 64-bit integer;
- numbers in query strings: the channel history cursor, same shapes;
- JSON: integers of 5 000 digits, floats out of range, nesting 3 000 to
  2 000 000 levels deep (``RecursionError`` in every recursive parser), in
  manifests, DSSE envelopes, the base64 statements inside signed envelopes, and
  request bodies;
- NUL characters in JSON strings (PostgreSQL text cannot hold them);
- duplicate keys in every JSON body the API parses (last-wins would let
  ``{"role": "reader", "role": "admin"}`` through as admin).
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from registry.core.canonical import canonical_bytes
from registry.core.dsse import PAYLOAD_TYPE, pae
from registry.core.keys import SigningKey
from tests.support.content import digests, manifest_bytes

SIGNER = SigningKey.from_private_raw(bytes(range(32)))
"""The publisher key ``prepare`` registers; the cases' statements are signed by it."""

BLOB = b"a blob the malformed cases point at\n"
JSON = "application/json"


def nested(depth: int) -> bytes:
    """A JSON array nested ``depth`` levels deep (``2 * depth`` bytes)."""
    return b"[" * depth + b"]" * depth


def _signed_envelope(payload: bytes) -> bytes:
    """A DSSE envelope around ``payload`` with SIGNER's valid signature over it."""
    sig = SIGNER.sign(pae(PAYLOAD_TYPE, payload))
    return canonical_bytes(
        {
            "payload": base64.b64encode(payload).decode(),
            "payloadType": PAYLOAD_TYPE,
            "signatures": [{"keyid": SIGNER.public.keyid, "sig": base64.b64encode(sig).decode()}],
        }
    )


def _statement_with(predicate: bytes) -> bytes:
    """An in-toto statement (JSON text) whose predicate is ``predicate``, verbatim."""
    return (
        b'{"_type":"https://in-toto.io/Statement/v1","predicate":'
        + predicate
        + b',"predicateType":"https://reliquary.dev/attestation/publish/v1",'
        b'"subject":[{"digest":{"blake3":"' + b"0" * 64 + b'"},"name":"x@v1"}]}'
    )


@dataclass(frozen=True)
class MalformedCase:
    id: str
    method: str
    path: str  # with {placeholders}, see the module docstring
    role: str  # the token role the request is sent with
    body: bytes | None = None
    headers: Mapping[str, bytes] = field(default_factory=dict)  # raw bytes, sent as-is
    expect: frozenset[int] = frozenset({400})
    why: str = ""


def _json(
    id: str, method: str, path: str, role: str, body: bytes, why: str, *expect: int
) -> MalformedCase:
    return MalformedCase(
        id,
        method,
        path,
        role,
        body,
        {"content-type": JSON.encode()},
        frozenset(expect or (400,)),
        why,
    )


_DIGITS_5000 = b"9" * 5000
_BEYOND_INT64 = b"9" * 20
_SUPERSCRIPTS = b"\xb2\xb3"  # '²³' in Latin-1, how HTTP header bytes are read

_HEADER_NUMBERS = [
    MalformedCase(
        f"range-{name}",
        "GET",
        "/v1/blobs/{blob}",
        "reader",
        headers={"range": value},
        expect=frozenset({416}),
        why=why,
    )
    for name, value, why in [
        ("start-5000-digits", b"bytes=" + _DIGITS_5000 + b"-", "int() refuses > 4300 digits"),
        ("suffix-5000-digits", b"bytes=-" + _DIGITS_5000, "int() refuses > 4300 digits"),
        ("end-beyond-int64", b"bytes=0-" + _BEYOND_INT64, "bounded to 19 digits"),
        ("superscript-digits", b"bytes=" + _SUPERSCRIPTS + b"-", "isdigit() accepts '²'"),
    ]
] + [
    MalformedCase(
        f"upload-offset-{name}",
        "PATCH",
        "/v1/uploads/{upload}",
        "publisher",
        body=b"chunk",
        headers={"upload-offset": value},
        why=why,
    )
    for name, value, why in [
        ("5000-digits", _DIGITS_5000, "int() refuses > 4300 digits"),
        ("beyond-int64", _BEYOND_INT64, "past a signed 64-bit column"),
        ("superscript-digits", _SUPERSCRIPTS, "isdigit() accepts '²', int() does not"),
        ("superscript-one", b"\xb9", "isdigit() accepts '¹'"),
        ("signed", b"+0", "int() accepts a sign"),
    ]
]

_QUERY_NUMBERS = [
    MalformedCase(
        f"history-cursor-{name}",
        "GET",
        "/v1/channels/history?name=malformed/cases&cursor=" + value,
        "reader",
        why=why,
    )
    for name, value, why in [
        ("superscript-digits", "%C2%B2", "isdigit() accepts '²', int() does not"),
        ("beyond-int64", "9" * 25, "past SQLite's and PostgreSQL's integers"),
    ]
]

_MANIFESTS = [
    _json("manifest-integer-5000-digits", "PUT", "/v1/artifacts", "publisher",
          b'{"size":' + _DIGITS_5000 + b"}", "int() refuses > 4300 digits"),
    _json("manifest-float-out-of-range", "PUT", "/v1/artifacts", "publisher",
          b'{"size":1e999}', "json reads 1e999 as Infinity"),
    _json("manifest-nested-3000", "PUT", "/v1/artifacts", "publisher",
          nested(3000), "RecursionError in a recursive parser"),
    _json("manifest-nested-2000000", "PUT", "/v1/artifacts", "publisher",
          nested(2_000_000), "RecursionError; 4 MB, under the manifest size limit"),
    _json("manifest-label-nul", "PUT", "/v1/artifacts", "publisher",
          manifest_bytes("malformed/nul", "v1", {"model.bin": BLOB}, labels={"team": "a\x00b"}),
          "PostgreSQL text cannot hold NUL (found by the fuzzer)"),
]  # fmt: skip

_ATTESTATIONS = "/v1/artifacts/{artifact}/attestations"
_ENVELOPES = [
    _json("envelope-nested-3000", "POST", _ATTESTATIONS, "publisher",
          nested(3000), "RecursionError parsing the envelope"),
    _json("envelope-nested-500000", "POST", _ATTESTATIONS, "publisher",
          nested(500_000), "RecursionError; 1 MB, under the JSON body limit"),
    _json("envelope-integer-5000-digits", "POST", _ATTESTATIONS, "publisher",
          b'{"payload":' + _DIGITS_5000 + b"}", "int() refuses > 4300 digits"),
    _json("envelope-duplicate-keys", "POST", _ATTESTATIONS, "publisher",
          b'{"payload":"e30=","payload":"e30=","payloadType":"x","signatures":[]}',
          "last-wins would hide the first payload"),
    _json("statement-nested-3000", "POST", _ATTESTATIONS, "publisher",
          _signed_envelope(_statement_with(nested(3000))),
          "RecursionError parsing the signed, base64 statement"),
    _json("statement-nested-100000", "POST", _ATTESTATIONS, "publisher",
          _signed_envelope(_statement_with(nested(100_000))),
          "RecursionError parsing the signed, base64 statement"),
    _json("statement-integer-5000-digits", "POST", _ATTESTATIONS, "publisher",
          _signed_envelope(_statement_with(_DIGITS_5000)), "int() refuses > 4300 digits"),
    _json("statement-duplicate-keys", "POST", _ATTESTATIONS, "publisher",
          _signed_envelope(_statement_with(b'{"a":1,"a":2}')), "last-wins in a signed payload"),
]  # fmt: skip

_BODIES = [
    _json("tokens-nested-3000", "POST", "/v1/tokens", "admin",
          b'{"role":"reader","description":' + nested(3000) + b"}", "RecursionError"),
    _json("tokens-nested-500000", "POST", "/v1/tokens", "admin",
          nested(500_000), "RecursionError; 1 MB, under the JSON body limit"),
    _json("tokens-integer-5000-digits", "POST", "/v1/tokens", "admin",
          b'{"role":"reader","description":' + _DIGITS_5000 + b"}", "int() refuses > 4300"),
    _json("tokens-duplicate-keys", "POST", "/v1/tokens", "admin",
          b'{"role":"reader","role":"admin"}', "last-wins issues an admin token"),
    _json("keys-duplicate-keys", "POST", "/v1/keys", "admin",
          b'{"public_key":"x","role":"worker","role":"governor"}', "last-wins picks the role"),
    _json("key-revoke-duplicate-keys", "POST", "/v1/keys/{keyid}/revoke", "admin",
          b'{"reason":"a","reason":"b"}', "last-wins picks the logged reason"),
    _json("artifact-revoke-duplicate-keys", "POST", "/v1/artifacts/{artifact}/revoke",
          "governor", b'{"reason":"a","reason":"b"}', "last-wins picks the logged reason"),
    _json("promote-duplicate-keys", "POST", "/v1/channels/promote", "governor",
          b'{"name":"malformed/cases","channel":"production","channel":"staging",'
          b'"digest":"blake3:' + b"0" * 64 + b'","reason":"r"}', "last-wins picks the channel"),
    _json("promote-nested-3000", "POST", "/v1/channels/promote", "governor",
          b'{"name":' + nested(3000) + b"}", "RecursionError"),
    _json("rollback-duplicate-keys", "POST", "/v1/channels/rollback", "governor",
          b'{"name":"malformed/cases","channel":"production","reason":"a","reason":"b"}',
          "last-wins picks the reason"),
    _json("jobs-claim-duplicate-keys", "POST", "/v1/jobs/claim", "worker",
          b'{"profiles":["cpu-tensorflow"],"profiles":["cuda-vllm"]}', "last-wins"),
    _json("jobs-claim-nested-3000", "POST", "/v1/jobs/claim", "worker",
          b'{"profiles":' + nested(3000) + b"}", "RecursionError"),
    _json("jobs-fail-duplicate-keys", "POST", "/v1/jobs/{job}/fail", "worker",
          b'{"error":"a","retry":false,"retry":true}', "last-wins picks retry"),
    _json("jobs-complete-nested-3000", "POST", "/v1/jobs/{job}/complete", "worker",
          nested(3000), "RecursionError", 400, 404),
    _json("verify-duplicate-keys", "POST", "/v1/artifacts/{artifact}/verify", "publisher",
          b'{"profile":"cpu-tensorflow","count":1,"count":1000}', "last-wins picks count"),
    _json("verify-float-out-of-range", "POST", "/v1/artifacts/{artifact}/verify", "publisher",
          b'{"profile":"cpu-tensorflow","count":1e999}', "json reads 1e999 as Infinity"),
]  # fmt: skip

CASES: list[MalformedCase] = [
    *_HEADER_NUMBERS,
    *_QUERY_NUMBERS,
    *_MANIFESTS,
    *_ENVELOPES,
    *_BODIES,
]
"""Every case, each id unique."""


class HttpClient(Protocol):
    """What ``prepare`` and ``send`` need: httpx.Client and Litestar's TestClient both fit."""

    def request(
        self,
        method: str,
        url: str,
        *,
        content: bytes | None = ...,
        headers: Mapping[str, Any] | None = ...,
    ) -> Any: ...


def prepare(client: HttpClient, tokens: Mapping[str, str]) -> dict[str, str]:
    """Create what the cases' placeholders name, over HTTP; the values to fill them with.

    ``tokens`` maps a role (``"admin"``, ``"publisher"`` ...) to a bearer token.
    """

    def call(method: str, path: str, role: str, body: bytes | None = None) -> Any:
        auth = {"authorization": f"Bearer {tokens[role]}", "content-type": JSON}
        answer = client.request(method, path, content=body, headers=auth)
        assert answer.status_code < 300, (path, answer.status_code, answer.text)
        return answer

    call("PUT", f"/v1/blobs/{digests(BLOB).blake3}", "publisher", BLOB)
    upload = call("POST", "/v1/uploads", "publisher").headers["location"].rsplit("/", 1)[1]
    manifest = manifest_bytes("malformed/cases", "v1", {"model.bin": BLOB})
    call("PUT", "/v1/artifacts", "publisher", manifest)
    key = {"public_key": SIGNER.public.to_pem().decode(), "role": "publisher"}
    call("POST", "/v1/keys", "admin", canonical_bytes(key))
    return {
        "blob": str(digests(BLOB).blake3),
        "upload": upload,
        "artifact": str(digests(manifest).blake3),
        "keyid": SIGNER.public.keyid,
        "job": "0" * 32,
    }


def send(
    client: HttpClient, case: MalformedCase, targets: Mapping[str, str], tokens: Mapping[str, str]
) -> Any:
    """Send ``case`` with its placeholders filled from ``targets`` (``prepare``'s answer)."""
    headers = {"authorization": f"Bearer {tokens[case.role]}".encode(), **case.headers}
    return client.request(
        case.method, case.path.format(**targets), content=case.body, headers=headers
    )
