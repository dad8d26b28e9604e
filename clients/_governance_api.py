"""The governance half of ``RegistryClient``: channels, policy status, promote, rollback, history.

Invariants:
- Promote and rollback are POSTs that move a channel; they are sent again only
  when nothing reached the server (``Retry.CONNECT_ONLY``), never after an
  answer was lost, so one call is at most one move.
- An answer is checked for the promised shape and for naming what was asked:
  an event names the name, channel and action asked for (and the digest, where
  one was given); a status names the digest and channel asked about, and its
  ``promotable`` agrees with its requirements; a history page's events belong to
  the name (and channel) asked for. Anything else is a ``VerificationError``.
- A 409 ``policy-unmet`` refusal is a ``PolicyUnmetError`` whose
  ``requirements`` list every requirement and why it is unmet.
"""

from __future__ import annotations

import json
from typing import Any

from clients._answers import json_list, json_object
from clients._http import HttpSession, Retry
from clients.errors import ReliquaryError, VerificationError
from registry.core.digest import Algorithm, Digest

JSON = "application/json"


def _post_json(http: HttpSession, path: str, body: dict[str, Any]) -> dict[str, Any]:
    response = http.request(
        "POST",
        path,
        retry=Retry.CONNECT_ONLY,
        headers={"content-type": JSON},
        body=json.dumps(body, sort_keys=True).encode(),
    )
    return json_object(response)


def _check_event(
    event: dict[str, Any], action: str, name: str, channel: str, digest: Digest | None
) -> dict[str, Any]:
    """``event`` once it names the move asked for and carries a log index."""
    asked = (action, name, channel)
    said = (event.get("action"), event.get("name"), event.get("channel"))
    index = event.get("log_index")
    if said != asked or not isinstance(index, int) or isinstance(index, bool):
        raise VerificationError(
            f"asked to {action} {name}:{channel} but the registry answered "
            f"{said[0]!r} of {said[1]!r}:{said[2]!r} with log index {index!r}"
        )
    if digest is not None and event.get("to_digest") != str(digest):
        raise VerificationError(
            f"asked to {action} {name}:{channel} to {digest} but the registry says it moved "
            f"to {event.get('to_digest')!r}"
        )
    return event


def _check_status(status: dict[str, Any], digest: Digest, channel: str) -> dict[str, Any]:
    requirements = status.get("requirements")
    promotable = status.get("promotable")
    if (
        not isinstance(requirements, list)
        or not all(
            isinstance(r, dict) and isinstance(r.get("met"), bool) and "requirement" in r
            for r in requirements
        )
        or not isinstance(promotable, bool)
    ):
        raise ReliquaryError(
            f"the status of {digest} for {channel!r} came without promotable and a list of "
            "requirements with met/unmet"
        )
    named = status.get("digest") == str(digest) or digest.algorithm is Algorithm.SHA256
    if not named or status.get("channel") != channel:
        raise VerificationError(
            f"asked for the status of {digest} in {channel!r} but the registry answered for "
            f"{status.get('digest')!r} in {status.get('channel')!r}"
        )
    if promotable != all(r["met"] for r in requirements):
        raise VerificationError(
            f"the registry says {digest} is {'' if promotable else 'not '}promotable to "
            f"{channel!r}, but its requirements say otherwise"
        )
    return status


