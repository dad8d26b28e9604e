"""Write a tiny container image as an OCI image layout, for the README's image tour.

    python examples/tiny_image.py /tmp/runtime --tag v1 [--greeting hello]

The layout (``oci-layout``, ``index.json``, ``blobs/sha256/...``) holds one image: a
config and one gzipped tar layer with ``/hello.txt``. Every byte is fixed by the
arguments (fixed mtimes, gzip without a timestamp), so the same arguments give the same
digest on every machine. ``skopeo copy oci:DIR:TAG docker://HOST/NAME:TAG`` pushes it.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import tarfile
from pathlib import Path

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def _descriptor(media_type: str, data: bytes) -> dict[str, object]:
    return {
        "mediaType": media_type,
        "digest": f"sha256:{hashlib.sha256(data).hexdigest()}",
        "size": len(data),
    }


def _layer(files: dict[str, bytes]) -> tuple[bytes, bytes]:
    """A tar of ``files`` with fixed metadata: (the tar, the same gzipped)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path, data in sorted(files.items()):
            info = tarfile.TarInfo(path)
            info.size, info.mtime, info.mode = len(data), 1_700_000_000, 0o644
            tar.addfile(info, io.BytesIO(data))
    raw = buf.getvalue()
    return raw, gzip.compress(raw, mtime=0)


def write_layout(out: Path, tag: str, greeting: str) -> str:
    """Write the layout under ``out``; the image manifest's digest."""
    tar, layer = _layer({"hello.txt": f"{greeting}\n".encode()})
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "created": "2026-01-01T00:00:00Z",
            "config": {"Cmd": ["/bin/cat", "/hello.txt"]},
            "rootfs": {"type": "layers", "diff_ids": [f"sha256:{hashlib.sha256(tar).hexdigest()}"]},
        },
        sort_keys=True,
    ).encode()
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": _descriptor("application/vnd.oci.image.config.v1+json", config),
            "layers": [_descriptor("application/vnd.oci.image.layer.v1.tar+gzip", layer)],
        },
        sort_keys=True,
    ).encode()
    blobs = out / "blobs" / "sha256"
    blobs.mkdir(parents=True, exist_ok=True)
    for data in (config, layer, manifest):
        (blobs / hashlib.sha256(data).hexdigest()).write_bytes(data)
    top = _descriptor(OCI_MANIFEST, manifest)
    top["annotations"] = {"org.opencontainers.image.ref.name": tag}
    index = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [top],
    }
    (out / "index.json").write_text(json.dumps(index, sort_keys=True))
    (out / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    return str(top["digest"])


def main() -> None:
    parser = argparse.ArgumentParser(
        description="Write a tiny container image as an OCI image layout."
    )
    parser.add_argument("out", type=Path, help="the layout directory (created)")
    parser.add_argument("--tag", default="v1")
    parser.add_argument("--greeting", default="hello from a pinned runtime image")
    args = parser.parse_args()
    digest = write_layout(args.out, args.tag, args.greeting)
    print(f"{args.out}: tag {args.tag}, manifest {digest}")


if __name__ == "__main__":
    main()
