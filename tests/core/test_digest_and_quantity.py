from __future__ import annotations

import hashlib

import blake3
import pytest

from registry.core.digest import Algorithm, Digest, DualHasher, digest_bytes
from registry.core.errors import InvalidDigestError, InvalidQuantityError
from registry.core.quantity import format_size, parse_duration, parse_size

HEX = "ab" * 32


def test_digest_round_trips_both_algorithms() -> None:
    for text in (f"blake3:{HEX}", f"sha256:{HEX}"):
        assert str(Digest.parse(text)) == text
    assert Digest.parse(f"sha256:{HEX}").algorithm is Algorithm.SHA256


@pytest.mark.parametrize(
    "text",
    [
        HEX,
        f"md5:{HEX}",
        f"blake3:{HEX.upper()}",
        f"blake3:{HEX[:-1]}",
        f"blake3:{HEX}0",
        "blake3:",
        f"blake3:{'g' * 64}",
        f"blake3:../{HEX[3:]}",
    ],
)
def test_malformed_digests_are_refused(text: str) -> None:
    with pytest.raises(InvalidDigestError):
        Digest.parse(text)


def test_dual_hasher_matches_reference_implementations() -> None:
    data = bytes(range(256)) * 5000
    hasher = DualHasher()
    for start in range(0, len(data), 7777):
        hasher.update_blake3(data[start : start + 7777])
        hasher.update_sha256(data[start : start + 7777])
    result = hasher.finish()
    assert result.blake3.hex == blake3.blake3(data).hexdigest()
    assert result.sha256.hex == hashlib.sha256(data).hexdigest()
    assert result.size_bytes == len(data)
    assert result == digest_bytes(data)
    assert result.matches(result.sha256) and result.matches(result.blake3)
    assert not result.matches(Digest.blake3(HEX))


def test_sizes_and_durations_with_units() -> None:
    assert parse_size("10GiB") == 10 * 2**30
    assert parse_size("4MB") == 4_000_000
    assert parse_size("1048576") == 2**20
    assert parse_duration("24h") == 86400
    assert parse_duration("500ms") == 0.5
    assert format_size(3 * 2**30) == "3.0 GiB"
    for bad in ("10 parsecs", "GiB", "-1MiB", ""):
        with pytest.raises(InvalidQuantityError):
            parse_size(bad)
    with pytest.raises(InvalidQuantityError):
        parse_duration("3 fortnights")
