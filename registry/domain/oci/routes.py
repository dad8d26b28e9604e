"""Every ``/v2`` operation, once: method, path template, the access it needs, a summary.

Repository names hold ``/``, so Litestar cannot route ``/v2/{name}/manifests/{ref}``
itself (a path parameter must come last): one catch-all handler
(``registry.domain.oci.controllers``) matches the path against this table. The same
table documents each operation in the OpenAPI document and lists it in the tests' role
matrix, so routing, documentation and access checks cannot drift apart.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

from registry.core.images import NAME  # one grammar with runtime pins

TAG_PATTERN = re.compile(r"[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}")

Access = Literal["pull", "push", "catalog"]
OCI_CATCH_ALL = "/v2/{path}"  # the template of the one Litestar route behind the table
# a blob's digest is <algorithm>:<encoded>, so ".../blobs/uploads" is never read as one
BLOB_DIGEST = "/blobs/{digest}"


@dataclass(frozen=True, slots=True)
class OciRoute:
    method: str
    template: str  # "/v2/{name}/blobs/{digest}"
    endpoint: str  # the handler's key in ``registry.domain.oci.controllers.HANDLERS``
    access: Access
    summary: str
    pattern: re.Pattern[str] = field(init=False, repr=False, compare=False)
    loose: re.Pattern[str] = field(init=False, repr=False, compare=False)  # any name

    def __post_init__(self) -> None:
        object.__setattr__(self, "pattern", self._compile(NAME))
        object.__setattr__(self, "loose", self._compile(".+"))

    def _compile(self, name: str) -> re.Pattern[str]:
        regex = re.escape(self.template.rstrip("/"))
        regex = regex.replace(re.escape("{name}"), f"(?P<name>{name})")
        for param in re.findall(r"\{(\w+)\}", self.template):
            if param != "name":
                blob = param == "digest" and BLOB_DIGEST in self.template
                value = "[^/:]+:[^/]+" if blob else "[^/]+"
                regex = regex.replace(re.escape("{" + param + "}"), f"(?P<{param}>{value})")
        return re.compile(regex)


OCI_ROUTES: tuple[OciRoute, ...] = (
    OciRoute("GET", "/v2/_catalog", "catalog", "catalog", "List the repositories"),
    OciRoute(
        "POST",
        "/v2/{name}/blobs/uploads/",
        "start_upload",
        "push",
        "Start a blob upload, upload a blob in one request, or mount one from another repository",
    ),
    OciRoute(
        "GET",
        "/v2/{name}/blobs/uploads/{upload_id}",
        "upload_status",
        "push",
        "Read how much of an upload the registry holds",
    ),
    OciRoute(
        "PATCH",
        "/v2/{name}/blobs/uploads/{upload_id}",
        "append_upload",
        "push",
        "Send the next chunk of an upload",
    ),
    OciRoute(
        "PUT",
        "/v2/{name}/blobs/uploads/{upload_id}",
        "finish_upload",
        "push",
        "Finish an upload (with an optional last chunk): the blob is stored if it has the digest",
    ),
    OciRoute(
        "DELETE",
        "/v2/{name}/blobs/uploads/{upload_id}",
        "cancel_upload",
        "push",
        "Abandon an upload",
    ),
    OciRoute("HEAD", "/v2/{name}/blobs/{digest}", "head_blob", "pull", "Check that a blob exists"),
    OciRoute(
        "GET", "/v2/{name}/blobs/{digest}", "get_blob", "pull", "Download a blob (ranges too)"
    ),
    OciRoute(
        "DELETE",
        "/v2/{name}/blobs/{digest}",
        "delete_blob",
        "push",
        "Refused: nothing is ever deleted (405 UNSUPPORTED)",
    ),
    OciRoute(
        "HEAD",
        "/v2/{name}/manifests/{reference}",
        "head_manifest",
        "pull",
        "Check a manifest by tag or digest",
    ),
    OciRoute(
        "GET",
        "/v2/{name}/manifests/{reference}",
        "get_manifest",
        "pull",
        "Download a manifest by tag or digest (the exact bytes pushed)",
    ),
    OciRoute(
        "PUT",
        "/v2/{name}/manifests/{reference}",
        "put_manifest",
        "push",
        "Push a manifest by tag or digest; a tag push also creates artifact name@tag",
    ),
    OciRoute(
        "DELETE",
        "/v2/{name}/manifests/{reference}",
        "delete_manifest",
        "push",
        "Refused: tags are immutable and nothing is ever deleted (405 UNSUPPORTED)",
    ),
    OciRoute("GET", "/v2/{name}/tags/list", "list_tags", "pull", "List a repository's tags"),
    OciRoute(
        "GET",
        "/v2/{name}/referrers/{digest}",
        "list_referrers",
        "pull",
        "List the manifests whose subject is a digest (OCI 1.1 referrers)",
    ),
)


@dataclass(frozen=True, slots=True)
class Match:
    route: OciRoute | None  # None: the path is known but not for this method
    params: dict[str, str]
    allowed: tuple[str, ...]  # the methods this path answers


def match(method: str, path: str) -> Match | None:
    """The route serving ``method path`` (``path`` from ``/v2``, no trailing slash), or
    None when no route has this path. ``HEAD`` is only what a route declares."""
    path = path.rstrip("/") or path
    found: Match | None = None
    allowed: list[str] = []
    for route in OCI_ROUTES:
        m = route.pattern.fullmatch(path)
        if m is None:
            continue
        allowed.append(route.method)
        if found is None and route.method == method:
            found = Match(route, m.groupdict(), ())
    if not allowed:
        return None
    if found is None:
        return Match(None, {}, tuple(allowed))
    return Match(found.route, found.params, tuple(allowed))


def misnamed(path: str) -> str | None:
    """The repository name of ``path`` when it has the shape of a route but a name outside
    the OCI grammar (a ``NAME_INVALID`` answer rather than a 404)."""
    path = path.rstrip("/") or path
    for route in OCI_ROUTES:
        m = route.loose.fullmatch(path)
        if m is not None and "name" in m.groupdict():
            return m.group("name")
    return None


def scope_of(access: Access, name: str | None) -> str:
    """The token scope (distribution token spec) a request of ``access`` needs."""
    if access == "catalog" or name is None:
        return "registry:catalog:*"
    return f"repository:{name}:{'pull' if access == 'pull' else 'pull,push'}"
