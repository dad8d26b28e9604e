"""``/v1/log``: signed checkpoints, the verifier key, entries, and Merkle proofs.

Checkpoints, the key and proofs are public: an auditor needs no token to check
that the history it was shown is consistent. Entries need a reader token.
"""

from __future__ import annotations

import base64
from typing import Annotated, Any

import anyio.to_thread
from litestar import Controller, Response, get
from litestar.params import FromQuery, QueryParameter

from registry.domain.auth.guards import readers
from registry.domain.log.deps import TransparencyLogDep

NO_CACHE = {"cache-control": "no-store"}


def _b64(items: list[bytes]) -> list[str]:
    return [base64.b64encode(h).decode() for h in items]


class LogController(Controller):
    path = "/v1/log"

    @get("/checkpoint", media_type="text/plain")
    async def checkpoint(self, transparency_log: TransparencyLogDep) -> Response[bytes]:
        note = await anyio.to_thread.run_sync(transparency_log.checkpoint)
        return Response(note, media_type="text/plain", headers=NO_CACHE)

    @get("/key", media_type="text/plain")
    async def key(self, transparency_log: TransparencyLogDep) -> str:
        return transparency_log.signer.verifier_key()

    @get("/entries", guards=[readers])
    async def entries(
        self, transparency_log: TransparencyLogDep, start: FromQuery[int], end: FromQuery[int]
    ) -> dict[str, Any]:
        found = await anyio.to_thread.run_sync(transparency_log.entries, start, end)
        return {
            "entries": [
                {"index": e.index, "kind": e.kind, "entry": base64.b64encode(e.entry).decode()}
                for e in found
            ]
        }

    @get("/proof/inclusion")
    async def inclusion(
        self, transparency_log: TransparencyLogDep, index: FromQuery[int], size: FromQuery[int]
    ) -> dict[str, Any]:
        proof = await anyio.to_thread.run_sync(transparency_log.inclusion_proof, index, size)
        return {"index": index, "size": size, "hashes": _b64(proof)}

    @get("/proof/consistency")
    async def consistency(
        self,
        transparency_log: TransparencyLogDep,
        old_size: Annotated[int, QueryParameter(name="from")],
        new_size: Annotated[int, QueryParameter(name="to")],
    ) -> dict[str, Any]:
        proof = await anyio.to_thread.run_sync(
            transparency_log.consistency_proof, old_size, new_size
        )
        return {"from": old_size, "to": new_size, "hashes": _b64(proof)}
