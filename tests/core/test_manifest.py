from __future__ import annotations

import json
from typing import Any

import pytest

from registry.core.canonical import canonical_bytes
from registry.core.errors import InvalidJSONError, InvalidManifestError, NonCanonicalJSONError
from registry.core.manifest import Manifest, parse_manifest
from tests.support.content import manifest_dict

FILES = {"saved_model.pb": b"graph", "variables/variables.index": b"index"}


def valid(**fields: Any) -> dict[str, Any]:
    return manifest_dict("veid/trust-score", "v20261122_093000", FILES, **fields)


def test_valid_manifest_keeps_exact_bytes_and_digests() -> None:
    raw = canonical_bytes(valid(labels={"team": "veid"}, metrics={"r2": 0.91, "mae": 6.2}))
    parsed = parse_manifest(raw)
    assert parsed.raw == raw
    assert parsed.manifest.name == "veid/trust-score"
    assert [f.path for f in parsed.manifest.files] == sorted(FILES)
    assert parsed.manifest.canonical_bytes() == raw
    assert parsed.digests.size_bytes == len(raw)


def test_non_canonical_bytes_are_refused_with_the_expected_form() -> None:
    doc = valid()
    pretty = json.dumps(doc, indent=2).encode()
    with pytest.raises(NonCanonicalJSONError) as info:
        parse_manifest(pretty)
    assert info.value.expected == canonical_bytes(doc)


@pytest.mark.parametrize(
    "raw",
    [b"\xff\xfe", b"{", b'{"a":1,"a":2}', b'{"a":NaN}', b"[1] [2]"],
)
def test_invalid_json_is_refused(raw: bytes) -> None:
    with pytest.raises(InvalidJSONError):
        parse_manifest(raw)


def _problems(doc: dict[str, Any]) -> str:
    with pytest.raises(InvalidManifestError) as info:
        parse_manifest(canonical_bytes(doc))
    return str(info.value)


@pytest.mark.parametrize(
    ("path", "why"),
    [
        ("../etc/passwd", "'..'"),
        ("/abs/file", "absolute"),
        ("a/./b", "'.'"),
        ("a//b", "empty"),
        ("dir\\file", "backslash"),
        ("bad\nname", "control"),
    ],
)
def test_unsafe_paths_are_refused(path: str, why: str) -> None:
    doc = valid()
    doc["files"] = [{**doc["files"][0], "path": path}]
    assert why in _problems(doc)


def test_files_must_be_sorted_unique_and_not_collide() -> None:
    doc = valid()
    assert "sorted" in _problems({**doc, "files": list(reversed(doc["files"]))})
    assert "unique" in _problems({**doc, "files": [doc["files"][0], doc["files"][0]]})
    entry = doc["files"][0]
    collide = [{**entry, "path": "Model.pb"}, {**entry, "path": "model.pb"}]
    assert "case" in _problems({**doc, "files": collide})
    nested = [{**entry, "path": "a"}, {**entry, "path": "a/b"}]
    assert "both a file and a directory" in _problems({**doc, "files": nested})


@pytest.mark.parametrize(
    ("path", "rule"),
    [
        ("CON", "Windows device name"),
        ("con.txt", "Windows device name"),
        ("models/nul", "Windows device name"),
        ("Lpt9.tar.gz", "Windows device name"),
        ("com\u00b9", "Windows device name"),
        ("aux /x", "ends with a dot or a space"),
        ("a.", "ends with a dot or a space"),
        ("dir./file", "ends with a dot or a space"),
        ("file ", "ends with a dot or a space"),
        ("C:a", "Windows forbids"),
        ("a<b", "Windows forbids"),
        ('say"hi"', "Windows forbids"),
        ("a|b", "Windows forbids"),
        ("what?", "Windows forbids"),
        ("*.bin", "Windows forbids"),
        ("x" * 300, "at most 255 bytes"),
        ("d/" + "\u00e9" * 128, "at most 255 bytes"),  # 256 bytes in 128 characters
    ],
)
def test_paths_other_filesystems_cannot_hold_are_refused_naming_rule_and_path(
    path: str, rule: str
) -> None:
    doc = valid()
    doc["files"] = [{**doc["files"][0], "path": path}]
    why = _problems(doc)
    assert rule in why
    assert repr(path[:80]) in why


@pytest.mark.parametrize(
    "path",
    ["console.txt", "COM10", "a.b/c.d", ".hidden", "x" * 255, "\u00e9" * 127, "n\u00fcl/CONx"],
)
def test_portable_paths_are_accepted(path: str) -> None:
    doc = valid()
    doc["files"] = [{**doc["files"][0], "path": path}]
    parse_manifest(canonical_bytes(doc))


