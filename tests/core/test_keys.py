"""Signing keys: Ed25519 only, keyid = sha256 of the raw public key (ARCHITECTURE §5)."""

from __future__ import annotations

import hashlib

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from registry.core.errors import CoreError, InvalidKeyError
from registry.core.keys import PublicKey, SigningKey, key_id
from tests.support.trust import RFC8032_PUBLIC, RFC8032_SEED


def test_keyid_is_the_sha256_of_the_raw_public_key() -> None:
    key = SigningKey.from_private_raw(RFC8032_SEED)
    assert key.public.raw == RFC8032_PUBLIC
    assert key.public.keyid == hashlib.sha256(RFC8032_PUBLIC).hexdigest() == key_id(RFC8032_PUBLIC)
    assert key.private_raw() == RFC8032_SEED


def test_keys_round_trip_through_pem_and_raw() -> None:
    key = SigningKey.generate()
    again = SigningKey.from_pem(key.to_pem())
    assert again.public == key.public
    assert again.private_raw() == key.private_raw()
    assert key.to_pem().startswith(b"-----BEGIN PRIVATE KEY-----")
    public_pem = key.public.to_pem()
    assert public_pem.startswith(b"-----BEGIN PUBLIC KEY-----")
    assert PublicKey.from_pem(public_pem) == key.public
    assert PublicKey.from_raw(key.public.raw) == key.public
    assert len(key.private_raw()) == 32
    assert SigningKey.generate().public != key.public


def test_encrypted_pkcs8_needs_its_password() -> None:
    private = Ed25519PrivateKey.generate()
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"hunter2"),
    )
    assert SigningKey.from_pem(
        pem, password=b"hunter2"
    ).public.raw == private.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    for password in (None, b"wrong"):
        with pytest.raises(InvalidKeyError):
            SigningKey.from_pem(pem, password=password)


def _rsa_and_ec_pems() -> list[tuple[bytes, bytes]]:
    out = []
    for private in (rsa.generate_private_key(65537, 2048), ec.generate_private_key(ec.SECP256R1())):
        private_pem = private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        public_pem = private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        out.append((private_pem, public_pem))
    return out


def test_non_ed25519_and_garbage_pems_are_refused() -> None:
    for private_pem, public_pem in _rsa_and_ec_pems():
        with pytest.raises(InvalidKeyError, match="only Ed25519"):
            SigningKey.from_pem(private_pem)
        with pytest.raises(InvalidKeyError, match="only Ed25519"):
            PublicKey.from_pem(public_pem)
    garbage = [b"", b"not a key", b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"]
    for pem in garbage:
        with pytest.raises(InvalidKeyError):
            PublicKey.from_pem(pem)
        with pytest.raises(InvalidKeyError):
            SigningKey.from_pem(pem)
    # a public PEM is not a private key, and the other way round
    key = SigningKey.generate()
    with pytest.raises(InvalidKeyError):
        SigningKey.from_pem(key.public.to_pem())
    with pytest.raises(InvalidKeyError):
        PublicKey.from_pem(key.to_pem())


def test_a_public_key_is_always_valid() -> None:
    raw = SigningKey.generate().public.raw
    with pytest.raises(InvalidKeyError, match="32 raw bytes"):
        PublicKey.from_raw(raw[:31])
    with pytest.raises(InvalidKeyError, match="keyid"):
        PublicKey(keyid=key_id(RFC8032_PUBLIC), raw=raw)
    with pytest.raises(InvalidKeyError):
        SigningKey.from_private_raw(RFC8032_SEED[:16])
    assert isinstance(InvalidKeyError("x"), CoreError)


def test_verify_answers_and_never_raises() -> None:
    key = SigningKey.generate()
    sig = key.sign(b"data")
    assert key.public.verify(sig, b"data")
    assert not key.public.verify(sig, b"other")
    assert not SigningKey.generate().public.verify(sig, b"data")
    assert not key.public.verify(sig[:-1], b"data")
    assert not key.public.verify(b"", b"data")
    assert not key.public.verify(bytes(64), b"data")
