"""Reading what the registry answered, without trusting it.

Invariant: every helper here either returns a value that names exactly what
was asked for (digest, size) or raises ``VerificationError`` (for claims about
content) or ``ReliquaryError`` (for answers missing what the protocol promises).
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any

import httpx

from clients.errors import ReliquaryError, VerificationError
from registry.core.canonical import loads_strict
from registry.core.digest import Algorithm, Digest
from registry.core.errors import InvalidDigestError, InvalidNumberError
from registry.core.merkle import HASH_SIZE
from registry.core.numbers import parse_decimal


@dataclass(frozen=True, slots=True)
class RemoteBlob:
    """What the registry says it stores for a digest: both digests and the size."""

    blake3: Digest
    sha256: Digest
    size_bytes: int

    def names(self, digest: Digest) -> bool:
        """True when ``digest`` (either algorithm) is one of this blob's digests."""
        return (self.blake3 if digest.algorithm is Algorithm.BLAKE3 else self.sha256) == digest


def remote_blob(blake3: object, sha256: object, size: object, asked: Digest) -> RemoteBlob:
    """Parse what the server reported about ``asked``.

    Raises:
        VerificationError: a field is missing or malformed, or it names other bytes.
    """
    try:
        blob = RemoteBlob(Digest.parse(str(blake3)), Digest.parse(str(sha256)), int(str(size)))
    except (InvalidDigestError, ValueError):
        raise VerificationError(
            f"the registry described {asked} with malformed digests or size "
            f"(blake3={blake3!r}, sha256={sha256!r}, size={size!r})"
        ) from None
    if not blob.names(asked):
        raise VerificationError(
            f"asked about {asked} but the registry answered for {blob.blake3} ({blob.sha256})"
        )
    return blob


def json_object(response: httpx.Response) -> dict[str, Any]:
    """The response body as a JSON object.

    Raises:
        ReliquaryError: the body is not a JSON object.
    """
    try:
        body = loads_strict(response.content)
    except ValueError:  # InvalidJSONError: also too deep, duplicate keys, huge numbers
        body = None
    if not isinstance(body, dict):
        raise ReliquaryError(
            f"{response.request.method} {response.url} answered HTTP {response.status_code} "
            "without a JSON object body",
            status=response.status_code,
        )
    return body


def stored(response: httpx.Response, digest: Digest, size_bytes: int) -> bool:
    """True for 201 (created), False for 200, once the answer names ``digest``.

    Raises:
        VerificationError: the server stored other bytes or another size.
    """
    body = json_object(response)
    blob = remote_blob(body.get("blake3"), body.get("sha256"), body.get("size_bytes"), digest)
    if blob.size_bytes != size_bytes:
        raise VerificationError(
            f"sent {size_bytes} bytes for {digest} but the registry stored {blob.size_bytes}"
        )
    return response.status_code == 201


def upload_offset(response: httpx.Response) -> int:
    """The ``Upload-Offset`` header.

    Raises:
        ReliquaryError: it is missing or not a number.
    """
    try:
        return parse_decimal(response.headers.get("upload-offset", ""), "Upload-Offset")
    except InvalidNumberError as exc:
        raise ReliquaryError(
            f"{response.request.method} {response.url} answered without a valid "
            f"Upload-Offset: {exc}",
            status=response.status_code,
        ) from None


def json_list(response: httpx.Response, field: str | None = None) -> list[dict[str, Any]]:
    """The body (or its ``field``) as a JSON list of objects.

    Raises:
        ReliquaryError: the body is not that shape.
    """
    try:
        body: Any = loads_strict(response.content)
    except ValueError:  # InvalidJSONError: also too deep, duplicate keys, huge numbers
        body = None
    if field is not None:
        body = body.get(field) if isinstance(body, dict) else None
    if not isinstance(body, list) or not all(isinstance(item, dict) for item in body):
        where = f" field {field!r}" if field else ""
        raise ReliquaryError(
            f"{response.request.method} {response.url} answered HTTP {response.status_code} "
            f"without a JSON list of objects{where}",
            status=response.status_code,
        )
    return body


def proof_hashes(response: httpx.Response) -> list[bytes]:
    """The ``hashes`` of a Merkle proof answer, decoded; nothing is trusted yet.

    Raises:
        VerificationError: ``hashes`` is missing, or an element is not base64 of 32 bytes.
    """
    hashes = json_object(response).get("hashes")
    if not isinstance(hashes, list):
        raise VerificationError(f"{response.url} answered a proof without a list of hashes")
    decoded: list[bytes] = []
    for position, text in enumerate(hashes):
        try:
            value = base64.b64decode(str(text), validate=True)
        except binascii.Error:
            value = b""
        if not isinstance(text, str) or len(value) != HASH_SIZE:
            raise VerificationError(
                f"{response.url} answered a proof whose hash {position} is not base64 of "
                f"{HASH_SIZE} bytes"
            )
        decoded.append(value)
    return decoded
