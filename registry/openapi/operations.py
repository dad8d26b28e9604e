"""What the handler signatures cannot tell the OpenAPI document, one entry per operation.

Litestar derives parameters and JSON bodies from each handler's signature. This table
adds the rest: a one-line summary and a tag for every operation, the request bodies
that handlers read raw from ASGI (blobs, chunks, manifests, DSSE envelopes), the
headers they read by hand, the answers they build themselves (binary bodies, 201 vs
200, 204, 206, 304, 307) and the links between operations that a client (or a
stateful fuzzer) follows. Roles and problem responses are not here: those are derived
from the guards and the problem table (``registry.openapi.document``).

Each entry is OpenAPI 3.1 text, merged over what Litestar generated. Tests check that
every route has an entry and every entry a route, so the two cannot drift apart.

The ``/v2`` operations behind the one catch-all route are not Litestar's: their entries
are made from ``registry.domain.oci.routes.OCI_ROUTES`` (method, template, summary) and
``OCI_DETAILS`` (parameters, bodies, answers per endpoint), and the whole operation is
written from them (``registry.openapi.document``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from registry.core.digest import digest_bytes
from registry.core.images import MAX_NAME, NAME
from registry.core.manifest import MANIFEST_MEDIA_TYPE
from registry.domain.oci.routes import OCI_ROUTES, OciRoute
from registry.ocierrors import OCI_ERRORS, UNKNOWN, oci_code_for_status

JSON = "application/json"
OCTETS = "application/octet-stream"
# an example blob and a manifest naming it: a client (or a fuzzer's examples phase) that
# pushes the one and then the other gets 201 twice
EXAMPLE_BLOB = "reliquary"
EXAMPLE_BLOB_DIGESTS = digest_bytes(EXAMPLE_BLOB.encode())
EXAMPLE_MANIFEST = {
    "files": [
        {
            "blake3": EXAMPLE_BLOB_DIGESTS.blake3.hex,
            "path": "README",
            "sha256": EXAMPLE_BLOB_DIGESTS.sha256.hex,
            "size": len(EXAMPLE_BLOB),
        }
    ],
    "kind": "model",
    "name": "example/model",
    "schema": "reliquary.manifest.v1",
    "version": "v1",
}


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def header(description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"description": description, "schema": schema or {"type": "string"}}


def answer(
    description: str,
    media: str | None = None,
    schema: dict[str, Any] | None = None,
    headers: Mapping[str, dict[str, Any]] | None = None,
    links: Mapping[str, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """One response object: a body of ``media`` (none when None), headers and links."""
    out: dict[str, Any] = {"description": description}
    if media is not None:
        out["content"] = {media: {"schema": schema if schema is not None else {}}}
    if headers:
        out["headers"] = dict(headers)
    if links:
        out["links"] = dict(links)
    return out


def link(target: str, description: str, **parameters: str) -> dict[str, Any]:
    """A link to the operation ``target`` ("METHOD /path"); resolved to its operationId."""
    return {"x-target": target, "description": description, "parameters": parameters}


def body(media: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"required": True, "description": description, "content": {media: {"schema": schema}}}


BINARY = {"type": "string", "contentMediaType": OCTETS}
BLOB_HEADERS = {
    "ETag": header('the blob\'s blake3 digest, quoted: "blake3:<hex>"'),
    "Reliquary-Blake3": header("blake3:<hex> of the bytes"),
    "Reliquary-Sha256": header("sha256:<hex> of the bytes"),
    "Docker-Content-Digest": header("sha256:<hex> of the bytes (OCI clients read it)"),
    "Cache-Control": header("public, max-age=31536000, immutable: content never changes"),
    "Accept-Ranges": header("bytes"),
}
UPLOAD_HEADERS = {
    "Location": header("/v1/uploads/{id}: where to send the next chunk"),
    "Upload-Offset": header("bytes received so far", {"type": "integer", "minimum": 0}),
    "Upload-Expires": header("when an idle session is removed (ISO 8601)"),
}
MANIFEST_HEADERS = {
    "ETag": header('the artifact digest, quoted: "blake3:<hex>"'),
    "Reliquary-Blake3": header("blake3:<hex> of the manifest bytes (the artifact digest)"),
    "Reliquary-Sha256": header("sha256:<hex> of the manifest bytes"),
    "Cache-Control": header("public, max-age=31536000, immutable"),
}
IF_NONE_MATCH = {
    "name": "If-None-Match",
    "in": "header",
    "required": False,
    "description": "the ETag a cache holds: 304 when it still names this content",
    "schema": {"type": "string"},
}
ENVELOPE_SCHEMA = {
    "type": "object",
    "title": "DSSE envelope",
    "description": "A DSSE envelope (JSON) whose payload is an in-toto Statement v1 naming "
    "the artifact; its signatures are checked against the registered keys.",
    "required": ["payloadType", "payload", "signatures"],
    "properties": {
        "payloadType": {"type": "string", "examples": ["application/vnd.in-toto+json"]},
        "payload": {"type": "string", "contentEncoding": "base64"},
        "signatures": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "required": ["keyid", "sig"],
                "properties": {
                    "keyid": {"type": "string", "description": "hex sha256 of the public key"},
                    "sig": {"type": "string", "contentEncoding": "base64"},
                },
            },
        },
    },
}
ENVELOPE_BODY = body(JSON, ref("Envelope"), "a signed DSSE envelope, at most the JSON body limit")

BLOB_LINKS = {
    "HeadBlob": link(
        "HEAD /v1/blobs/{digest}", "the blob's metadata", digest="$response.body#/blake3"
    ),
    "GetBlob": link("GET /v1/blobs/{digest}", "the blob's bytes", digest="$response.body#/sha256"),
}
UPLOAD_LINKS = {
    "AppendChunk": link(
        "PATCH /v1/uploads/{upload_id}", "send a chunk", upload_id="$response.body#/id"
    ),
    "UploadOffset": link(
        "HEAD /v1/uploads/{upload_id}", "where to resume", upload_id="$response.body#/id"
    ),
    "CommitUpload": link("PUT /v1/uploads/{upload_id}", "commit", upload_id="$response.body#/id"),
    "AbortUpload": link("DELETE /v1/uploads/{upload_id}", "abort", upload_id="$response.body#/id"),
}
ARTIFACT_LINKS = {
    "GetManifest": link("GET /v1/artifacts/{digest}", "the exact manifest bytes", digest="$response.body#/digest"),
    "ListAttestations": link("GET /v1/artifacts/{digest}/attestations", "its signed statements", digest="$response.body#/digest"),
    "ListJobs": link("GET /v1/artifacts/{digest}/jobs", "its verification jobs", digest="$response.body#/digest"),
    "Resolve": link("GET /v1/resolve", "resolve name@version", name="$response.body#/name", version="$response.body#/version"),
    "Status": link("GET /v1/artifacts/{digest}/status", "its policy status", digest="$response.body#/digest"),
    "Verify": link("POST /v1/artifacts/{digest}/verify", "ask for verification", digest="$response.body#/digest"),
}  # fmt: skip
KEY_LINKS = {
    "GetKey": link("GET /v1/keys/{keyid}", "the key", keyid="$response.body#/keyid"),
    "RevokeKey": link("POST /v1/keys/{keyid}/revoke", "revoke it", keyid="$response.body#/keyid"),
}
JOB_LINKS = {
    "Heartbeat": link("POST /v1/jobs/{job_id}/heartbeat", "extend the lease", job_id="$response.body#/id"),
    "Complete": link("POST /v1/jobs/{job_id}/complete", "post the statement", job_id="$response.body#/id"),
    "Fail": link("POST /v1/jobs/{job_id}/fail", "give the job up", job_id="$response.body#/id"),
}  # fmt: skip


@dataclass(frozen=True)
class Doc:
    summary: str
    tag: str
    description: str = ""
    request_body: dict[str, Any] | None = None
    parameters: tuple[dict[str, Any], ...] = ()
    # answers replacing what Litestar generated for that status ("200": answer(...));
    # None removes Litestar's guess
    responses: Mapping[str, dict[str, Any] | None] = field(default_factory=dict)
    # an example value per parameter name (path, query or header)
    examples: Mapping[str, Any] = field(default_factory=dict)
    # error statuses this operation is known for, beyond the ones derived from it
    problems: tuple[int, ...] = ()
    # fast: the memory fast path (registry/fastpath.py) answers it before Litestar
    fast_path: bool = False


OPERATIONS: dict[str, Doc] = {
    # -- OCI distribution (the other /v2 operations: registry.domain.oci.routes) ---------
    "GET /v2": Doc(
        "OCI distribution base check: 200 with a token; without one, 401 and a Bearer "
        "challenge naming the token endpoint (even when anonymous reads are on)",
        "oci",
        description="Errors under `/v2` use the OCI error body "
        '`{"errors": [{"code", "message", "detail"}]}`, not problem+json.',
        responses={
            "200": answer("this is an OCI distribution v1.1 registry", JSON, {"type": "object"})
        },
    ),
    "GET /v2/token": Doc(
        "Log a registry client in: a scoped bearer token for /v2, valid 300 s "
        "(distribution token auth)",
        "oci",
        description="Send a Reliquary token as the password of HTTP Basic auth (any user "
        "name), or as `Authorization: Bearer`; with no credentials and anonymous reads on, "
        "the token is pull-only. The grant is what `scope` asks for within the role "
        "(`pull` for every role, `push` for publisher and admin); asking for more is not an "
        "error: the repository refuses later (403 `DENIED`, or 401 `insufficient_scope` "
        "when the role may but the token was not granted it). Unknown scope types are "
        "dropped. The token works only under `/v2`. Errors use the OCI error body.",
        examples={"scope": ["repository:library/app:pull,push"], "service": "reliquary"},
        responses={
            "200": answer(
                "the token (`token` and `access_token` are the same)",
                JSON,
                {
                    "type": "object",
                    "required": ["token", "access_token", "expires_in", "issued_at"],
                    "properties": {
                        "token": {"type": "string", "pattern": "^rlqo_"},
                        "access_token": {"type": "string", "pattern": "^rlqo_"},
                        "expires_in": {"type": "integer", "const": 300},
                        "issued_at": {"type": "string", "format": "date-time"},
                    },
                },
                headers={"Cache-Control": header("no-store")},
            )
        },
    ),
    # -- system ------------------------------------------------------------------------
    "GET /healthz": Doc("Liveness: the process answers", "system"),
    "GET /readyz": Doc(
        "Readiness: the database and the blob store are reachable",
        "system",
        responses={
            "200": answer("ready", JSON, {"type": "object"}),
            "503": answer(
                "not ready: a problem whose `checks` say which dependency failed",
                "application/problem+json",
                ref("Problem"),
            ),
        },
    ),
    "GET /metrics": Doc(
        "Prometheus metrics",
        "system",
        responses={"200": answer("text exposition format", "text/plain", {"type": "string"})},
    ),
    # -- blobs -------------------------------------------------------------------------
    "HEAD /v1/blobs/{digest}": Doc(
        "A blob's size and digests, without reading it",
        "blobs",
        "Accepts `blake3:` or `sha256:`. Answered from memory (the fast path) when this "
        "process has seen the token and the blob recently, with the same headers.",
        responses={
            "200": answer(
                "the blob exists",
                headers={**BLOB_HEADERS, "Content-Length": header("size in bytes")},
            )
        },
        fast_path=True,
    ),
    "GET /v1/blobs/{digest}": Doc(
        "Download a blob (Range supported)",
        "blobs",
        "Accepts `blake3:` or `sha256:`. Clients verify the bytes against the digest.",
        parameters=(
            {
                "name": "Range",
                "in": "header",
                "required": False,
                "description": "one byte range, `bytes=<first>-[<last>]` or `bytes=-<suffix>`",
                "schema": {"type": "string", "examples": ["bytes=0-1023"]},
            },
            IF_NONE_MATCH,
        ),
        responses={
            "200": answer("the whole blob", OCTETS, BINARY, BLOB_HEADERS),
            "206": answer(
                "the requested range",
                OCTETS,
                BINARY,
                {**BLOB_HEADERS, "Content-Range": header("bytes <first>-<last>/<size>")},
            ),
            "304": answer("the cached copy is current", headers=BLOB_HEADERS),
            "307": answer(
                "fetch the bytes from the object store (RELIQUARY_S3_REDIRECT); verify them",
                headers={"Location": header("a presigned URL")},
            ),
        },
        problems=(416,),
    ),
    "PUT /v1/blobs/{digest}": Doc(
        "Upload a whole blob in one request",
        "blobs",
        "The bytes are hashed while they stream; nothing is stored unless they hash to "
        "the digest in the path (400 digest-mismatch otherwise).",
        request_body={
            "required": True,
            "description": "the blob's bytes (up to RELIQUARY_MAX_BLOB_SIZE)",
            "content": {OCTETS: {"schema": BINARY, "example": EXAMPLE_BLOB}},
        },
        responses={
            "201": answer(
                "stored", JSON, ref("Blob"), {"Location": header("the blob")}, BLOB_LINKS
            ),
            "200": answer(
                "already stored", JSON, ref("Blob"), {"Location": header("the blob")}, BLOB_LINKS
            ),
        },
        problems=(413, 507),
        examples={"digest": str(EXAMPLE_BLOB_DIGESTS.blake3)},
    ),
    # -- uploads -----------------------------------------------------------------------
    "POST /v1/uploads": Doc(
        "Start a resumable upload session",
        "uploads",
        responses={
            "201": answer(
                "the session",
                JSON,
                {
                    "type": "object",
                    "required": ["id", "upload_offset", "expires_at"],
                    "properties": {
                        "id": {"type": "string"},
                        "upload_offset": {"type": "integer"},
                        "expires_at": {"type": "string", "format": "date-time"},
                    },
                },
                UPLOAD_HEADERS,
                UPLOAD_LINKS,
            )
        },
    ),
    "HEAD /v1/uploads/{upload_id}": Doc(
        "The session's offset, to resume",
        "uploads",
        responses={"200": answer("the session", headers=UPLOAD_HEADERS)},
    ),
    "PATCH /v1/uploads/{upload_id}": Doc(
        "Append a chunk at the session's current offset",
        "uploads",
        parameters=(
            {
                "name": "Upload-Offset",
                "in": "header",
                "required": True,
                "description": "the byte offset this chunk starts at: must equal the "
                "session's offset (409 otherwise)",
                "schema": {"type": "integer", "minimum": 0},
            },
        ),
        request_body={
            "required": False,
            "description": "the chunk's bytes (up to RELIQUARY_MAX_CHUNK_SIZE); none is a "
            "chunk of 0 bytes",
            "content": {OCTETS: {"schema": BINARY}},
        },
        responses={"204": answer("appended", headers=UPLOAD_HEADERS)},
        problems=(409, 413, 507),
    ),
    "PUT /v1/uploads/{upload_id}": Doc(
        "Commit the session as a blob with the given digest",
        "uploads",
        "No body: every chunk was sent with PATCH. 400 digest-mismatch (nothing stored) "
        "when the bytes do not hash to `digest`.",
        responses={
            "201": answer(
                "stored", JSON, ref("Blob"), {"Location": header("the blob")}, BLOB_LINKS
            ),
            "200": answer(
                "already stored", JSON, ref("Blob"), {"Location": header("the blob")}, BLOB_LINKS
            ),
        },
    ),
    "DELETE /v1/uploads/{upload_id}": Doc("Abort the session", "uploads"),
    # -- artifacts ---------------------------------------------------------------------
    "PUT /v1/artifacts": Doc(
        "Push a manifest (canonical JSON, RFC 8785)",
        "artifacts",
        "The exact bytes are stored and hashed; every file blob must be present. "
        "`name@version` binds to one digest forever: the same bytes again answer 200, "
        "others 409.",
        request_body={
            "required": True,
            "description": "the manifest's canonical JSON bytes (RFC 8785), at most "
            "RELIQUARY_MAX_MANIFEST_SIZE",
            "content": {
                MANIFEST_MEDIA_TYPE: {"schema": ref("Manifest"), "example": EXAMPLE_MANIFEST}
            },
        },
        responses={
            "201": answer(
                "pushed",
                JSON,
                ref("Artifact"),
                {"Location": header("the manifest")},
                ARTIFACT_LINKS,
            ),
            "200": answer(
                "already pushed",
                JSON,
                ref("Artifact"),
                {"Location": header("the manifest")},
                ARTIFACT_LINKS,
            ),
        },
        problems=(409, 413, 422),
    ),
    "GET /v1/artifacts/{digest}": Doc(
        "The exact manifest bytes that were pushed",
        "artifacts",
        "Answered from memory (the fast path) when this process has seen the token and "
        "the manifest recently, with the same headers.",
        parameters=(IF_NONE_MATCH,),
        responses={
            "200": answer("the manifest", MANIFEST_MEDIA_TYPE, ref("Manifest"), MANIFEST_HEADERS),
            "304": answer("the cached copy is current", headers=MANIFEST_HEADERS),
        },
        fast_path=True,
    ),
    "GET /v1/artifacts": Doc("List artifacts, filtered and paginated", "artifacts"),
    "GET /v1/resolve": Doc(
        "Resolve `name` with `version` or `channel` to an artifact", "artifacts"
    ),
    "POST /v1/artifacts/{digest}/revoke": Doc(
        "Revoke an artifact (logged; nothing is deleted)", "artifacts"
    ),
    # -- attestations ------------------------------------------------------------------
    "POST /v1/artifacts/{digest}/attestations": Doc(
        "Post a signed statement about an artifact",
        "attestations",
        "The envelope must be signed by a known, unrevoked key of the role its predicate "
        "needs, and name this artifact. The same statement again answers 200.",
        request_body=ENVELOPE_BODY,
        responses={
            "201": answer("accepted and logged", JSON, ref("Attestation")),
            "200": answer("already accepted", JSON, ref("Attestation")),
        },
        problems=(413, 422),
    ),
    "GET /v1/artifacts/{digest}/attestations": Doc(
        "The artifact's accepted statements", "attestations"
    ),
    # -- tokens and keys ---------------------------------------------------------------
    "POST /v1/tokens": Doc(
        "Issue a token (its secret is shown once)",
        "tokens",
        responses={
            "201": answer(
                "issued",
                JSON,
                ref("IssuedToken"),
                links={
                    "RevokeToken": link(
                        "DELETE /v1/tokens/{token_id}",
                        "revoke it",
                        token_id="$response.body#/id",  # noqa: S106 (a link expression)
                    )
                },
            )
        },
    ),
    "GET /v1/tokens": Doc("List tokens (never their secrets)", "tokens"),
    "DELETE /v1/tokens/{token_id}": Doc("Revoke a token", "tokens"),
    "POST /v1/keys": Doc(
        "Register a signing key with its role",
        "keys",
        responses={
            "201": answer("registered", JSON, ref("RegisteredKey"), links=KEY_LINKS),
            "200": answer("already registered", JSON, ref("RegisteredKey"), links=KEY_LINKS),
        },
        problems=(409,),
    ),
    "GET /v1/keys": Doc("List signing keys", "keys"),
    "GET /v1/keys/{keyid}": Doc("One signing key", "keys"),
    "POST /v1/keys/{keyid}/revoke": Doc("Revoke a signing key (logged)", "keys"),
    # -- log ---------------------------------------------------------------------------
    "GET /v1/log/checkpoint": Doc(
        "The latest signed checkpoint (C2SP signed note)",
        "log",
        responses={"200": answer("the signed note", "text/plain", {"type": "string"})},
    ),
    "GET /v1/log/key": Doc(
        "The checkpoint verifier key",
        "log",
        responses={
            "200": answer("<origin>+<hex keyhash>+<base64 key>", "text/plain", {"type": "string"})
        },
    ),
    "GET /v1/log/entries": Doc("Log entries in [start, end)", "log"),
    "GET /v1/log/proof/inclusion": Doc("Inclusion proof (RFC 9162)", "log"),
    "GET /v1/log/proof/consistency": Doc("Consistency proof (RFC 9162)", "log"),
    # -- channels ----------------------------------------------------------------------
    "POST /v1/channels/promote": Doc(
        "Point a channel at an artifact the policy admits", "channels", problems=(409,)
    ),
    "POST /v1/channels/rollback": Doc(
        "Move a channel back to a digest it held before", "channels", problems=(409,)
    ),
    "GET /v1/channels": Doc("A name's channels and what they point at", "channels"),
    "GET /v1/channels/history": Doc("A name's promotions and rollbacks", "channels"),
    "GET /v1/artifacts/{digest}/status": Doc(
        "Every policy requirement of a channel, met or not, with why",
        "channels",
        description=(
            "`policy_version` is the version in force: the policy file's sha256, or with "
            "evaluation datasets the sha256 of `{datasets: {NAME@VERSION: digest|null}, "
            "source}` (logged as `policy.changed`). `evaluation` shows the channel's "
            "evaluation of the artifact: who measures, on which dataset, the workers' "
            "agreed metrics beside the thresholds, the change from what the channel holds "
            "and the prediction drift; null when the policy measures nothing."
        ),
    ),
    # -- jobs --------------------------------------------------------------------------
    "POST /v1/jobs/claim": Doc(
        "Claim a verification job for one of the worker's profiles",
        "jobs",
        description=(
            "A `reproduce` job runs the artifact's reference inputs; an `evaluate` job "
            "carries `evaluation` (the channel policy's dataset digest, thresholds, minimum "
            "sample count, and the channel's holder to measure drift from), read from the "
            "policy in force at the claim. An evaluate job whose dataset is not held here "
            "is failed with what to do, never leased."
        ),
        responses={
            "200": answer("a job, leased to this worker", JSON, ref("Job"), links=JOB_LINKS),
            "201": None,
            "204": answer("no job is waiting"),
        },
    ),
    "POST /v1/jobs/{job_id}/heartbeat": Doc("Extend a job's lease", "jobs", problems=(409,)),
    "POST /v1/jobs/{job_id}/complete": Doc(
        "Complete a job with its signed reproducibility statement",
        "jobs",
        description=(
            "A reproduce job takes a reproducibility/v1 statement; an evaluate job a "
            "measured evaluation/v1 of the job's profile, channel and dataset, by a worker "
            "key that has not measured this artifact on that dataset before."
        ),
        request_body=ENVELOPE_BODY,
        problems=(409, 413, 422),
    ),
    "POST /v1/jobs/{job_id}/fail": Doc("Give a job up, with the error", "jobs", problems=(409,)),
    "POST /v1/artifacts/{digest}/verify": Doc(
        "Ask for more verification runs of an artifact",
        "jobs",
        description=(
            'With `task: "evaluate"` and a `channel` whose policy has an evaluation '
            'measured by workers (`source = "worker"`, same profile), the jobs measure the '
            "artifact on that channel's dataset; otherwise 400."
        ),
    ),
    "GET /v1/artifacts/{digest}/jobs": Doc("An artifact's verification jobs", "jobs"),
}


# -- OCI distribution (/v2) ---------------------------------------------------------------
OCI_ERROR_MEDIA_TYPE = JSON
OCI_MANIFEST_TYPES = (
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
)
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_DIGEST_PATTERN = "^sha256:[0-9a-f]{64}$"
OCI_TAG_PATTERN = "^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$"
OCI_EXAMPLE_NAME = "library/app"
OCI_EXAMPLE_DIGEST = str(EXAMPLE_BLOB_DIGESTS.sha256)


def oci_error_codes() -> list[dict[str, Any]]:
    """Every OCI error code the server answers, with its status, read from
    ``registry.ocierrors`` (the classes' codes, the framework's, and ``UNKNOWN``)."""
    seen: dict[tuple[str, int], None] = {}
    for code in OCI_ERRORS.values():
        seen[(code.code, code.status)] = None
    for status in range(400, 600):
        framework = oci_code_for_status(status)
        if framework.code != UNKNOWN.code:
            seen[(framework.code, status)] = None
    seen[(UNKNOWN.code, UNKNOWN.status)] = None
    return [{"code": c, "status": s} for c, s in sorted(seen, key=lambda cs: (cs[1], cs[0]))]


def oci_errors_schema() -> dict[str, Any]:
    """The OCI distribution error body (distribution-spec v1.1, "Error Codes")."""
    catalogue = oci_error_codes()
    return {
        "type": "object",
        "title": "OciErrors",
        "description": "The error body of every answer under `/v2` (distribution-spec "
        "v1.1): registry clients act on `code`. A HEAD answer has no body.",
        "required": ["errors"],
        "properties": {
            "errors": {
                "type": "array",
                "minItems": 1,
                "items": {
                    "type": "object",
                    "required": ["code", "message"],
                    "properties": {
                        "code": {
                            "type": "string",
                            "enum": sorted({c["code"] for c in catalogue}),
                        },
                        "message": {
                            "type": "string",
                            "description": "what went wrong and what to do",
                        },
                        "detail": {
                            "description": "machine-readable context (an object, often "
                            "empty; `missing` digests, `allowed_roles`, ...)"
                        },
                    },
                },
            }
        },
        "x-reliquary-oci-codes": catalogue,
    }


def oci_path(name: str, description: str, pattern: str, example: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "description": description,
        "schema": {"type": "string", "pattern": pattern},
        "example": example,
    }


def oci_query(name: str, description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "schema": schema,
    }


OCI_PATH_PARAMETERS = {
    "name": {
        "name": "name",
        "in": "path",
        "required": True,
        "description": "the repository name: lowercase path components joined by `/` "
        "(`library/app`), sent as they are, slashes included (distribution-spec grammar)",
        "schema": {"type": "string", "pattern": f"^{NAME}$", "maxLength": MAX_NAME},
        "example": OCI_EXAMPLE_NAME,
    },
    "digest": oci_path("digest", "sha256:<64 hex>", OCI_DIGEST_PATTERN, OCI_EXAMPLE_DIGEST),
    "reference": oci_path(
        "reference",
        "a tag or a manifest digest (sha256:<64 hex>)",
        f"({OCI_TAG_PATTERN})|({OCI_DIGEST_PATTERN})",
        "v1",
    ),
    "upload_id": oci_path(
        "upload_id", "the session id from the upload's Location", "^[0-9a-f]{32}$", "0" * 32
    ),
}
OCI_PAGE = (
    oci_query("n", "at most this many entries (0: none)", {"type": "integer", "minimum": 0}),
    oci_query(
        "last", "the entry to start after (from the previous page's Link)", {"type": "string"}
    ),
)
OCI_BLOB_HEADERS = {
    "Docker-Content-Digest": header("sha256:<hex> of the bytes"),
    "Content-Length": header("size in bytes", {"type": "integer", "minimum": 0}),
}
OCI_SESSION_HEADERS = {
    "Location": header("/v2/<name>/blobs/uploads/<id>: where to send the next chunk"),
    "Range": header("0-<last byte held> (0-0 when none)"),
    "Docker-Upload-UUID": header("the session id"),
}
OCI_STORED_HEADERS = {
    "Location": header("/v2/<name>/blobs/<digest>"),
    "Docker-Content-Digest": header("sha256:<hex> of the blob"),
}
OCI_MANIFEST_HEADERS = {
    "Docker-Content-Digest": header("sha256:<hex> of the exact manifest bytes"),
    "Content-Length": header("size in bytes", {"type": "integer", "minimum": 0}),
    "Content-Type": header("the media type the manifest was pushed with"),
}
OCI_LINK = {"Link": header('</v2/...?n=N&last=X>; rel="next" when more entries follow')}
OCTET_BODY = {OCTETS: {"schema": BINARY}}
OCI_BLOB_RANGE = {
    "name": "Range",
    "in": "header",
    "required": False,
    "description": "one byte range, `bytes=<first>-[<last>]` or `bytes=-<suffix>`",
    "schema": {"type": "string", "examples": ["bytes=0-1023"]},
}
OCI_CONTENT_RANGE = {
    "name": "Content-Range",
    "in": "header",
    "required": False,
    "description": "`<first>-<last>` (inclusive, no `bytes ` prefix): the chunk's place; "
    "it must start where the session ends (416 otherwise). Without it the body is "
    "appended where the session ends (one streamed PATCH).",
    "schema": {"type": "string", "pattern": "^[0-9]+-[0-9]+$"},
}
OCI_REFUSED = "Nothing is ever deleted: blobs, manifests and tags are immutable."


def _manifest_content() -> dict[str, Any]:
    return {media: {"schema": {"type": "object"}} for media in OCI_MANIFEST_TYPES}


# per endpoint (``OciRoute.endpoint``): what the table does not say
OCI_DETAILS: dict[str, Doc] = {
    "catalog": Doc(
        "",
        "oci",
        "Repositories in ASCII order, paged by `n` and `last`.",
        parameters=OCI_PAGE,
        responses={
            "200": answer(
                "a page of repository names",
                JSON,
                {
                    "type": "object",
                    "required": ["repositories"],
                    "properties": {"repositories": {"type": "array", "items": {"type": "string"}}},
                },
                OCI_LINK,
            )
        },
    ),
    "start_upload": Doc(
        "",
        "oci",
        "Without parameters: a session (202) to PATCH chunks to and PUT to finish. With "
        "`digest` and the whole blob as body: stored in one request (201). With `mount` "
        "and `from`: the blob is linked from that repository when it holds it (201), "
        "else a session is opened (202).",
        parameters=(
            oci_query(
                "digest",
                "the blob's digest, when the body is the whole blob",
                {"type": "string", "pattern": OCI_DIGEST_PATTERN},
            ),
            oci_query(
                "mount",
                "a blob to link from `from`",
                {"type": "string", "pattern": OCI_DIGEST_PATTERN},
            ),
            oci_query("from", "the repository to mount from", {"type": "string"}),
        ),
        request_body={
            "required": False,
            "description": "the whole blob (with `digest`), up to RELIQUARY_MAX_BLOB_SIZE",
            "content": OCTET_BODY,
        },
        responses={
            "201": answer("stored or mounted", headers=OCI_STORED_HEADERS),
            "202": answer("an upload session", headers=OCI_SESSION_HEADERS),
        },
        problems=(413,),
    ),
    "upload_status": Doc(
        "",
        "oci",
        responses={"204": answer("the session", headers=OCI_SESSION_HEADERS)},
    ),
    "append_upload": Doc(
        "",
        "oci",
        parameters=(OCI_CONTENT_RANGE,),
        request_body={
            "required": False,
            "description": "the chunk's bytes",
            "content": OCTET_BODY,
        },
        responses={"202": answer("appended", headers=OCI_SESSION_HEADERS)},
        problems=(413, 416),
    ),
    "finish_upload": Doc(
        "",
        "oci",
        "400 DIGEST_INVALID (nothing stored) when the bytes do not hash to `digest`.",
        parameters=(
            {
                "name": "digest",
                "in": "query",
                "required": True,
                "description": "sha256:<64 hex> of the whole blob",
                "schema": {"type": "string", "pattern": OCI_DIGEST_PATTERN},
            },
            OCI_CONTENT_RANGE,
        ),
        request_body={
            "required": False,
            "description": "the last chunk (or the whole blob on an empty session)",
            "content": OCTET_BODY,
        },
        responses={"201": answer("stored", headers=OCI_STORED_HEADERS)},
        problems=(413, 416),
    ),
    "cancel_upload": Doc("", "oci", responses={"204": answer("abandoned")}),
    "head_blob": Doc(
        "",
        "oci",
        "404 when this repository does not hold the blob.",
        responses={"200": answer("the blob exists", headers=OCI_BLOB_HEADERS)},
    ),
    "get_blob": Doc(
        "",
        "oci",
        "Clients verify the bytes against the digest.",
        parameters=(OCI_BLOB_RANGE,),
        responses={
            "200": answer("the whole blob", OCTETS, BINARY, OCI_BLOB_HEADERS),
            "206": answer(
                "the requested range",
                OCTETS,
                BINARY,
                {**OCI_BLOB_HEADERS, "Content-Range": header("bytes <first>-<last>/<size>")},
            ),
            "307": answer(
                "fetch the bytes from the object store (RELIQUARY_S3_REDIRECT)",
                headers={"Location": header("a presigned URL")},
            ),
        },
        problems=(416,),
    ),
    "delete_blob": Doc("", "oci", OCI_REFUSED, problems=(405,)),
    "head_manifest": Doc(
        "",
        "oci",
        responses={"200": answer("the manifest exists", headers=OCI_MANIFEST_HEADERS)},
    ),
    "get_manifest": Doc(
        "",
        "oci",
        "The stored bytes, whatever `Accept` says: nothing is converted.",
        parameters=(
            {
                "name": "Accept",
                "in": "header",
                "required": False,
                "description": "the manifest media types the client reads",
                "schema": {"type": "string"},
            },
        ),
        responses={
            "200": {
                **answer("the manifest", headers=OCI_MANIFEST_HEADERS),
                "content": _manifest_content(),
            }
        },
    ),
    "put_manifest": Doc(
        "",
        "oci",
        "The exact bytes are kept; every blob and child manifest they name must be in the "
        "repository (400 MANIFEST_BLOB_UNKNOWN), a `subject` need not be. A tag is "
        "immutable: the same manifest again answers 201, another one 409 DENIED.",
        request_body={
            "required": True,
            "description": "the manifest, with its media type as Content-Type, at most "
            "RELIQUARY_MAX_MANIFEST_SIZE",
            "content": _manifest_content(),
        },
        responses={
            "201": answer(
                "pushed",
                headers={
                    "Location": header("/v2/<name>/manifests/<digest>"),
                    "Docker-Content-Digest": header("sha256:<hex> of the manifest bytes"),
                    "OCI-Subject": header("the `subject` digest, when the manifest has one"),
                },
            )
        },
        problems=(409, 413),
    ),
    "delete_manifest": Doc("", "oci", OCI_REFUSED, problems=(405,)),
    "list_tags": Doc(
        "",
        "oci",
        "Tags in ASCII order, paged by `n` and `last`.",
        parameters=OCI_PAGE,
        responses={
            "200": answer(
                "a page of tags",
                JSON,
                {
                    "type": "object",
                    "required": ["name", "tags"],
                    "properties": {
                        "name": {"type": "string"},
                        "tags": {"type": "array", "items": {"type": "string"}},
                    },
                },
                OCI_LINK,
            )
        },
    ),
    "list_referrers": Doc(
        "",
        "oci",
        "An image index of the manifests in this repository whose `subject` is `digest` "
        "(empty when none).",
        parameters=(
            oci_query("artifactType", "only referrers of this artifact type", {"type": "string"}),
        ),
        responses={
            "200": answer(
                "the referrers",
                OCI_INDEX,
                {
                    "type": "object",
                    "required": ["schemaVersion", "mediaType", "manifests"],
                    "properties": {
                        "schemaVersion": {"const": 2},
                        "mediaType": {"const": OCI_INDEX},
                        "manifests": {"type": "array", "items": {"type": "object"}},
                    },
                },
                {"OCI-Filters-Applied": header("artifactType, when the filter was applied")},
            )
        },
    ),
}


def oci_key(route: OciRoute) -> str:
    """The operation's key: "METHOD /v2/{name}/..." (the table's template)."""
    return f"{route.method} {route.template}"


def _oci_doc(route: OciRoute) -> Doc:
    details = OCI_DETAILS[route.endpoint]
    return Doc(
        route.summary,
        "oci",
        details.description,
        request_body=details.request_body,
        parameters=details.parameters,
        responses=details.responses,
        problems=details.problems,
    )


OPERATIONS.update({oci_key(route): _oci_doc(route) for route in OCI_ROUTES})
