"""Scoped ``/v2`` tokens: what ``GET /v2/token`` gives registry clients (distribution
``spec/auth/token.md``, as containers/image and oras-py fetch them).

A scoped token is ``rlqo_<payload>.<mac>``: the base64url (unpadded) JSON payload --
parent token id, role, granted actions per repository, catalog, expiry -- and its
HMAC-SHA256 under a key derived (HKDF-SHA256) from the checkpoint log signing key.
Every API replica already shares that key, so any replica verifies what another
issued, with no database row and no new setting.

Invariants:
- a grant names only the repositories asked for (and the catalog if asked), each with
  everything the role may do there (``pull`` for every role, ``push`` for publisher
  and admin; see ``grant_for`` for why not just the actions asked); asking for more
  is not an error (token.md): the resource refuses later;
- a token authenticates nobody unless its MAC verifies, its payload parses and it has
  not expired (checked by ``TokenService`` against its clock); its parent is looked up
  through ``TokenService`` on every use, so revoking or expiring the parent ends it
  (through another replica: within the token cache TTL);
- a new log key invalidates every scoped token: clients fetch another on the 401.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

import msgspec
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from registry.core.roles import Role
from registry.domain.auth.schemas import Grant
from registry.errors import AuthenticationRequiredError, InvalidRequestError

SCOPED_PREFIX = "rlqo_"
SCOPED_TOKEN_SECONDS = 300
MAX_SCOPES = 16  # scope entries per request; clients send one to three
MAX_SCOPED_CHARS = 8192
PUSH_ROLES = frozenset({Role.PUBLISHER, Role.ADMIN})
_HKDF_INFO = b"reliquary /v2 scoped token hmac v1"
_FORMAT = 1

_TYPE = re.compile(r"[a-z0-9]+(?:\([a-z0-9]+\))?")
_NAME = re.compile(r"[A-Za-z0-9._/:-]{1,255}")  # host:port/name is legal in token.md
_ACTION = re.compile(r"[a-z]+|\*")


@dataclass(frozen=True, slots=True)
class ScopeRequest:
    """One ``type:name:actions`` entry of a ``scope`` parameter or challenge."""

    type: str
    name: str
    actions: frozenset[str]

    def __str__(self) -> str:
        return f"{self.type}:{self.name}:{','.join(sorted(self.actions))}"


def parse_scope(text: str) -> ScopeRequest:
    """``text`` (``repository:library/app:pull,push``, ``registry:catalog:*``) parsed.

    The name is what lies between the first and the last ``:``, so a name with a
    registry host and port parses too.

    Raises:
        InvalidRequestError: not ``type:name:action[,action...]``.
    """
    kind, _, rest = text.partition(":")
    name, _, actions = rest.rpartition(":")
    listed = actions.split(",")
    if (
        not _TYPE.fullmatch(kind)
        or not _NAME.fullmatch(name)
        or not all(_ACTION.fullmatch(a) for a in listed)
    ):
        raise InvalidRequestError(
            f"scope {text[:300]!r} is malformed: send type:name:actions, "
            "e.g. scope=repository:library/app:pull,push or scope=registry:catalog:*"
        )
    return ScopeRequest(kind, name, frozenset(listed))


def parse_scopes(values: Iterable[str]) -> list[ScopeRequest]:
    """Every entry of the ``scope`` parameters (each may hold several, space-separated).

    Raises:
        InvalidRequestError: a malformed entry, or more than ``MAX_SCOPES``.
    """
    entries = [entry for value in values for entry in value.split()]
    if len(entries) > MAX_SCOPES:
        raise InvalidRequestError(
            f"{len(entries)} scopes requested; at most {MAX_SCOPES} fit in one token: "
            "ask for the others in another request"
        )
    return [parse_scope(entry) for entry in entries]


def actions_of(role: Role) -> frozenset[str]:
    """What ``role`` may do to a repository under ``/v2``."""
    return frozenset({"pull", "push"}) if role in PUSH_ROLES else frozenset({"pull"})


def grant_for(role: Role, requests: Iterable[ScopeRequest]) -> Grant:
    """What a token of ``role`` gets for ``requests``: for each repository asked about
    with a known action, everything ``role`` may do there (``actions_of``); the catalog
    for ``registry:catalog:*``. Other types and actions are dropped, never refused.

    A repository asked for ``pull`` gets ``push`` too when the role may push: oras-py
    (0.2.43) fetches a pull token on its first ``HEAD``, and after a 401
    ``insufficient_scope`` on the upload it sends the same cached token again instead
    of asking for more, so an exact grant strands its every push. The token stays
    confined to the repositories named and never exceeds its parent's role."""
    allowed = actions_of(role)
    repositories: dict[str, set[str]] = {}
    catalog = False
    for request in requests:
        if request.type == "repository":
            if request.actions & {"pull", "push", "*"}:
                repositories.setdefault(request.name, set()).update(allowed)
        elif request.type == "registry" and request.name == "catalog" and "*" in request.actions:
            catalog = True
    return Grant({name: frozenset(a) for name, a in sorted(repositories.items())}, catalog)


