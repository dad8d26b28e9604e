"""The registry's error tree. ``registry.problems`` maps each class to HTTP once.

Every error names the broken invariant and says what to do next; ``extra``
carries machine-readable fields that go into the problem+json body.
"""

from __future__ import annotations

from typing import Any


class RegistryError(Exception):
    """Base of every error the registry service raises on purpose."""

    def __init__(self, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra


# -- auth ---------------------------------------------------------------------------
class AuthenticationRequiredError(RegistryError):
    """No bearer token, or one that is unknown, expired or revoked."""


class PermissionDeniedError(RegistryError):
    """The token's role may not call this endpoint."""


# -- lookups ------------------------------------------------------------------------
class NotFoundError(RegistryError):
    """Base for a thing that does not exist."""


class BlobNotFoundError(NotFoundError):
    pass


class ArtifactNotFoundError(NotFoundError):
    pass


class UploadNotFoundError(NotFoundError):
    """No such upload session, or it expired or was aborted."""


class TokenNotFoundError(NotFoundError):
    pass


# -- request shape ------------------------------------------------------------------
class InvalidRequestError(RegistryError):
    """A parameter, header or JSON body is malformed."""


class BodyTooLargeError(RegistryError):
    """The body exceeds a configured limit (checked while streaming)."""


class IncompleteBodyError(RegistryError):
    """The body ended before its declared ``Content-Length`` (a truncated upload)."""


class RangeNotSatisfiableError(RegistryError):
    pass


# -- content ------------------------------------------------------------------------
class DigestMismatchError(RegistryError):
    """The bytes received do not hash to the claimed digest; nothing was stored."""


class UploadOffsetMismatchError(RegistryError):
    """A chunk's ``Upload-Offset`` is not the upload's current offset."""


class ImmutableVersionError(RegistryError):
    """``name@version`` is already bound to a different digest."""


class MissingBlobsError(RegistryError):
    """A manifest names blobs the registry does not hold."""


class ManifestFileMismatchError(RegistryError):
    """A manifest's file entry disagrees with the stored blob (size or sha256)."""


# -- dependencies -------------------------------------------------------------------
class ServiceUnavailableError(RegistryError):
    """The database or blob store cannot be reached."""


class MissingReferenceError(RegistryError):
    """A manifest's ``reference.inputs`` names an artifact the registry does not hold."""


class MissingRuntimeImageError(RegistryError):
    """A manifest's ``runtime.image`` pins an image the registry does not hold (repository
    NAME holds no manifest with that sha256)."""


class KeyNotFoundError(NotFoundError):
    pass


class KeyConflictError(RegistryError):
    """A key id is already registered (with another role), or already revoked."""


class AttestationRejectedError(RegistryError):
    """An envelope failed a check: subject, key, role, revocation or signature."""


class PolicyUnmetError(RegistryError):
    """Promotion refused: the channel's policy has unmet requirements (listed)."""


class RollbackTargetError(RegistryError):
    """A rollback names a digest the channel never held, or there is nothing to go back to."""


class ChannelNotFoundError(NotFoundError):
    pass


class LogIntegrityError(RegistryError):
    """The database disagrees with the transparency log it holds (an entry that is not
    its leaf, a channel pointer that is not the channel's latest logged move, a log
    smaller than a tree this registry signed): refused, never served."""


class JobNotFoundError(NotFoundError):
    pass


class JobLeaseError(RegistryError):
    """The caller does not hold this job's lease (never did, or it expired and moved on)."""


# -- OCI distribution (``/v2``; ``registry.ocierrors`` maps these to the OCI codes) ---
class RepositoryNotFoundError(NotFoundError):
    """No such OCI repository (nothing was ever pushed under the name)."""


class OciManifestNotFoundError(NotFoundError):
    """No manifest with this tag or digest in the repository."""


class InvalidRepositoryNameError(InvalidRequestError):
    """A repository name outside the OCI grammar."""


class InvalidTagError(InvalidRequestError):
    """A manifest reference that is neither a digest nor a tag of the OCI grammar."""


class InvalidUploadError(InvalidRequestError):
    """An upload request that is malformed (a bad ``Content-Range``, a missing digest)."""


class UnsupportedOperationError(RegistryError):
    """An operation the registry refuses by design (DELETE: nothing is ever deleted)."""


class TagTakenError(ImmutableVersionError):
    """An OCI tag already names another manifest (tags are immutable versions)."""


class OciManifestBlobsMissingError(MissingBlobsError):
    """An OCI manifest names blobs or child manifests the repository does not hold."""
