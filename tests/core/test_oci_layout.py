"""The image artifact of a tag: its OCI image layout, byte for byte, from the manifest."""

from __future__ import annotations

import hashlib
import json

import pytest

from registry.core.digest import BlobDigests, Digest, digest_bytes
from registry.core.errors import InvalidManifestError
from registry.core.manifest import parse_manifest
from registry.core.oci_layout import (
    ImageDescriptor,
    ImageLayout,
    build_image_layout,
    tag_problem,
)
from tests.support.content import file_entry

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
TOP = b'{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json"}'
CONFIG = b"config"
LAYER = b"layer"


def descriptor(raw: bytes, media_type: str = OCI_MANIFEST) -> ImageDescriptor:
    return ImageDescriptor(media_type, digest_bytes(raw).sha256, len(raw))


def blobs(*contents: bytes) -> list[BlobDigests]:
    return [digest_bytes(c) for c in contents]


def layout(tag: str = "v1") -> ImageLayout:
    return build_image_layout("library/app", tag, descriptor(TOP), blobs(TOP, CONFIG, LAYER))


def test_golden_bytes() -> None:
    built = layout()
    assert built.files["oci-layout"] == b'{"imageLayoutVersion":"1.0.0"}'
    assert hashlib.sha256(built.files["oci-layout"]).hexdigest() == (
        "18f0797eab35a4597c1e9624aa4f15fd91f6254e5538c1e0d193b2a95dd4acc6"
    )
    assert built.files["index.json"] == (
        b'{"manifests":[{"annotations":{"org.opencontainers.image.ref.name":"v1"},'
        b'"digest":"sha256:b22c7289dd3b4785a3795c90e15d16bd66bd29b444b8974fe29ed0443ce50405",'
        b'"mediaType":"application/vnd.oci.image.manifest.v1+json","size":76}],'
        b'"mediaType":"application/vnd.oci.image.index.v1+json","schemaVersion":2}'
    )
    top_hex = hashlib.sha256(TOP).hexdigest()
    files = {f"blobs/sha256/{hashlib.sha256(c).hexdigest()}": c for c in (TOP, CONFIG, LAYER)}
    files |= built.files
    assert json.loads(built.manifest_bytes) == {
        "schema": "reliquary.manifest.v1",
        "kind": "image",
        "name": "library/app",
        "version": "v1",
        "files": [file_entry(path, files[path]) for path in sorted(files)],
        "runtime": {
            "engine": "oci-image",
            "manifest": f"sha256:{top_hex}",
            "media_type": OCI_MANIFEST,
        },
    }
    # the artifact digest itself is pinned: any change to the layout is a new artifact
    assert str(digest_bytes(built.manifest_bytes).blake3) == (
        "blake3:f0ba3098c4183b0c156e7ba4d6865f31d32412271976e8d943f2425a0a144ce9"
    )


def test_manifest_bytes_are_a_valid_canonical_manifest() -> None:
    built = layout()
    parsed = parse_manifest(built.manifest_bytes)  # refuses non-canonical bytes
    assert parsed.manifest == built.manifest
    paths = [f.path for f in built.manifest.files]
    assert paths == sorted(paths)
    assert paths[-2:] == ["index.json", "oci-layout"]


def test_same_inputs_give_the_same_bytes_whatever_their_order_or_repeats() -> None:
    first = layout()
    shuffled = build_image_layout(
        "library/app", "v1", descriptor(TOP), blobs(LAYER, TOP, CONFIG, LAYER, TOP)
    )
    assert shuffled.manifest_bytes == first.manifest_bytes
    assert shuffled.files == first.files
    assert len(shuffled.manifest.files) == 5  # three blobs, each once, and the two files


def test_another_tag_is_another_artifact_of_the_same_blobs() -> None:
    v1, v2 = layout("v1"), layout("v2")
    assert v1.manifest_bytes != v2.manifest_bytes
    assert json.loads(v2.files["index.json"])["manifests"][0]["annotations"] == {
        "org.opencontainers.image.ref.name": "v2"
    }
    assert v2.manifest.version == "v2"
    blob_files = [f for f in v1.manifest.files if f.path.startswith("blobs/")]
    assert blob_files == [f for f in v2.manifest.files if f.path.startswith("blobs/")]


