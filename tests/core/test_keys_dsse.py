"""Keys, DSSE envelopes and in-toto statements: the signing path of ARCHITECTURE §5.

A publisher signs a statement about a manifest; the registry and clients
verify it with ours, and with securesystemslib's independent DSSE code.
"""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
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
from registry.core.errors import (
    CoreError,
    InvalidEnvelopeError,
    InvalidKeyError,
    InvalidSignatureError,
    InvalidStatementError,
)
from registry.core.intoto import (
    APPROVAL,
    EVALUATION,
    PUBLISH,
    REPRODUCIBILITY,
    STATEMENT_TYPE,
    Statement,
    Subject,
    statement_for,
    validate_predicate,
)
from registry.core.keys import PublicKey, SigningKey, key_id
from tests.support.content import digests, manifest_bytes
from tests.support.trust import reproducibility

# RFC 8032 section 7.1, TEST 1: the key the DSSE project's test vectors sign with.
RFC8032_SEED = bytes.fromhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
RFC8032_PUBLIC = bytes.fromhex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")

MANIFEST = manifest_bytes("veid/trust-score", "v20261122_093000", {"saved_model.pb": b"graph"})


def _envelope_doc(envelope: Envelope) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(envelope.to_json())
    return doc


def _publish_statement() -> Statement:
    return statement_for(
        "veid/trust-score",
        "v20261122_093000",
        digests(MANIFEST),
        PUBLISH,
        {"publisher": "ci@veid", "source": {"repository": "git@x:veid", "commit": "abc123"}},
    )


# -- keys ---------------------------------------------------------------------


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


# -- DSSE ---------------------------------------------------------------------


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
    payload = _publish_statement().to_payload()
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
    assert Statement.from_payload(verified.payload) == _publish_statement()


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
    envelope = sign_envelope(_publish_statement().to_payload(), key)
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
    payload = _publish_statement().to_payload()
    theirs = sslib_dsse.Envelope(payload=payload, payload_type=PAYLOAD_TYPE, signatures={})
    theirs.sign(signer)
    wire = json.dumps(theirs.to_dict()).encode()
    envelope = Envelope.from_json(wire)
    verified = verify_envelope(envelope, {key.public.keyid: key.public})
    assert verified.payload == payload
    assert envelope.to_json() == sign_envelope(payload, key).to_json()
    assert theirs.pae() == pae(PAYLOAD_TYPE, payload)


# -- in-toto statements ---------------------------------------------------------


def test_statement_for_names_the_manifest() -> None:
    d = digests(MANIFEST)
    statement = _publish_statement()
    assert statement.subjects == (
        Subject("veid/trust-score@v20261122_093000", d.blake3.hex, d.sha256.hex),
    )
    assert statement.names(d.blake3.hex, d.sha256.hex)
    other = digests(MANIFEST + b" ")
    assert not statement.names(other.blake3.hex, d.sha256.hex)
    assert not statement.names(d.blake3.hex, other.sha256.hex)


def test_statement_round_trips_as_canonical_json() -> None:
    statement = _publish_statement()
    payload = statement.to_payload()
    doc = json.loads(payload)
    assert doc["_type"] == STATEMENT_TYPE
    assert set(doc) == {"_type", "subject", "predicateType", "predicate"}
    assert doc["subject"][0]["digest"] == {
        "blake3": statement.subjects[0].blake3,
        "sha256": statement.subjects[0].sha256,
    }
    assert payload == canonical_bytes(doc)
    assert Statement.from_payload(payload) == statement


def _statement_doc(**changes: Any) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(_publish_statement().to_payload())
    doc.update(changes)
    return doc


def _bad_statement(doc: object, match: str) -> None:
    with pytest.raises(InvalidStatementError, match=match):
        Statement.from_payload(json.dumps(doc).encode())


def test_subjects_must_carry_both_digests() -> None:
    subject = _statement_doc()["subject"][0]
    only_sha = dict(subject, digest={"sha256": subject["digest"]["sha256"]})
    _bad_statement(_statement_doc(subject=[only_sha]), "missing blake3")
    upper = dict(
        subject, digest=dict(subject["digest"], blake3=subject["digest"]["blake3"].upper())
    )
    _bad_statement(_statement_doc(subject=[upper]), "64 lowercase hex")
    _bad_statement(_statement_doc(subject=[]), "non-empty list")
    _bad_statement(_statement_doc(subject=[dict(subject, uri="x")]), "unknown field")
    _bad_statement(_statement_doc(subject=[dict(subject, name="no-version")]), "@<version>")
    _bad_statement(_statement_doc(subject=[dict(subject, name="Bad Name@v1")]), "segment")
    extra = dict(subject, digest=dict(subject["digest"], sha512="ab" * 64))
    parsed = Statement.from_payload(json.dumps(_statement_doc(subject=[extra])).encode())
    assert parsed == _publish_statement()


