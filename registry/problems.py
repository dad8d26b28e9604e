"""One table from error classes to RFC 9457 problem+json responses.

Each entry fixes the HTTP status and the stable ``type`` slug clients match on
(``https://reliquary.dev/problems/<slug>``). Lookups walk the class hierarchy, so a
subclass without its own row inherits its parent's.
"""

from __future__ import annotations

from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

from registry.core.errors import (
    InvalidDigestError,
    InvalidEnvelopeError,
    InvalidJSONError,
    InvalidKeyError,
    InvalidManifestError,
    InvalidNumberError,
    InvalidOciManifestError,
    InvalidQuantityError,
    InvalidSignatureError,
    InvalidStatementError,
    NonCanonicalJSONError,
)
from registry.core.problems import PROBLEM_BASE
from registry.db.errors import DatabaseFullError
from registry.errors import (
    ArtifactNotFoundError,
    AttestationRejectedError,
    AuthenticationRequiredError,
    BlobNotFoundError,
    BodyTooLargeError,
    ChannelNotFoundError,
    DigestMismatchError,
    ImmutableVersionError,
    IncompleteBodyError,
    InvalidRepositoryNameError,
    InvalidRequestError,
    InvalidTagError,
    InvalidUploadError,
    JobLeaseError,
    JobNotFoundError,
    KeyConflictError,
    KeyNotFoundError,
    LogIntegrityError,
    ManifestFileMismatchError,
    MissingBlobsError,
    MissingReferenceError,
    MissingRuntimeImageError,
    NotFoundError,
    OciManifestBlobsMissingError,
    OciManifestNotFoundError,
    PermissionDeniedError,
    PolicyUnmetError,
    RangeNotSatisfiableError,
    RegistryError,
    RepositoryNotFoundError,
    RollbackTargetError,
    ServiceUnavailableError,
    TagTakenError,
    TokenNotFoundError,
    UnsupportedOperationError,
    UploadNotFoundError,
    UploadOffsetMismatchError,
)
from registry.storage import StorageError, StorageFullError

MEDIA_TYPE = "application/problem+json"


@dataclass(frozen=True, slots=True)
class ProblemKind:
    status: int
    slug: str
    title: str


PROBLEMS: dict[type[Exception], ProblemKind] = {
    AuthenticationRequiredError: ProblemKind(401, "unauthenticated", "Authentication required"),
    PermissionDeniedError: ProblemKind(403, "forbidden", "Role not allowed"),
    NotFoundError: ProblemKind(404, "not-found", "Not found"),
    BlobNotFoundError: ProblemKind(404, "blob-not-found", "Blob not found"),
    ArtifactNotFoundError: ProblemKind(404, "artifact-not-found", "Artifact not found"),
    UploadNotFoundError: ProblemKind(404, "upload-not-found", "Upload session not found"),
    TokenNotFoundError: ProblemKind(404, "token-not-found", "Token not found"),
    InvalidRequestError: ProblemKind(400, "invalid-request", "Invalid request"),
    InvalidDigestError: ProblemKind(400, "invalid-digest", "Invalid digest"),
    InvalidQuantityError: ProblemKind(400, "invalid-request", "Invalid request"),
    InvalidNumberError: ProblemKind(400, "invalid-request", "Invalid request"),
    InvalidJSONError: ProblemKind(400, "invalid-json", "Invalid JSON"),
    NonCanonicalJSONError: ProblemKind(400, "non-canonical-json", "Manifest is not canonical"),
    InvalidManifestError: ProblemKind(400, "invalid-manifest", "Invalid manifest"),
    InvalidKeyError: ProblemKind(400, "invalid-key", "Invalid key"),
    InvalidEnvelopeError: ProblemKind(400, "invalid-envelope", "Invalid DSSE envelope"),
    InvalidStatementError: ProblemKind(400, "invalid-statement", "Invalid in-toto statement"),
    InvalidSignatureError: ProblemKind(422, "invalid-signature", "Signature does not verify"),
    BodyTooLargeError: ProblemKind(413, "body-too-large", "Body too large"),
    IncompleteBodyError: ProblemKind(400, "incomplete-body", "Body ended early"),
    RangeNotSatisfiableError: ProblemKind(416, "range-not-satisfiable", "Range not satisfiable"),
    DigestMismatchError: ProblemKind(400, "digest-mismatch", "Digest mismatch"),
    UploadOffsetMismatchError: ProblemKind(409, "upload-offset-mismatch", "Wrong upload offset"),
    ImmutableVersionError: ProblemKind(409, "version-taken", "Version already bound"),
    MissingBlobsError: ProblemKind(422, "missing-blobs", "Manifest names missing blobs"),
    MissingReferenceError: ProblemKind(
        422, "missing-reference", "Manifest references a missing artifact"
    ),
    MissingRuntimeImageError: ProblemKind(
        422, "missing-runtime-image", "Manifest pins an image the registry does not hold"
    ),
    ManifestFileMismatchError: ProblemKind(
        422, "manifest-file-mismatch", "Manifest disagrees with stored blob"
    ),
    KeyNotFoundError: ProblemKind(404, "key-not-found", "Signing key not found"),
    KeyConflictError: ProblemKind(409, "key-conflict", "Signing key conflict"),
    AttestationRejectedError: ProblemKind(422, "attestation-rejected", "Attestation rejected"),
    ChannelNotFoundError: ProblemKind(404, "channel-not-found", "Channel not found"),
    PolicyUnmetError: ProblemKind(409, "policy-unmet", "Promotion policy not met"),
    RollbackTargetError: ProblemKind(409, "invalid-rollback", "Invalid rollback target"),
    JobNotFoundError: ProblemKind(404, "job-not-found", "Job not found"),
    RepositoryNotFoundError: ProblemKind(404, "repository-not-found", "Repository not found"),
    OciManifestNotFoundError: ProblemKind(404, "manifest-not-found", "Manifest not found"),
    InvalidRepositoryNameError: ProblemKind(400, "invalid-name", "Invalid repository name"),
    InvalidOciManifestError: ProblemKind(400, "invalid-oci-manifest", "Invalid image manifest"),
    InvalidUploadError: ProblemKind(400, "invalid-upload", "Invalid upload request"),
    InvalidTagError: ProblemKind(400, "invalid-tag", "Invalid tag"),
    UnsupportedOperationError: ProblemKind(405, "unsupported", "Operation not supported"),
    TagTakenError: ProblemKind(409, "tag-taken", "Tag already bound"),
    OciManifestBlobsMissingError: ProblemKind(
        400, "manifest-blob-unknown", "Manifest names blobs the repository does not hold"
    ),
    JobLeaseError: ProblemKind(409, "lease-lost", "Job lease not held"),
    ServiceUnavailableError: ProblemKind(503, "unavailable", "Service unavailable"),
    LogIntegrityError: ProblemKind(
        503, "log-integrity", "Registry state disagrees with its transparency log"
    ),
    StorageError: ProblemKind(503, "storage-unavailable", "Blob storage unavailable"),
    StorageFullError: ProblemKind(507, "insufficient-storage", "Insufficient storage"),
    DatabaseFullError: ProblemKind(507, "insufficient-storage", "Insufficient storage"),
}

