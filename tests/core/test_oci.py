"""``registry.core.oci``: what a manifest PUT to ``/v2`` may be, checked without I/O."""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

import pytest

from registry.core.errors import InvalidDigestError, InvalidJSONError, InvalidOciManifestError
from registry.core.oci import (
    DOCKER_LIST,
    DOCKER_MANIFEST,
    OCI_INDEX,
    OCI_MANIFEST,
    media_type_of,
    parse_oci_manifest,
    parse_sha256,
)

CONFIG = b'{"architecture":"amd64","os":"linux"}'
LAYER = b"layer bytes"


def desc(data: bytes, media_type: str, **fields: Any) -> dict[str, Any]:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    return {"mediaType": media_type, "digest": digest, "size": len(data), **fields}


def image(**fields: Any) -> dict[str, Any]:
    return {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": desc(CONFIG, "application/vnd.oci.image.config.v1+json"),
        "layers": [desc(LAYER, "application/vnd.oci.image.layer.v1.tar+gzip")],
        **fields,
    }


def raw(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc, indent=1).encode()


def refused(doc: dict[str, Any] | bytes, content_type: str | None = OCI_MANIFEST) -> str:
    with pytest.raises(InvalidOciManifestError) as info:
        parse_oci_manifest(doc if isinstance(doc, bytes) else raw(doc), content_type)
    return str(info.value)


def test_an_image_manifest_keeps_its_bytes_digest_and_parts() -> None:
    data = raw(image(annotations={"org.opencontainers.image.created": "2026-11-30"}, extra=1))
    parsed = parse_oci_manifest(data, OCI_MANIFEST)
    assert parsed.digest.hex == hashlib.sha256(data).hexdigest()
    assert parsed.digests.size_bytes == len(data)
    assert parsed.media_type == OCI_MANIFEST and not parsed.is_index
    assert [d.size_bytes for d in parsed.blobs] == [len(CONFIG), len(LAYER)]
    assert parsed.manifests == ()
    assert parsed.subject is None
    assert parsed.artifact_type == "application/vnd.oci.image.config.v1+json"  # config's
    assert dict(parsed.annotations) == {"org.opencontainers.image.created": "2026-11-30"}


def test_artifact_type_and_subject() -> None:
    subject = desc(b"subject", OCI_MANIFEST)
    parsed = parse_oci_manifest(
        raw(image(artifactType="application/vnd.example.sbom", subject=subject)), None
    )
    assert parsed.artifact_type == "application/vnd.example.sbom"
    assert parsed.subject is not None and str(parsed.subject.digest) == subject["digest"]


@pytest.mark.parametrize(
    ("index_type", "child_type"), [(OCI_INDEX, OCI_MANIFEST), (DOCKER_LIST, DOCKER_MANIFEST)]
)
def test_an_index_names_its_children(index_type: str, child_type: str) -> None:
    child = desc(b"child", child_type, platform={"os": "linux", "architecture": "arm64"})
    doc = {"schemaVersion": 2, "mediaType": index_type, "manifests": [child]}
    parsed = parse_oci_manifest(raw(doc), index_type)
    assert parsed.is_index and parsed.blobs == ()
    assert [str(d.digest) for d in parsed.manifests] == [child["digest"]]
    assert parsed.artifact_type is None


def test_the_content_type_decides_when_the_body_has_no_media_type() -> None:
    doc = image()
    del doc["mediaType"]
    assert parse_oci_manifest(raw(doc), DOCKER_MANIFEST).media_type == DOCKER_MANIFEST
    assert (
        parse_oci_manifest(raw(doc), "Application/VND.oci.image.manifest.v1+json; x=y").media_type
        == OCI_MANIFEST
    )
    assert "no Content-Type" in refused(doc, None)
    assert "an index" in refused(doc, OCI_INDEX)


def test_content_type_and_media_type_must_agree() -> None:
    assert f"send Content-Type: {OCI_MANIFEST}" in refused(image(), DOCKER_MANIFEST)
    assert f"send Content-Type: {OCI_MANIFEST}" in refused(image(), "application/json")


@pytest.mark.parametrize(
    ("doc", "content_type"),
    [
        ({"schemaVersion": 1, "name": "a", "tag": "b", "fsLayers": []}, None),
        ({"schemaVersion": 1, "name": "a", "tag": "b", "fsLayers": []}, OCI_MANIFEST),
        (image(), "application/vnd.docker.distribution.manifest.v1+prettyjws"),
        (image(mediaType="application/vnd.docker.distribution.manifest.v1+json"), None),
    ],
)
def test_docker_schema_1_is_refused(doc: dict[str, Any], content_type: str | None) -> None:
    assert "schema 1" in refused(doc, content_type)