@pytest.mark.parametrize(
    ("paths", "names"),
    [
        (["A", "a/b"], "file 'A' and directory 'a'"),
        (["A/x", "a/y"], "directory 'A' and directory 'a'"),
        (["m/B", "m/b/c"], "file 'm/B' and directory 'm/b'"),
        (["Model.pb", "model.pb"], "file 'Model.pb' and file 'model.pb'"),
        (["e\u0301", "\u00e9"], "file 'e\u0301' and file '\u00e9'"),  # NFD and NFC
    ],
)
def test_names_equal_ignoring_case_or_normalization_collide(paths: list[str], names: str) -> None:
    doc = valid()
    doc["files"] = [{**doc["files"][0], "path": p} for p in paths]
    why = _problems(doc)
    assert "collide on case-insensitive filesystems" in why
    assert names in why
    assert all(repr(p) in why for p in paths)


def test_a_collision_under_many_files_is_reported_once() -> None:
    doc = valid()
    paths = ["A/1", "A/2", "a/3", "a/4"]
    doc["files"] = [{**doc["files"][0], "path": p} for p in paths]
    with pytest.raises(InvalidManifestError) as info:
        parse_manifest(canonical_bytes(doc))
    assert len(info.value.problems) == 1


@pytest.mark.parametrize(
    ("field", "value", "why"),
    [
        ("name", "Veid/Trust", "segment"),
        ("name", "veid//x", "segment"),
        ("version", "-v1", "version"),
        ("schema", "other.v2", "schema"),
        ("kind", "weights", "kind"),
        ("unknown", 1, "unknown"),
        ("reference", {"inputs": "md5:00"}, "reference.inputs"),
        ("parents", ["blake3:xyz"], "parents[0]"),
        ("labels", {"Bad Key": "x"}, "label key"),
    ],
)
def test_schema_violations_are_named(field: str, value: Any, why: str) -> None:
    assert why in _problems({**valid(), field: value})


def test_file_digest_and_size_rules() -> None:
    doc = valid()
    entry = doc["files"][0]
    assert "blake3" in _problems({**doc, "files": [{**entry, "blake3": "AB" * 32}]})
    assert "size" in _problems({**doc, "files": [{**entry, "size": -1}]})


def test_constructing_an_invalid_manifest_raises() -> None:
    with pytest.raises(InvalidManifestError):
        Manifest(schema="reliquary.manifest.v1", kind="model", name="UPPER", version="v1", files=())


def test_every_problem_is_listed_separately() -> None:
    doc = {**valid(), "name": "A", "version": "-", "schema": "x"}
    with pytest.raises(InvalidManifestError) as info:
        parse_manifest(canonical_bytes(doc))
    assert len(info.value.problems) == 3


# -- runtime.image: a model pins its runtime image by digest ------------------------------

IMAGE_HEX = "ab" * 32


def test_a_runtime_image_pinned_by_digest_is_accepted() -> None:
    pin = f"veid/runtime@sha256:{IMAGE_HEX}"
    raw = canonical_bytes(valid(runtime={"engine": "tensorflow-savedmodel", "image": pin}))
    manifest = parse_manifest(raw).manifest
    assert manifest.runtime_image is not None
    assert manifest.runtime_image.name == "veid/runtime"
    assert str(manifest.runtime_image.digest) == f"sha256:{IMAGE_HEX}"
    assert str(manifest.runtime_image) == pin
    assert parse_manifest(canonical_bytes(valid())).manifest.runtime_image is None


@pytest.mark.parametrize(
    ("image", "tag"),
    [
        ("veid/runtime:2.21", "2.21"),
        ("veid/runtime@latest", "latest"),
        ("ghcr.io/veid/runtime:v1", "v1"),
    ],
)
def test_a_runtime_image_by_tag_is_refused_saying_how_to_pin_the_digest(
    image: str, tag: str
) -> None:
    why = _problems(valid(runtime={"image": image}))
    assert f"names tag {tag!r}" in why
    name = image.rsplit(":" if ":" in image else "@", 1)[0]
    assert f"skopeo inspect --format '{{{{.Digest}}}}' docker://HOST/{name}:{tag}" in why
    assert f'runtime.image = "{name}@sha256:<that hex>"' in why


@pytest.mark.parametrize(
    ("image", "why"),
    [
        ("veid/runtime", "names no digest; pin the digest"),
        (
            f"veid/runtime:v1@sha256:{IMAGE_HEX}",
            f"keep only the digest: veid/runtime@sha256:{IMAGE_HEX}",
        ),
        (f"veid/runtime@blake3:{IMAGE_HEX}", "must be the image manifest's sha256"),
        (f"veid/runtime@sha256:{IMAGE_HEX.upper()}", "64 lowercase hex"),
        ("veid/runtime@sha256:abc", "64 lowercase hex"),
        (f"Veid/Runtime@sha256:{IMAGE_HEX}", "repository name 'Veid/Runtime' must be lowercase"),
        (f"veid//runtime@sha256:{IMAGE_HEX}", "repository name"),
        (f"{'a' * 256}@sha256:{IMAGE_HEX}", "at most 255"),
        (7, "runtime.image must be a string"),
    ],
)
def test_a_runtime_image_outside_the_pin_grammar_is_refused(image: Any, why: str) -> None:
    assert why in _problems(valid(runtime={"image": image}))
