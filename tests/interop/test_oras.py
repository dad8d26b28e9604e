"""The ORAS Python client (oras-py), as its users run it, against a live registry on
both deployments: it logs in with a Reliquary token as the password, pushes an artifact
whose ``subject`` is another manifest, and the registry lists it among that manifest's
referrers (OCI 1.1) without any tag schema fallback.

Both of oras-py's auth backends: ``token`` (its default: the Bearer token dance) and
``basic`` (the token as the Basic password on every request)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import httpx
import oras.client
import oras.oci
import pytest

from tests.support.interop import OCI_INDEX, OCI_MANIFEST, Registry

pytestmark = pytest.mark.slow

NAME = "interop/model"
SBOM_TYPE = "application/spdx+json"
# oras-py 0.2.43 keeps one bearer token per client and, on a 401, sends it again instead
# of asking /v2/token for the scope the challenge names. Its push starts with HEAD blob
# (challenge scope: pull): the token it gets there must already allow the push, which
# is why /v2/token grants a repository everything the role may do there
# (registry.domain.auth.scoped.grant_for).


@pytest.mark.parametrize("auth_backend", ["token", "basic"])
def test_oras_pushes_an_artifact_with_a_subject_that_the_referrers_list_names(
    registry: Registry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, auth_backend: str
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))  # oras writes the login to a docker config
    monkeypatch.chdir(tmp_path)  # oras pushes only files under the working directory
    config = str(tmp_path / "docker-config.json")
    Path("weights.bin").write_bytes(b"\x00\x01weights" * 1000)
    Path("sbom.spdx.json").write_text(json.dumps({"spdxVersion": "SPDX-2.3", "name": "m"}))

    client = oras.client.OrasClient(
        hostname=registry.host, insecure=True, auth_backend=auth_backend
    )
    client.login(
        username="any", password=registry.publisher, hostname=registry.host, config_path=config
    )
    base = client.push(
        target=f"{registry.host}/{NAME}:v1", files=["weights.bin"], config_path=config
    )
    assert base.status_code == 201, base.text
    subject_digest = base.headers["docker-content-digest"]
    subject = registry.manifest(NAME, subject_digest)
    assert subject.status_code == 200
    assert f"sha256:{hashlib.sha256(subject.content).hexdigest()}" == subject_digest

    sbom = client.push(
        target=f"{registry.host}/{NAME}:v1-sbom",
        files=[f"sbom.spdx.json:{SBOM_TYPE}"],
        subject=oras.oci.Subject(OCI_MANIFEST, subject_digest, len(subject.content)),
        manifest_annotations={"org.example.kind": "sbom"},
        config_path=config,
    )
    assert sbom.status_code == 201, sbom.text
    assert sbom.headers["oci-subject"] == subject_digest  # no referrers tag schema needed
    referrer_digest = sbom.headers["docker-content-digest"]
    referrer = registry.manifest(NAME, referrer_digest)
    assert referrer.status_code == 200
    pushed = json.loads(referrer.content)
    assert pushed["subject"]["digest"] == subject_digest
    artifact_type = pushed.get("artifactType") or pushed["config"]["mediaType"]

    url = f"{registry.process.url}/v2/{NAME}/referrers/{subject_digest}"
    auth = {"authorization": f"Bearer {registry.reader}"}
    listed = httpx.get(url, headers=auth, timeout=30)
    assert listed.status_code == 200
    assert listed.headers["content-type"] == OCI_INDEX
    index = listed.json()
    assert (index["schemaVersion"], index["mediaType"]) == (2, OCI_INDEX)
    assert index["manifests"] == [
        {
            "mediaType": OCI_MANIFEST,
            "digest": referrer_digest,
            "size": len(referrer.content),
            "artifactType": artifact_type,
            "annotations": {"org.example.kind": "sbom"},
        }
    ]
    kept = httpx.get(url, params={"artifactType": artifact_type}, headers=auth, timeout=30)
    assert kept.headers["oci-filters-applied"] == "artifactType"
    assert kept.json()["manifests"] == index["manifests"]
    other = httpx.get(url, params={"artifactType": "application/x-other"}, headers=auth, timeout=30)
    assert other.status_code == 200
    assert other.json()["manifests"] == []
    nothing = httpx.get(
        f"{registry.process.url}/v2/{NAME}/referrers/{referrer_digest}", headers=auth, timeout=30
    )
    assert nothing.status_code == 200  # a digest nothing refers to: an empty index, no 404
    assert nothing.json()["manifests"] == []

    out = tmp_path / "pulled"
    files = client.pull(target=f"{registry.host}/{NAME}:v1-sbom", outdir=str(out))
    assert [Path(f).read_bytes() for f in files] == [Path("sbom.spdx.json").read_bytes()]
