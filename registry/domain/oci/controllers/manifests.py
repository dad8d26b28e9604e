"""Manifests and content discovery (distribution-spec v1.1 "Pushing Manifests",
"Pulling manifests", "Listing Tags", "Listing Referrers", and ``_catalog``).

A manifest is answered with the exact bytes pushed and the media type it was pushed as,
whatever the request's ``Accept`` says: the registry never converts a manifest. Every
answer names its status: the one catch-all route serves PUT and POST too, so its
default status is no guide.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import anyio.to_thread
import msgspec
from litestar import Response

from registry.bodies import read_body
from registry.core.numbers import parse_decimal
from registry.core.oci import OCI_INDEX, parse_sha256
from registry.domain.oci.controllers.call import EMPTY, OciCall, OciHandler
from registry.domain.oci.schemas import Catalog, Page, StoredOciManifest, TagList
from registry.http import HeadResponse

JSON = "application/json"


async def _manifest(call: OciCall) -> StoredOciManifest:
    reference = call.params["reference"]
    stored = call.oci.cached_manifest(call.name, reference)
    if stored is None:
        stored = await anyio.to_thread.run_sync(call.oci.get_manifest, call.name, reference)
    return stored


async def head_manifest(call: OciCall) -> Response[Any]:
    stored = await _manifest(call)
    return HeadResponse(
        None, status_code=200, headers=stored.headers(), media_type=stored.media_type
    )


async def get_manifest(call: OciCall) -> Response[Any]:
    stored = await _manifest(call)
    return Response(
        stored.raw, status_code=200, headers=stored.headers(), media_type=stored.media_type
    )


async def put_manifest(call: OciCall) -> Response[Any]:
    raw = await read_body(call.request, call.settings.limits.max_manifest_bytes, "manifest")
    pushed = await call.oci.put_manifest(
        call.name,
        call.params["reference"],
        call.request.headers.get("content-type"),
        raw,
        call.principal.token_id,
    )
    headers = {
        "location": f"/v2/{call.name}/manifests/{pushed.digest}",
        "docker-content-digest": str(pushed.digest),
    }
    if pushed.subject is not None:  # clients then skip the referrers tag schema
        headers["oci-subject"] = str(pushed.subject)
    return Response(b"", status_code=201, headers=headers, media_type=EMPTY)


def _paging(call: OciCall) -> tuple[int | None, str]:
    """``n`` (None when absent) and ``last`` ("" when absent) of a listing request.

    Raises InvalidNumberError: ``n`` is not a decimal integer."""
    query = call.request.query_params
    n = query.get("n")
    return (None if n is None else parse_decimal(n, "n")), query.get("last", "")


def _next_link(path: str, page: Page) -> dict[str, str]:
    """The RFC 8288 ``Link`` to the next page, when there is one."""
    if not page.more:
        return {}
    query = urlencode({"n": len(page.items), "last": page.items[-1]}, safe="/")
    return {"link": f'<{path}?{query}>; rel="next"'}


async def list_tags(call: OciCall) -> Response[Any]:
    n, last = _paging(call)
    page = await anyio.to_thread.run_sync(call.oci.list_tags, call.name, n, last)
    headers = _next_link(f"/v2/{call.name}/tags/list", page)
    body = msgspec.json.encode(TagList(name=call.name, tags=page.items))
    return Response(body, status_code=200, media_type=JSON, headers=headers)


async def catalog(call: OciCall) -> Response[Any]:
    n, last = _paging(call)
    page = await anyio.to_thread.run_sync(call.oci.catalog, n, last)
    body = msgspec.json.encode(Catalog(repositories=page.items))
    headers = _next_link("/v2/_catalog", page)
    return Response(body, status_code=200, media_type=JSON, headers=headers)


async def list_referrers(call: OciCall) -> Response[Any]:
    digest = parse_sha256(call.params["digest"])
    artifact_type = call.request.query_params.get("artifactType") or None
    index = await anyio.to_thread.run_sync(call.oci.referrers, call.name, digest, artifact_type)
    headers = {} if artifact_type is None else {"oci-filters-applied": "artifactType"}
    body = msgspec.json.encode(index)
    return Response(body, status_code=200, media_type=OCI_INDEX, headers=headers)


MANIFEST_HANDLERS: dict[str, OciHandler] = {
    "head_manifest": head_manifest,
    "get_manifest": get_manifest,
    "put_manifest": put_manifest,
    "list_tags": list_tags,
    "list_referrers": list_referrers,
    "catalog": catalog,
}
