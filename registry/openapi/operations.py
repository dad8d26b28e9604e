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
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from registry.core.digest import digest_bytes
from registry.core.manifest import MANIFEST_MEDIA_TYPE

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
        "Every policy requirement of a channel, met or not, with why", "channels"
    ),
    # -- jobs --------------------------------------------------------------------------
    "POST /v1/jobs/claim": Doc(
        "Claim a verification job for one of the worker's profiles",
        "jobs",
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
        request_body=ENVELOPE_BODY,
        problems=(409, 413, 422),
    ),
    "POST /v1/jobs/{job_id}/fail": Doc("Give a job up, with the error", "jobs", problems=(409,)),
    "POST /v1/artifacts/{digest}/verify": Doc(
        "Ask for more verification runs of an artifact", "jobs"
    ),
    "GET /v1/artifacts/{digest}/jobs": Doc("An artifact's verification jobs", "jobs"),
}
