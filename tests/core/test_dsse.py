"""DSSE envelopes: the signing path of ARCHITECTURE §5, checked against the spec's test
vectors and securesystemslib's independent DSSE code."""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from securesystemslib import dsse as sslib_dsse
from securesystemslib.exceptions import VerificationError
from securesystemslib.signer import CryptoSigner, SSlibKey

from registry.core.canonical import canonical_bytes
from registry.core.dsse import (
    PAYLOAD_TYPE,
    Envelope,
    Signature,
    pae,
    sign_envelope,
    verify_envelope,
)
from registry.core.errors import InvalidEnvelopeError, InvalidSignatureError
from registry.core.intoto import Statement
from registry.core.keys import PublicKey, SigningKey
from tests.support.trust import RFC8032_PUBLIC, RFC8032_SEED, example_statement


def _envelope_doc(envelope: Envelope) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(envelope.to_json())
    return doc


def test_pae_matches_the_dsse_spec_vector() -> None:
    # protocol.md, "Test Vectors"
    assert pae("http://example.com/HelloWorld", b"hello world") == (
        b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
    )
    assert pae(PAYLOAD_TYPE, b"") == b"DSSEv1 28 application/vnd.in-toto+json 0 "
    # LEN is the UTF-8 byte count (29), not the character count (28)
    assert pae("application/vnd.exämple+json", b"{}").startswith(b"DSSEv1 29 ")


# From the DSSE test vectors (testvectors/vectors.json), signed with the RFC 8032 key.
DSSE_VECTORS = [
    # single signature, standard base64
    (
        '{"payload":"eyJfdHlwZSI6Imh0dHBzOi8vaW4tdG90by5pby9TdGF0ZW1lbnQvdjEifQ==",'
        '"payloadType":"application/vnd.in-toto+json","signatures":[{"keyid":"A","sig":'
        '"2WAfaHm5jluo0w+0rk8uVkluELJYWjSmU9x7EUzx+AyteDGJ4/nqyJXfmAUVFIAoQafWm7AxBZNw5M9ixNHiCA=="}]}',
        b'{"_type":"https://in-toto.io/Statement/v1"}',
    ),
    # URL-safe base64, which verifiers must accept
    (
        '{"payload":"-_-_Pj8=","payloadType":"application/vnd.in-toto+json","signatures":'
        '[{"keyid":"A","sig":"P-_KHICeR7tI6S_YyejJTRtrXhcQyQ2LYPaL8h90KjC9qN8HU_svOQ6TuDOT1HIrsGW886DbWNWcCmX5twLrAw=="}]}',
        b"\xfb\xff\xbf>?",
    ),
]


@pytest.mark.parametrize(("envelope_json", "payload"), DSSE_VECTORS)
def test_dsse_spec_vectors_verify(envelope_json: str, payload: bytes) -> None:
    envelope = Envelope.from_json(envelope_json.encode())
    public = PublicKey.from_raw(RFC8032_PUBLIC)
    verified = verify_envelope(envelope, {"A": public})
    assert verified.payload == payload
    assert verified.keyids == frozenset({public.keyid})
    # Ed25519 is deterministic: we produce the very same signature
    ours = sign_envelope(payload, SigningKey.from_private_raw(RFC8032_SEED))
    assert ours.signatures[0].sig == envelope.signatures[0].sig


def test_sign_and_verify_round_trip_keeps_the_exact_bytes() -> None:
    key = SigningKey.generate()
    payload = example_statement().to_payload()
    envelope = sign_envelope(payload, key)
    assert envelope.raw is None
    wire = envelope.to_json()
    assert wire == canonical_bytes(_envelope_doc(envelope))
    parsed = Envelope.from_json(wire)
    assert parsed.raw == wire
    assert parsed.digest_sha256 == envelope.digest_sha256 == hashlib.sha256(wire).hexdigest()
    verified = verify_envelope(parsed, {key.public.keyid: key.public})
    assert verified.payload == payload
    assert verified.payload_type == PAYLOAD_TYPE
    assert verified.keyids == frozenset({key.public.keyid})
    assert Statement.from_payload(verified.payload) == example_statement()


def test_digest_is_of_the_bytes_received() -> None:
    envelope = sign_envelope(b"{}", SigningKey.generate())
    pretty = json.dumps(_envelope_doc(envelope), indent=2).encode()
    parsed = Envelope.from_json(pretty)
    assert parsed.digest_sha256 == hashlib.sha256(pretty).hexdigest()
    assert parsed.digest_sha256 != envelope.digest_sha256
    assert parsed.to_json() == envelope.to_json()


def test_tampered_payload_or_type_fails() -> None:
    key = SigningKey.generate()
    doc = _envelope_doc(sign_envelope(b'{"a":1}', key))
    trusted = {key.public.keyid: key.public}
    tampered = dict(doc, payload=base64.b64encode(b'{"a":2}').decode())
    with pytest.raises(InvalidSignatureError):
        verify_envelope(Envelope.from_json(json.dumps(tampered).encode()), trusted)
    swapped = dict(doc, payloadType="application/vnd.example.other+json")
    with pytest.raises(InvalidSignatureError):
        verify_envelope(Envelope.from_json(json.dumps(swapped).encode()), trusted)


def test_a_valid_signature_over_an_unsupported_type_is_refused() -> None:
    key = SigningKey.generate()
    envelope = sign_envelope(b"{}", key, payload_type="application/json")
    trusted = {key.public.keyid: key.public}
    with pytest.raises(InvalidEnvelopeError, match="not supported"):
        verify_envelope(envelope, trusted)
    assert verify_envelope(envelope, trusted, payload_types={"application/json"}).keyids