class GovernanceApi:
    """Mixed into ``RegistryClient``; every method raises the ``clients.errors`` classes."""

    _http: HttpSession

    def promote(self, name: str, channel: str, digest: Digest, reason: str) -> dict[str, Any]:
        """Point ``name``'s ``channel`` at ``digest``; the event (``log_index``,
        ``from_digest``, ``to_digest``, ``by``, ``at``, ...). Governor only.

        Raises:
            PolicyUnmetError: 409, the policy refused; ``requirements`` says why.
            InvalidRequestError: bad name, channel or reason, or an artifact of another name.
            NotFoundError: no such artifact.
            AuthError: the token is not a governor's.
            VerificationError: the answer is about another move.
        """
        body = {"name": name, "channel": channel, "digest": str(digest), "reason": reason}
        event = _post_json(self._http, "/v1/channels/promote", body)
        return _check_event(event, "promote", name, channel, digest)

    def rollback(
        self, name: str, channel: str, reason: str, digest: Digest | None = None
    ) -> dict[str, Any]:
        """Move ``name``'s ``channel`` back to ``digest`` (default: the digest it held
        before the current one); the event. Governor only.

        Raises:
            RefusedError: 409, the channel never held ``digest``, already points at
                it, or has nothing earlier.
            NotFoundError: no such channel or artifact.
            AuthError, InvalidRequestError, VerificationError: as for ``promote``.
        """
        body: dict[str, Any] = {"name": name, "channel": channel, "reason": reason}
        if digest is not None:
            body["digest"] = str(digest)
        event = _post_json(self._http, "/v1/channels/rollback", body)
        checked = digest if digest is None or digest.algorithm is Algorithm.BLAKE3 else None
        return _check_event(event, "rollback", name, channel, checked)

    def channels(self, name: str) -> list[dict[str, Any]]:
        """``name``'s channels and the digest each points at now.

        Raises:
            VerificationError: a pointer of another name.
        """
        response = self._http.request(
            "GET", "/v1/channels", retry=Retry.IDEMPOTENT, params={"name": name}
        )
        pointers = json_list(response)
        strays = [p.get("name") for p in pointers if p.get("name") != name]
        if strays:
            raise VerificationError(f"asked for {name}'s channels but got pointers of {strays!r}")
        return pointers

    def history(
        self, name: str, channel: str | None = None, cursor: str | None = None, limit: int = 100
    ) -> dict[str, Any]:
        """One page of moves, newest first: ``{"events": [...], "next_cursor": str | None}``.

        Raises:
            InvalidRequestError: bad name, channel, cursor or limit (1..500).
            VerificationError: an event of another name or channel, or a malformed cursor.
        """
        params: dict[str, str | int] = {"name": name, "limit": limit}
        if channel is not None:
            params["channel"] = channel
        if cursor is not None:
            params["cursor"] = cursor
        response = self._http.request(
            "GET", "/v1/channels/history", retry=Retry.IDEMPOTENT, params=params
        )
        events = json_list(response, "events")
        next_cursor = json_object(response).get("next_cursor")
        for event in events:
            if event.get("name") != name or channel not in (None, event.get("channel")):
                raise VerificationError(
                    f"asked for the history of {name}:{channel or '*'} but got an event of "
                    f"{event.get('name')!r}:{event.get('channel')!r}"
                )
        if next_cursor is not None and not isinstance(next_cursor, str):
            raise VerificationError(f"the history's next_cursor {next_cursor!r} is not a string")
        return {"events": events, "next_cursor": next_cursor}

    def status(self, digest: Digest, channel: str) -> dict[str, Any]:
        """Every requirement of ``channel``'s policy for ``digest``, met or not and why:
        ``{"digest", "channel", "policy_version", "promotable", "requirements"}``.

        Raises:
            NotFoundError: no such artifact.
            VerificationError: the answer is about another digest or channel, or
                contradicts itself.
        """
        response = self._http.request(
            "GET",
            f"/v1/artifacts/{digest}/status",
            retry=Retry.IDEMPOTENT,
            params={"channel": channel},
        )
        return _check_status(json_object(response), digest, channel)

    def resolve_channel(self, name: str, channel: str) -> dict[str, Any]:
        """The artifact ``name``'s ``channel`` points at (``digest``, ``version``, ...);
        verify its manifest before trusting it.

        Raises:
            NotFoundError: no such name or channel.
        """
        response = self._http.request(
            "GET", "/v1/resolve", retry=Retry.IDEMPOTENT, params={"name": name, "channel": channel}
        )
        return json_object(response)