def grants(grant: Grant, needed: ScopeRequest) -> bool:
    """Whether ``grant`` covers every action of ``needed``."""
    if needed.type == "registry" and needed.name == "catalog":
        return grant.catalog
    if needed.type != "repository":
        return False
    return needed.actions <= grant.repositories.get(needed.name, frozenset())


@dataclass(frozen=True, slots=True)
class ScopedClaims:
    """What a scoped token says: its parent token (None: anonymous), the parent's role,
    the grant and when it stops working."""

    parent: str | None
    role: Role
    grant: Grant
    expires_at: datetime


class _Payload(msgspec.Struct, forbid_unknown_fields=True):
    v: int
    parent: str | None
    role: Role
    repositories: dict[str, list[str]]
    catalog: bool
    exp: int  # POSIX seconds


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


_BASE64URL = re.compile(r"[A-Za-z0-9_-]*")


def _unb64(text: str) -> bytes:
    """Raises binascii.Error, ValueError: not unpadded base64url."""
    if not _BASE64URL.fullmatch(text):
        raise ValueError("not base64url")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _invalid() -> AuthenticationRequiredError:
    return AuthenticationRequiredError(
        "the scoped token is not one this registry issued (or the registry's log key "
        "changed): fetch a new one from /v2/token with your Reliquary token"
    )


class ScopedTokenCodec:
    """Seals claims into a scoped token and opens one; knows no clock and no database."""

    def __init__(self, log_key_seed: bytes) -> None:
        """``log_key_seed``: the checkpoint log signing key's 32-byte private seed."""
        hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_HKDF_INFO)
        self._key = hkdf.derive(log_key_seed)

    def _mac(self, payload: str) -> bytes:
        return hmac.new(self._key, payload.encode("ascii"), hashlib.sha256).digest()

    def encode(self, claims: ScopedClaims) -> str:
        """The token for ``claims``.

        Raises:
            InvalidRequestError: the token would exceed ``MAX_SCOPED_CHARS``.
        """
        payload = _Payload(
            v=_FORMAT,
            parent=claims.parent,
            role=claims.role,
            repositories={n: sorted(a) for n, a in claims.grant.repositories.items()},
            catalog=claims.grant.catalog,
            exp=int(claims.expires_at.timestamp()),
        )
        body = _b64(msgspec.json.encode(payload))
        token = f"{SCOPED_PREFIX}{body}.{_b64(self._mac(body))}"
        if len(token) > MAX_SCOPED_CHARS:
            raise InvalidRequestError(
                "the scopes asked for do not fit in one token: ask for fewer per request"
            )
        return token

    def decode(self, token: str) -> ScopedClaims:
        """The claims of ``token``, once its MAC verified (expiry is the caller's check).

        Raises:
            AuthenticationRequiredError: malformed, or not sealed with this key.
        """
        if not token.startswith(SCOPED_PREFIX) or len(token) > MAX_SCOPED_CHARS:
            raise _invalid()
        body, dot, mac = token.removeprefix(SCOPED_PREFIX).partition(".")
        if not _BASE64URL.fullmatch(body):  # before the MAC: it is computed over ASCII
            raise _invalid()
        try:
            presented = _unb64(mac)
        except (binascii.Error, ValueError):
            raise _invalid() from None
        if not dot or not hmac.compare_digest(presented, self._mac(body)):
            raise _invalid()
        try:
            payload = msgspec.json.decode(_unb64(body), type=_Payload)
        except (binascii.Error, ValueError, msgspec.DecodeError):
            raise _invalid() from None
        if payload.v != _FORMAT:
            raise _invalid()
        grant = Grant({n: frozenset(a) for n, a in payload.repositories.items()}, payload.catalog)
        return ScopedClaims(
            payload.parent, payload.role, grant, datetime.fromtimestamp(payload.exp, UTC)
        )