def test_an_index_holds_every_child_manifest_and_its_blobs_once() -> None:
    amd64 = b'{"manifest":"amd64"}'
    arm64 = b'{"manifest":"arm64"}'
    shared_layer, arm_layer = b"base layer", b"arm layer"
    index = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [
                {"mediaType": OCI_MANIFEST, "digest": str(digest_bytes(m).sha256), "size": len(m)}
                for m in (amd64, arm64)
            ],
        }
    ).encode()
    every = (index, amd64, CONFIG, shared_layer, arm64, b"arm config", shared_layer, arm_layer)
    built = build_image_layout("library/app", "1.0", descriptor(index, OCI_INDEX), blobs(*every))
    paths = {f.path for f in built.manifest.files}
    assert paths == {f"blobs/sha256/{hashlib.sha256(c).hexdigest()}" for c in every} | {
        "index.json",
        "oci-layout",
    }
    assert len(built.manifest.files) == 9  # seven distinct blobs and the two files
    assert built.manifest.runtime == {
        "engine": "oci-image",
        "manifest": str(digest_bytes(index).sha256),
        "media_type": OCI_INDEX,
    }
    top = json.loads(built.files["index.json"])["manifests"][0]
    assert top["mediaType"] == OCI_INDEX
    assert top["size"] == len(index)


@pytest.mark.parametrize("tag", ["v1", "latest", "1.0", "V1_2-rc.3", "0" * 128, "a"])
def test_every_oci_tag_not_starting_with_underscore_is_a_version(tag: str) -> None:
    assert tag_problem(tag) is None
    assert layout(tag).manifest.version == tag


@pytest.mark.parametrize("tag", ["_", "_v1", "__latest"])
def test_a_tag_starting_with_underscore_is_refused_naming_the_rule(tag: str) -> None:
    problem = tag_problem(tag)
    assert problem is not None
    assert repr(tag) in problem
    assert "[A-Za-z0-9][A-Za-z0-9._+-]{0,127}" in problem
    assert "starts with a letter or digit" in problem  # what to do instead
    with pytest.raises(InvalidManifestError) as caught:
        layout(tag)
    assert caught.value.problems == [problem]


def test_the_layout_must_hold_the_tagged_manifest() -> None:
    with pytest.raises(ValueError, match="must hold the tagged manifest"):
        build_image_layout("library/app", "v1", descriptor(TOP), blobs(CONFIG, LAYER))
    wrong_size = ImageDescriptor(OCI_MANIFEST, digest_bytes(TOP).sha256, len(TOP) + 1)
    with pytest.raises(ValueError, match="must hold the tagged manifest"):
        build_image_layout("library/app", "v1", wrong_size, blobs(TOP))


def test_a_descriptor_names_its_manifest_by_sha256() -> None:
    with pytest.raises(ValueError, match="by sha256"):
        ImageDescriptor(OCI_MANIFEST, digest_bytes(TOP).blake3, len(TOP))
    with pytest.raises(ValueError, match="size"):
        ImageDescriptor(OCI_MANIFEST, Digest.sha256("0" * 64), -1)
    with pytest.raises(ValueError, match="media type"):
        ImageDescriptor("", Digest.sha256("0" * 64), 1)


def test_two_blobs_claiming_one_sha256_are_refused() -> None:
    real = digest_bytes(CONFIG)
    forged = BlobDigests(digest_bytes(LAYER).blake3, real.sha256, real.size_bytes)
    with pytest.raises(ValueError, match="two different blobs"):
        build_image_layout("library/app", "v1", descriptor(TOP), [*blobs(TOP), real, forged])


def test_a_name_that_is_no_artifact_name_is_refused() -> None:
    with pytest.raises(InvalidManifestError, match="name"):
        build_image_layout("Library/App", "v1", descriptor(TOP), blobs(TOP))