def test_wrong_and_unknown_keys_fail_and_name_the_keyids() -> None:
    signer, other = SigningKey.generate(), SigningKey.generate()
    envelope = sign_envelope(b"{}", signer)
    # the keyid is right but the key behind it is not the signer's
    with pytest.raises(InvalidSignatureError, match="not trusted: none"):
        verify_envelope(envelope, {signer.public.keyid: other.public})
    with pytest.raises(InvalidSignatureError) as info:
        verify_envelope(envelope, {other.public.keyid: other.public})
    assert signer.public.keyid in str(info.value)
    assert "not trusted: " + repr(signer.public.keyid) in str(info.value)
    with pytest.raises(InvalidSignatureError):
        verify_envelope(envelope, {})


def test_unknown_keyids_are_skipped_when_a_trusted_one_verifies() -> None:
    trusted_key, stranger = SigningKey.generate(), SigningKey.generate()
    payload = b'{"x":1}'
    mine = sign_envelope(payload, trusted_key).signatures[0]
    theirs = sign_envelope(payload, stranger).signatures[0]
    bogus = Signature(keyid=trusted_key.public.keyid, sig=bytes(64))
    envelope = Envelope(PAYLOAD_TYPE, payload, (theirs, bogus, mine))
    verified = verify_envelope(envelope, {trusted_key.public.keyid: trusted_key.public})
    assert verified.keyids == frozenset({trusted_key.public.keyid})
    both = {k.public.keyid: k.public for k in (trusted_key, stranger)}
    assert verify_envelope(envelope, both).keyids == frozenset(both)


def _refused(doc: object, match: str) -> None:
    with pytest.raises(InvalidEnvelopeError, match=match):
        Envelope.from_json(json.dumps(doc).encode())


def test_malformed_envelopes_are_refused_saying_why() -> None:
    doc = _envelope_doc(sign_envelope(b"{}", SigningKey.generate()))
    sig = doc["signatures"][0]
    _refused(dict(doc, signatures=[]), "non-empty list")
    _refused({k: v for k, v in doc.items() if k != "payload"}, "missing payload")
    _refused(dict(doc, extra=1), "unknown field.*'extra'")
    _refused(dict(doc, signatures=[dict(sig, extension={})]), "unknown field.*'extension'")
    _refused(dict(doc, signatures=[{"sig": sig["sig"]}]), "missing keyid")
    _refused(dict(doc, signatures=[dict(sig, keyid=7)]), "keyid must be a string")
    _refused(dict(doc, payloadType=None), "payloadType must be a string")
    _refused(dict(doc, payload="***"), "payload is not base64")
    _refused(dict(doc, signatures=[dict(sig, sig="ab+c-d==")]), "not both")
    _refused(dict(doc, payload="e3=="), "canonical")  # trailing bits set
    _refused(dict(doc, payload="e30=="), "padding")
    _refused(dict(doc, payload=123), "base64 string")
    _refused([doc], "JSON object")
    with pytest.raises(InvalidEnvelopeError, match="strict JSON"):
        Envelope.from_json(b'{"payload":"e30=","payload":"e30="}')
    with pytest.raises(InvalidEnvelopeError, match="no signatures"):
        Envelope(PAYLOAD_TYPE, b"{}", ())


def test_unpadded_and_url_safe_base64_are_accepted() -> None:
    key = SigningKey.generate()
    envelope = sign_envelope(b"\xfb\xff\xbf{}", key)
    sig = envelope.signatures[0].sig
    doc = {
        "payload": base64.urlsafe_b64encode(envelope.payload).decode().rstrip("="),
        "payloadType": PAYLOAD_TYPE,
        "signatures": [{"keyid": key.public.keyid, "sig": base64.b64encode(sig).decode()}],
    }
    parsed = Envelope.from_json(json.dumps(doc).encode())
    assert parsed.payload == envelope.payload
    assert verify_envelope(parsed, {key.public.keyid: key.public}).payload == envelope.payload


# -- interop with securesystemslib ---------------------------------------------


def _sslib_key(public: PublicKey) -> SSlibKey:
    crypto_key = serialization.load_pem_public_key(public.to_pem())
    return SSlibKey.from_crypto(crypto_key, keyid=public.keyid)


def test_our_envelope_verifies_with_securesystemslib() -> None:
    key = SigningKey.generate()
    envelope = sign_envelope(example_statement().to_payload(), key)
    theirs = sslib_dsse.Envelope.from_dict(json.loads(envelope.to_json()))
    accepted = theirs.verify([_sslib_key(key.public)], threshold=1)
    assert set(accepted) == {key.public.keyid}
    # and it really checks: a different key is rejected
    stranger = SigningKey.generate().public
    with pytest.raises(VerificationError):
        theirs.verify(
            [
                SSlibKey.from_crypto(
                    serialization.load_pem_public_key(stranger.to_pem()), keyid=key.public.keyid
                )
            ],
            threshold=1,
        )


def test_securesystemslib_envelope_verifies_with_ours() -> None:
    key = SigningKey.generate()
    private = serialization.load_pem_private_key(key.to_pem(), password=None)
    signer = CryptoSigner(private, _sslib_key(key.public))
    payload = example_statement().to_payload()
    theirs = sslib_dsse.Envelope(payload=payload, payload_type=PAYLOAD_TYPE, signatures={})
    theirs.sign(signer)
    wire = json.dumps(theirs.to_dict()).encode()
    envelope = Envelope.from_json(wire)
    verified = verify_envelope(envelope, {key.public.keyid: key.public})
    assert verified.payload == payload
    assert envelope.to_json() == sign_envelope(payload, key).to_json()
    assert theirs.pae() == pae(PAYLOAD_TYPE, payload)
