"""A registry's numbers are parsed like the registry parses ours: ASCII digits, bounded.

A lying or broken server answering ``Upload-Offset: ²`` or ``Retry-After: ²``
(``str.isdigit()`` accepts superscripts, ``int()`` and ``float()`` do not) gets a clear
error or the client's own backoff, never a ``ValueError`` traceback.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from clients.client import RegistryClient
from clients.errors import ReliquaryError
from tests.support.content import digests
from tests.support.fake_registry import Answer, fake_registry

SUPERSCRIPT_TWO = "\xb2"  # sent as the Latin-1 byte 0xb2


@pytest.mark.parametrize("offset", [SUPERSCRIPT_TWO, "9" * 5000, "-1"])
def test_an_upload_offset_that_is_not_ascii_digits_is_a_clear_error(
    offset: str, tmp_path: Path
) -> None:
    path = tmp_path / "weights.bin"
    path.write_bytes(b"weights")
    script: dict[str, list[Answer]] = {
        "POST /v1/uploads": [(201, {"location": "/v1/uploads/u1"}, b"{}")],
        "PATCH /v1/uploads/u1": [(204, {"upload-offset": offset}, b"")],
    }
    with (
        fake_registry(script) as fake,
        RegistryClient(fake.url, "t", max_retries=0) as client,
        pytest.raises(ReliquaryError) as info,
    ):
        client.upload_resumable(digests(b"weights").blake3, path)
    assert "Upload-Offset" in str(info.value)


def test_a_retry_after_that_is_not_ascii_digits_keeps_the_clients_backoff() -> None:
    ok: Answer = (200, {"content-type": "application/json"}, b'{"digest": "blake3:x"}')
    script: dict[str, list[Answer]] = {
        "GET /v1/resolve": [(429, {"retry-after": SUPERSCRIPT_TWO}, b""), ok],
    }
    with (
        fake_registry(script) as fake,
        RegistryClient(fake.url, "t", max_retries=2, backoff_seconds=0.01) as client,
    ):
        assert client.resolve("acme/demo", "v1") == {"digest": "blake3:x"}
        assert fake.seen.count("GET /v1/resolve") == 2


DEEP = b"[" * 100_000 + b"]" * 100_000


@pytest.mark.parametrize(
    "body", [DEEP, b'{"digest":"blake3:x","digest":"blake3:y"}', b'{"n":' + b"9" * 5000 + b"}"]
)
def test_an_answer_that_is_not_strict_json_is_a_clear_error(body: bytes) -> None:
    """Too deep (RecursionError in a recursive parser), duplicate keys, huge numbers."""
    script: dict[str, list[Answer]] = {
        "GET /v1/resolve": [(200, {"content-type": "application/json"}, body)],
        "GET /v1/artifacts": [(500, {"content-type": "application/problem+json"}, body)],
    }
    with (
        fake_registry(script) as fake,
        RegistryClient(fake.url, "t", max_retries=0) as client,
    ):
        with pytest.raises(ReliquaryError) as answer:
            client.resolve("acme/demo", "v1")
        assert "without a JSON object" in str(answer.value)
        with pytest.raises(ReliquaryError) as failure:
            client.list_artifacts()
        assert failure.value.status == 500