def test_statement_envelope_fields_are_checked() -> None:
    _bad_statement(_statement_doc(_type="https://in-toto.io/Statement/v0.1"), "_type")
    _bad_statement(
        _statement_doc(predicateType=PUBLISH.replace("v1", "v9")), "unknown predicateType"
    )
    _bad_statement(_statement_doc(predicate=[1]), "JSON object")
    _bad_statement(_statement_doc(extra=True), "unknown field")
    doc = _statement_doc()
    del doc["predicate"]
    _bad_statement(doc, "missing predicate")
    with pytest.raises(InvalidStatementError, match="strict JSON"):
        Statement.from_payload(b'{"_type":1,"_type":2}')


D = "blake3:" + "ab" * 32


@pytest.mark.parametrize(
    ("predicate_type", "predicate"),
    [
        (PUBLISH, {"publisher": "ci"}),
        (PUBLISH, {"publisher": "ci", "training_run": "run-7", "future_field": [1]}),
        (EVALUATION, {"metrics": {"r2": 0.91, "n": 1000}}),
        (EVALUATION, {"metrics": {"r2": 0.91}, "dataset": D, "thresholds": {"r2": ">=0.9"}}),
        (APPROVAL, {"channel": "production"}),
        (APPROVAL, {"channel": "canary-1.eu", "comment": "looks good"}),
        (REPRODUCIBILITY, reproducibility("ab" * 32, [D, D, D])),
        (REPRODUCIBILITY, reproducibility("ab" * 32, [D, D.replace("ab", "cd", 1)])),
    ],
)
def test_valid_predicates_are_accepted(predicate_type: str, predicate: dict[str, Any]) -> None:
    validate_predicate(predicate_type, predicate)
    statement = statement_for("a/b", "1", digests(b"m"), predicate_type, predicate)
    assert Statement.from_payload(statement.to_payload()) == statement


@pytest.mark.parametrize(
    ("predicate_type", "predicate", "match"),
    [
        (PUBLISH, {}, "'publisher' is required"),
        (PUBLISH, {"publisher": ""}, "non-empty string"),
        (PUBLISH, {"publisher": "ci", "source": {"repository": "r"}}, "'commit' is required"),
        (PUBLISH, {"publisher": "ci", "source": "git"}, "'source' must be an object"),
        (PUBLISH, {"publisher": "ci", "training_run": 7}, "'training_run'"),
        (EVALUATION, {"metrics": {}}, "non-empty object"),
        (EVALUATION, {"metrics": {"r2": "0.9"}}, "finite number"),
        (EVALUATION, {"metrics": {"ok": True}}, "finite number"),
        (EVALUATION, {"metrics": {"r2": float("nan")}}, "finite number"),
        (EVALUATION, {"metrics": {"r2": 1}, "dataset": "sha256:" + "ab" * 32}, "blake3"),
        (EVALUATION, {"metrics": {"r2": 1}, "dataset": "blake3:xyz"}, "dataset"),
        (EVALUATION, {"metrics": {"r2": 1}, "thresholds": {"r2": 0.9}}, "thresholds"),
        (APPROVAL, {}, "'channel'"),
        (APPROVAL, {"channel": "Prod"}, "'channel'"),
        (APPROVAL, {"channel": "prod/eu"}, "'channel'"),
        (APPROVAL, {"channel": "prod", "comment": 1}, "'comment'"),
        (APPROVAL, {"channel": "prod", "expires": "2027-01-01"}, "unknown field"),
        (REPRODUCIBILITY, {"anything": {"goes": True}}, "'profile'"),
        (REPRODUCIBILITY, reproducibility("ab" * 32, [D, D], timings={"x": 2**64}), "canonical"),
        (REPRODUCIBILITY, reproducibility("ab" * 32, [D, D], runs=[]), "'runs'"),
        (REPRODUCIBILITY, reproducibility("ab" * 32, [D]), "at least 2 runs"),
        (REPRODUCIBILITY, reproducibility("ab" * 32, [D, D], agree=False), "contradicts"),
        (REPRODUCIBILITY, reproducibility("AB" * 32, [D, D]), "'worker'"),
        (REPRODUCIBILITY, reproducibility("ab" * 32, [D, D], output=D[:-1] + "0"), "first run"),
        (REPRODUCIBILITY, reproducibility("ab" * 32, ["sha256:" + "ab" * 32] * 2), "blake3"),
        (
            REPRODUCIBILITY,
            reproducibility(
                "ab" * 32, [D, D], values={"y": {"dtype": "float32", "shape": [1], "values": ["x"]}}
            ),
            "values of the dtype",
        ),
        ("https://reliquary.dev/attestation/unknown/v1", {}, "unknown predicateType"),
    ],
)
def test_invalid_predicates_are_refused(
    predicate_type: str, predicate: dict[str, Any], match: str
) -> None:
    with pytest.raises(InvalidStatementError, match=match):
        validate_predicate(predicate_type, predicate)
    with pytest.raises(InvalidStatementError, match=match):
        statement_for("a/b", "1", digests(b"m"), predicate_type, predicate)
