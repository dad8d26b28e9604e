"""One table from error classes to the OCI distribution error body, for ``/v2``.

Registry clients (skopeo, oras, docker, containerd) act on the ``code`` of
``{"errors": [{"code", "message", "detail"}]}`` (distribution-spec v1.1, "Error Codes"),
never on a problem+json ``type``: so every answer under ``/v2`` uses this body, and
``/v1`` keeps problem+json (``registry.problems``). Statuses follow CNCF Distribution
where the spec names none. Lookups walk the class hierarchy like ``registry.problems``.

Codes that change what a client does, and so are chosen with care:
- a tag already bound to another manifest is ``409 DENIED``: containers/image treats
  ``MANIFEST_INVALID`` as "try another manifest format" and would retry with a
  converted manifest;
- refused deletion is ``405 UNSUPPORTED``: the conformance suite's teardown accepts
  only 2xx, 404 and 405 there;
- ``401`` always carries a ``Bearer`` challenge naming the token endpoint and the
  scope the request needs (oras reads the scope from the failed request itself).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from registry.core.errors import (
    InvalidDigestError,
    InvalidJSONError,
    InvalidNumberError,
    InvalidOciManifestError,
    InvalidQuantityError,
)
from registry.db.errors import DatabaseFullError
from registry.errors import (
    AuthenticationRequiredError,
    BlobNotFoundError,
    BodyTooLargeError,
    DigestMismatchError,
    ImmutableVersionError,
    IncompleteBodyError,
    InvalidRepositoryNameError,
    InvalidRequestError,
    InvalidTagError,
    InvalidUploadError,
    LogIntegrityError,
    MissingBlobsError,
    NotFoundError,
    OciManifestNotFoundError,
    PermissionDeniedError,
    RangeNotSatisfiableError,
    RepositoryNotFoundError,
    ServiceUnavailableError,
    UnsupportedOperationError,
    UploadNotFoundError,
    UploadOffsetMismatchError,
)
from registry.storage import StorageError, StorageFullError

OCI_PREFIX = "/v2"
SERVICE = "reliquary"  # the ``service`` of every challenge and token
API_VERSION_HEADER = {"docker-distribution-api-version": "registry/2.0"}  # on every answer


@dataclass(frozen=True, slots=True)
class OciCode:
    status: int
    code: str


OCI_ERRORS: dict[type[Exception], OciCode] = {
    AuthenticationRequiredError: OciCode(401, "UNAUTHORIZED"),
    PermissionDeniedError: OciCode(403, "DENIED"),
    NotFoundError: OciCode(404, "NAME_UNKNOWN"),
    RepositoryNotFoundError: OciCode(404, "NAME_UNKNOWN"),
    BlobNotFoundError: OciCode(404, "BLOB_UNKNOWN"),
    UploadNotFoundError: OciCode(404, "BLOB_UPLOAD_UNKNOWN"),
    OciManifestNotFoundError: OciCode(404, "MANIFEST_UNKNOWN"),
    InvalidRequestError: OciCode(400, "UNSUPPORTED"),
    InvalidQuantityError: OciCode(400, "UNSUPPORTED"),
    InvalidNumberError: OciCode(400, "UNSUPPORTED"),
    InvalidRepositoryNameError: OciCode(400, "NAME_INVALID"),
    InvalidUploadError: OciCode(400, "BLOB_UPLOAD_INVALID"),
    InvalidOciManifestError: OciCode(400, "MANIFEST_INVALID"),
    InvalidTagError: OciCode(400, "TAG_INVALID"),
    InvalidJSONError: OciCode(400, "MANIFEST_INVALID"),
    InvalidDigestError: OciCode(400, "DIGEST_INVALID"),
    DigestMismatchError: OciCode(400, "DIGEST_INVALID"),
    MissingBlobsError: OciCode(400, "MANIFEST_BLOB_UNKNOWN"),
    BodyTooLargeError: OciCode(413, "SIZE_INVALID"),
    IncompleteBodyError: OciCode(400, "SIZE_INVALID"),
    RangeNotSatisfiableError: OciCode(416, "BLOB_UPLOAD_INVALID"),
    UploadOffsetMismatchError: OciCode(416, "BLOB_UPLOAD_INVALID"),
    ImmutableVersionError: OciCode(409, "DENIED"),
    UnsupportedOperationError: OciCode(405, "UNSUPPORTED"),
    ServiceUnavailableError: OciCode(503, "UNAVAILABLE"),
    LogIntegrityError: OciCode(503, "UNAVAILABLE"),
    StorageError: OciCode(503, "UNAVAILABLE"),
    StorageFullError: OciCode(507, "UNAVAILABLE"),
    DatabaseFullError: OciCode(507, "UNAVAILABLE"),
}

# what a framework HTTP error (no route, wrong method, body too large) answers as
_HTTP_CODES = {
    400: "UNSUPPORTED",
    401: "UNAUTHORIZED",
    403: "DENIED",
    404: "UNSUPPORTED",
    405: "UNSUPPORTED",
    413: "SIZE_INVALID",
    429: "TOOMANYREQUESTS",
}
UNKNOWN = OciCode(500, "UNKNOWN")


def is_oci_path(path: str) -> bool:
    """Whether ``path`` is served by the OCI distribution API (and answers its errors)."""
    return path == OCI_PREFIX or path.startswith(OCI_PREFIX + "/")


def oci_code_of(exc: BaseException) -> OciCode | None:
    """The OCI row for ``exc``'s class or its nearest listed ancestor."""
    for cls in type(exc).__mro__:
        code = OCI_ERRORS.get(cls)
        if code is not None:
            return code
    return None


def oci_code_for_status(status: int) -> OciCode:
    return OciCode(status, _HTTP_CODES.get(status, "UNKNOWN"))


def oci_error_body(code: str, message: str, detail: Any = None) -> dict[str, Any]:
    return {"errors": [{"code": code, "message": message, "detail": detail or {}}]}


PUBLIC_URL_KEY = "public_url"  # app state: RELIQUARY_PUBLIC_URL, or None


def bearer_challenge(base_url: str, scope: str | None, error: str | None = None) -> str:
    """The ``WWW-Authenticate`` value of a ``/v2`` 401: where to get a token, for what.
    ``base_url``: ``RELIQUARY_PUBLIC_URL``, else the request's own (a ``"`` or ``\\`` in
    a Host header is dropped: it would end the quoted realm)."""
    base_url = base_url.replace('"', "").replace("\\", "")
    realm = f"{base_url.rstrip('/')}{OCI_PREFIX}/token"
    value = f'Bearer realm="{realm}",service="{SERVICE}"'
    if scope:
        value += f',scope="{scope}"'
    if error:
        value += f',error="{error}"'
    return value