@pytest.mark.parametrize(
    ("change", "says"),
    [
        ({"schemaVersion": 3}, "schemaVersion"),
        ({"schemaVersion": True}, "schemaVersion"),
        ({"schemaVersion": "2"}, "schemaVersion"),
        ({"mediaType": "application/vnd.oci.artifact.manifest.v1+json"}, "accepted"),
        ({"mediaType": 7}, "mediaType"),
        ({"mediaType": ""}, "mediaType"),
        ({"config": None}, "config"),
        ({"layers": None}, "layers"),
        ({"layers": [7]}, "layers[0]"),
        ({"manifests": []}, "manifests"),
        ({"annotations": {"a": 1}}, "annotations"),
        ({"annotations": ["a"]}, "annotations"),
        ({"artifactType": "not a media type"}, "artifactType"),
        (
            {"subject": {"mediaType": OCI_MANIFEST, "digest": "sha256:00", "size": 1}},
            "subject.digest",
        ),
    ],
)
def test_malformed_manifests_are_refused(change: dict[str, Any], says: str) -> None:
    doc = image(**change)
    if "config" in change and change["config"] is None:
        del doc["config"]
    assert says in refused(doc)


def layer_refusal(**change: Any) -> str:
    layer = desc(LAYER, "application/vnd.oci.image.layer.v1.tar+gzip") | change
    return refused(image(layers=[layer]))


@pytest.mark.parametrize(
    ("change", "says"),
    [
        ({"digest": "sha512:" + "ab" * 64}, "sha256 only"),
        ({"digest": "blake3:" + "0" * 64}, "sha256 only"),
        ({"digest": "sha256:" + "A" * 64}, "64 lowercase hex"),
        ({"digest": "sha256"}, "not a digest"),
        ({"digest": 5}, "layers[0].digest"),
        ({"size": -1}, "layers[0].size"),
        ({"size": 1.0}, "layers[0].size"),
        ({"size": True}, "layers[0].size"),
        ({"size": 2**63}, "layers[0].size"),
        ({"mediaType": "tar"}, "layers[0].mediaType"),
        ({"urls": ["https://example.com/l.tar"]}, "foreign"),
        ({"platform": "linux"}, "platform"),
        ({"data": "not base64!"}, "base64"),
        ({"data": base64.b64encode(b"other").decode()}, "not the"),
    ],
)
def test_bad_descriptors_are_refused_by_field(change: dict[str, Any], says: str) -> None:
    message = layer_refusal(**change)
    assert says in message and "layers[0]" in message


def test_missing_descriptor_fields_are_named() -> None:
    for key in ("mediaType", "digest", "size"):
        layer = desc(LAYER, "application/vnd.oci.image.layer.v1.tar+gzip")
        del layer[key]
        assert f"layers[0]: descriptor has no {key}" in refused(image(layers=[layer]))


def test_embedded_data_of_the_described_bytes_is_accepted() -> None:
    layer = desc(LAYER, "application/vnd.oci.image.layer.v1.tar+gzip")
    layer["data"] = base64.b64encode(LAYER).decode()
    assert parse_oci_manifest(raw(image(layers=[layer])), OCI_MANIFEST).layers[0].size_bytes == len(
        LAYER
    )


def test_bad_json_is_invalid_json() -> None:
    for data in (b"{", b'{"a":1,"a":2}', b"\xff"):
        with pytest.raises(InvalidJSONError):
            parse_oci_manifest(data, OCI_MANIFEST)
    assert "JSON object" in refused(b"[]")


def test_parse_sha256() -> None:
    hex_part = "0123456789abcdef" * 4
    assert str(parse_sha256(f"sha256:{hex_part}")) == f"sha256:{hex_part}"
    for text in ("sha256:totallywrong", "sha512:" + "0" * 128, "latest", "", "blake3:" + hex_part):
        with pytest.raises(InvalidDigestError):
            parse_sha256(text)


def test_media_type_of_drops_parameters() -> None:
    assert media_type_of(None) is None
    assert media_type_of("") is None
    assert media_type_of(f"{OCI_INDEX} ; charset=utf-8") == OCI_INDEX


def test_a_lone_surrogate_escape_is_refused() -> None:
    """JSON lets ``"\\ud800"`` through; it is no character, and a manifest holding one
    could be stored but never encoded again (referrers would fail for good)."""
    data = raw(image(annotations={"k": "SURROGATE"})).replace(b"SURROGATE", b"\\ud800")
    assert "lone UTF-16 surrogate" in refused(data)
    pair = raw(image(annotations={"k": "PAIR"})).replace(b"PAIR", b"\\ud83d\\ude00")
    assert dict(parse_oci_manifest(pair, OCI_MANIFEST).annotations) == {"k": "\U0001f600"}
