"""Finding content as registry clients do (distribution-spec v1.1 "Listing Tags",
"Listing Referrers", ``_catalog``; the conformance suite's content-discovery workflow):
byte-ordered pages linked by ``Link``, and referrers named by a manifest's ``subject``,
which need not exist when they are pushed."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import text

from registry.core.oci import OCI_INDEX, OCI_MANIFEST
from registry.core.roles import Role
from tests.conftest import Api, Deployment
from tests.support.oci import (
    EMPTY_CONFIG,
    descriptor,
    image_manifest,
    index_manifest,
    oci_error,
    push_blob,
    push_image,
    put_manifest,
    sha256,
)

NAME = "library/app"
SBOM = "application/vnd.example.sbom.v1"
SIGNATURE = "application/vnd.example.signature.v1"


# the name and tag columns; a linguistic collation is what a server initialised with
# en_US.UTF-8 (the official PostgreSQL image's default) gives every text column
NAME_COLUMNS = (
    ("oci_tags", "tag", 128),
    ("oci_tags", "name", 255),
    ("oci_repository_blobs", "name", 255),
    ("oci_repository_manifests", "name", 255),
)


def _collate(deployment: Deployment, collation: str) -> None:
    with deployment.engine.begin() as conn:
        for table, column, length in NAME_COLUMNS:
            conn.execute(
                text(
                    f"ALTER TABLE {table} ALTER COLUMN {column} "
                    f'TYPE varchar({length}) COLLATE "{collation}"'
                )
            )


@pytest.fixture
def linguistic(deployment: Deployment) -> Iterator[None]:
    """On PostgreSQL, name and tag columns that sort like a locale ("a" < "A" < "_x" is
    not byte order), so byte order must come from the queries themselves."""
    if deployment.engine.dialect.name != "postgresql":
        yield
        return
    _collate(deployment, "en-US-x-icu")
    try:
        yield
    finally:
        _collate(deployment, "default")


def tags_page(api: Api, query: str = "", name: str = NAME) -> tuple[list[str], str | None]:
    r = api.client.get(f"/v2/{name}/tags/list{query}", headers=api.auth(Role.READER))
    assert r.status_code == 200, r.text
    assert r.json()["name"] == name
    return r.json()["tags"], r.headers.get("link")


@pytest.mark.usefixtures("linguistic")
def test_tags_come_in_byte_order_paged_by_n_and_last(api: Api) -> None:
    raw = push_image(api, NAME, "a")
    for tag in ("b", "B", "Z", "1", "a-2", "A"):
        assert put_manifest(api, NAME, tag, raw).status_code == 201
    everything = ["1", "A", "B", "Z", "a", "a-2", "b"]  # ASCII, not a locale's order
    assert tags_page(api) == (everything, None)
    tags, link = tags_page(api, "?n=3")
    assert tags == ["1", "A", "B"]
    assert link == f'</v2/{NAME}/tags/list?n=3&last=B>; rel="next"'
    tags, link = tags_page(api, "?n=3&last=B")
    assert tags == ["Z", "a", "a-2"]
    tags, link = tags_page(api, "?n=3&last=a-2")
    assert (tags, link) == (["b"], None)
    assert tags_page(api, "?last=a") == (["a-2", "b"], None)  # last is exclusive
    assert tags_page(api, "?n=7") == (everything, None)
    assert tags_page(api, "?n=0") == ([], None)


def test_a_repository_with_blobs_only_has_no_tags(api: Api) -> None:
    push_blob(api, NAME, b"a layer")
    assert tags_page(api) == ([], None)


def test_tags_of_an_unknown_repository_are_name_unknown(api: Api) -> None:
    push_image(api, "other/repo", "v1")
    r = api.client.get(f"/v2/{NAME}/tags/list", headers=api.auth(Role.READER))
    assert r.status_code == 404
    assert oci_error(r)["code"] == "NAME_UNKNOWN"


def test_a_bad_page_size_is_refused(api: Api) -> None:
    push_image(api, NAME, "v1")
    for n in ("-1", "ten", "1.5"):
        r = api.client.get(f"/v2/{NAME}/tags/list?n={n}", headers=api.auth(Role.READER))
        assert r.status_code == 400, n
        assert "n must be" in oci_error(r)["message"]


@pytest.mark.usefixtures("linguistic")
def test_the_catalog_lists_repositories_in_byte_order_with_links(api: Api) -> None:
    push_blob(api, "zeta", b"a blob alone makes a repository")
    for name in ("library/app", "library/app-b", "alpha/x", "library/app.c", "library/app_d"):
        push_image(api, name, "v1")
    reader = api.auth(Role.READER)
    r = api.client.get("/v2/_catalog", headers=reader)
    assert r.status_code == 200
    everything = ["alpha/x", "library/app", "library/app-b", "library/app.c", "library/app_d"]
    assert r.json() == {"repositories": [*everything, "zeta"]}
    assert "link" not in r.headers
    r = api.client.get("/v2/_catalog?n=2", headers=reader)
    assert r.json() == {"repositories": ["alpha/x", "library/app"]}
    assert r.headers["link"] == '</v2/_catalog?n=2&last=library/app>; rel="next"'
    r = api.client.get("/v2/_catalog?n=4&last=library/app", headers=reader)
    assert r.json() == {"repositories": ["library/app-b", "library/app.c", "library/app_d", "zeta"]}
    assert "link" not in r.headers
    r = api.client.get("/v2/_catalog?n=0", headers=reader)
    assert r.json() == {"repositories": []}
    assert "link" not in r.headers


def referrer(api: Api, subject: str, size: int, artifact_type: str | None, **fields: Any) -> bytes:
    """Push a referrer of ``subject`` by digest (the empty config, oras-style)."""
    push_blob(api, NAME, b"{}")
    extra = {} if artifact_type is None else {"artifactType": artifact_type}
    raw = image_manifest(
        descriptor(b"{}", EMPTY_CONFIG),
        [],
        subject={"mediaType": OCI_MANIFEST, "digest": subject, "size": size},
        **extra,
        **fields,
    )
    r = put_manifest(api, NAME, sha256(raw), raw)
    assert r.status_code == 201, r.text
    assert r.headers["oci-subject"] == subject
    return raw


def referrers(api: Api, digest: str, query: str = "", name: str = NAME) -> dict[str, object]:
    r = api.client.get(f"/v2/{name}/referrers/{digest}{query}", headers=api.auth(Role.READER))
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == OCI_INDEX  # exactly: the conformance suite compares
    body: dict[str, object] = r.json()
    assert (body["schemaVersion"], body["mediaType"]) == (2, OCI_INDEX)
    if query:
        assert r.headers["oci-filters-applied"] == "artifactType"
    else:
        assert "oci-filters-applied" not in r.headers
    return body


def test_referrers_list_the_manifests_whose_subject_is_a_digest(api: Api) -> None:
    image = push_image(api, NAME, "v1")
    subject = sha256(image)
    sbom = referrer(api, subject, len(image), SBOM, annotations={"org.example.kind": "sbom"})
    signature = referrer(api, subject, len(image), SIGNATURE)
    referrer(api, sha256(b"another subject"), 16, SBOM)
    push_blob(api, NAME, b"config")  # artifactType from config.mediaType when unset
    by_config = image_manifest(
        descriptor(b"config", "application/vnd.example.config.v1+json"),
        [],
        subject={"mediaType": OCI_MANIFEST, "digest": subject, "size": len(image)},
    )
    assert put_manifest(api, NAME, "by-config", by_config).status_code == 201
    index = index_manifest(
        [descriptor(image, OCI_MANIFEST)],
        subject={"mediaType": OCI_MANIFEST, "digest": subject, "size": len(image)},
    )
    assert put_manifest(api, NAME, "index", index, OCI_INDEX).status_code == 201
    expected = {
        sha256(sbom): {
            "mediaType": OCI_MANIFEST,
            "digest": sha256(sbom),
            "size": len(sbom),
            "artifactType": SBOM,
            "annotations": {"org.example.kind": "sbom"},
        },
        sha256(signature): {
            "mediaType": OCI_MANIFEST,
            "digest": sha256(signature),
            "size": len(signature),
            "artifactType": SIGNATURE,
        },
        sha256(by_config): {
            "mediaType": OCI_MANIFEST,
            "digest": sha256(by_config),
            "size": len(by_config),
            "artifactType": "application/vnd.example.config.v1+json",
        },
        sha256(index): {  # an index without artifactType has none
            "mediaType": OCI_INDEX,
            "digest": sha256(index),
            "size": len(index),
        },
    }
    listed = referrers(api, subject)["manifests"]
    assert isinstance(listed, list)
    assert {d["digest"]: d for d in listed} == expected
    filtered = referrers(api, subject, f"?artifactType={SBOM}")["manifests"]
    assert filtered == [expected[sha256(sbom)]]
    assert referrers(api, subject, "?artifactType=application/vnd.none")["manifests"] == []


def test_a_missing_subject_is_accepted_and_its_referrers_listed(api: Api) -> None:
    absent = sha256(b"an image pushed later, or never")
    raw = referrer(api, absent, 30, SIGNATURE)  # asserts 201 and OCI-Subject
    listed = referrers(api, absent)["manifests"]
    assert listed == [
        {
            "mediaType": OCI_MANIFEST,
            "digest": sha256(raw),
            "size": len(raw),
            "artifactType": SIGNATURE,
        }
    ]
    r = api.client.get(f"/v2/{NAME}/manifests/{absent}", headers=api.auth(Role.READER))
    assert r.status_code == 404  # accepting the referrer invented no subject


def test_referrers_are_per_repository_and_never_404(api: Api) -> None:
    image = push_image(api, NAME, "v1")
    referrer(api, sha256(image), len(image), SBOM)
    assert referrers(api, sha256(image), name="other/repo")["manifests"] == []
    assert referrers(api, sha256(b"nothing refers to this"))["manifests"] == []


def test_a_bad_referrers_digest_is_digest_invalid(api: Api) -> None:
    reader = api.auth(Role.READER)
    for digest in ("sha256:nothex", "blake3:" + "0" * 64, "latest"):
        r = api.client.get(f"/v2/{NAME}/referrers/{digest}", headers=reader)
        assert r.status_code == 400, digest
        assert oci_error(r)["code"] == "DIGEST_INVALID"


def test_a_subject_with_a_bad_digest_is_manifest_invalid(api: Api) -> None:
    push_blob(api, NAME, b"{}")
    raw = image_manifest(
        descriptor(b"{}", EMPTY_CONFIG),
        [],
        artifactType=SBOM,
        subject={"mediaType": OCI_MANIFEST, "digest": "sha256:short", "size": 1},
    )
    r = put_manifest(api, NAME, "v1", raw)
    assert r.status_code == 400
    error = oci_error(r)
    assert error["code"] == "MANIFEST_INVALID" and "subject.digest" in error["message"]