_HTTP_SLUGS = {
    400: "invalid-request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not-found",
    405: "method-not-allowed",
    408: "request-timeout",  # request headers too slow (registry.protocol)
    413: "body-too-large",
    415: "unsupported-media-type",
    429: "too-many-requests",
    500: "internal",
    503: "unavailable",
}


def kind_of(exc: BaseException) -> ProblemKind | None:
    """The problem row for ``exc``'s class or its nearest listed ancestor."""
    for cls in type(exc).__mro__:
        kind = PROBLEMS.get(cls)
        if kind is not None:
            return kind
    return None


MAX_EXPECTED_CHARS = 64 * 1024


def extra_of(exc: BaseException) -> dict[str, Any]:
    """Machine-readable fields an error adds to its problem body."""
    if isinstance(exc, RegistryError):
        return dict(exc.extra)
    if isinstance(exc, NonCanonicalJSONError):
        expected = exc.expected.decode("utf-8", errors="replace")
        if len(expected) > MAX_EXPECTED_CHARS:
            return {"expected": expected[:MAX_EXPECTED_CHARS], "expected_truncated": True}
        return {"expected": expected}
    if isinstance(exc, InvalidManifestError):
        return {"problems": list(exc.problems)}
    return {}


def problem_body(
    status: int, slug: str, title: str, detail: str, instance: str, extra: dict[str, Any]
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": PROBLEM_BASE + slug,
        "title": title,
        "status": status,
        "detail": detail,
        "instance": instance,
    }
    body.update(extra)
    return body


OTHER_HTTP_SLUG = "http-error"  # an HTTP error of a status _HTTP_SLUGS does not name


def slug_for_status(status: int) -> str:
    return _HTTP_SLUGS.get(status, OTHER_HTTP_SLUG)


def problem_catalogue() -> list[ProblemKind]:
    """Every problem type the API answers with, once per (slug, status): the table's rows,
    then the HTTP errors the framework raises (titled by their status phrase). The OpenAPI
    document lists these; ``OTHER_HTTP_SLUG`` covers any other HTTP status."""
    kinds: dict[tuple[str, int], ProblemKind] = {}
    for kind in PROBLEMS.values():
        kinds.setdefault((kind.slug, kind.status), kind)
    for status, slug in _HTTP_SLUGS.items():
        kinds.setdefault((slug, status), ProblemKind(status, slug, HTTPStatus(status).phrase))
    return sorted(kinds.values(), key=lambda k: (k.status, k.slug))
