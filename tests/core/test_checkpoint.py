"""Signed checkpoints, byte for byte what Go's sumdb ``note`` and ``tlog`` packages produce.

Journey: the registry signs the log head; `reliquary audit verify` opens it with the pinned
verifier key and refuses anything it cannot verify.
"""

from __future__ import annotations

import base64

import pytest

from registry.core.checkpoint import (
    Checkpoint,
    InvalidCheckpointError,
    NoteSigner,
    NoteVerifier,
    open_checkpoint,
    open_note,
)
from registry.core.merkle import EMPTY_ROOT, leaf_hash

# golang.org/x/mod/sumdb/note/note_test.go
PETER_SKEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
PETER_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
ENOCH_VKEY = "EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop"
GO_TEXT = (
    b"If you think cryptography is the answer to your problem,\n"
    b"then you don't know what your problem is.\n"
)
PETER_SIG = (
    "\u2014 PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqf"
    "qdngotpRZb6KE6RyyBwJnAM=\n"
).encode()
ENOCH_SIG = (
    "\u2014 EnochRoot rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG01oOTGw"
    "nWLox33WWd1RvMc+QQ=\n"
).encode()

# golang.org/x/mod/sumdb/tlog/note_test.go: FormatTree(Tree{123456789012, RecordHash("hello world")})
GO_TREE = b"go.sum database tree\n123456789012\nTszzRgjTG6xce+z2AG31kAXYKBgQVtCSCE40HmuwBb0=\n"


def signer_from_go_private_key(skey: str) -> NoteSigner:
    """Decode Go's ``PRIVATE+KEY+<name>+<hash>+base64(0x01 || seed)`` into our signer."""
    private, key, name, hash_hex, key_b64 = skey.split("+", 4)
    assert (private, key) == ("PRIVATE", "KEY")
    raw = base64.b64decode(key_b64)
    assert raw[0] == 0x01 and len(raw) == 33
    signer = NoteSigner(name, raw[1:])
    assert signer.key_hash.hex() == hash_hex
    return signer


PETER = signer_from_go_private_key(PETER_SKEY)
ORIGIN = "reliquary.example/log"
SIGNER = NoteSigner(ORIGIN, bytes(range(32)))
CHECKPOINT = Checkpoint(ORIGIN, 7, leaf_hash(b"seven"))


# --- Known answers from Go. ------------------------------------------------------------------


def test_go_signer_key_decodes_to_the_go_verifier_key() -> None:
    assert PETER.verifier_key() == PETER_VKEY
    assert PETER.name == "PeterNeumann"
    assert PETER.key_hash == bytes.fromhex("c74f20a3")
    assert NoteVerifier.parse(PETER_VKEY) == PETER.verifier()


def test_go_sign_known_answer() -> None:
    assert PETER.sign_text(GO_TEXT) == GO_TEXT + b"\n" + PETER_SIG


def test_go_open_known_answers() -> None:
    peter, enoch = NoteVerifier.parse(PETER_VKEY), NoteVerifier.parse(ENOCH_VKEY)
    both = GO_TEXT + b"\n" + PETER_SIG + ENOCH_SIG
    assert open_note(both, peter) == GO_TEXT  # Enoch's line is an unknown key: ignored
    assert open_note(both, enoch) == GO_TEXT
    tampered = GO_TEXT + b"\n" + PETER_SIG[:60] + b"ABCD" + PETER_SIG[60:]
    with pytest.raises(InvalidCheckpointError, match="does not verify"):
        open_note(tampered, peter)
    with pytest.raises(InvalidCheckpointError, match="no signature from"):
        open_note(GO_TEXT + b"\n" + ENOCH_SIG, peter)


@pytest.mark.parametrize(
    "note",
    [
        GO_TEXT,
        GO_TEXT + b"\n",
        GO_TEXT + b"\n" + PETER_SIG[:-1],
        b"\x01" + GO_TEXT + b"\n" + PETER_SIG,
        b"\xff" + GO_TEXT + b"\n" + PETER_SIG,
        GO_TEXT + b"\n" + "\u2014 Bad Name ".encode() + PETER_SIG.split(b" ")[-1],
        GO_TEXT + b"\n" + PETER_SIG + b"Unexpected line.\n",
        GO_TEXT + b"\n" + PETER_SIG * 101,
    ],
)
def test_go_malformed_notes_are_refused(note: bytes) -> None:
    with pytest.raises(InvalidCheckpointError):
        open_note(note, NoteVerifier.parse(PETER_VKEY))


def test_go_verifier_key_manglings_are_refused() -> None:
    # note_test.go TestNewVerifier: every proper substring and every one-byte change fails.
    for i in range(len(PETER_VKEY) + 1):
        for j in range(i + 1, len(PETER_VKEY) + 1):
            if (i, j) != (0, len(PETER_VKEY)):
                with pytest.raises(InvalidCheckpointError):
                    NoteVerifier.parse(PETER_VKEY[i:j])
    for i, ch in enumerate(PETER_VKEY):
        with pytest.raises(InvalidCheckpointError):
            NoteVerifier.parse(PETER_VKEY[:i] + chr(ord(ch) + 1) + PETER_VKEY[i + 1 :])
    for bad in [
        "PeterNeumann+cc469956+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TWBADKEY==",
        "PeterNeumann+173116ae+ZRpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
    ]:
        with pytest.raises(InvalidCheckpointError):
            NoteVerifier.parse(bad)


def test_go_tlog_tree_body_known_answer() -> None:
    checkpoint = Checkpoint("go.sum database tree", 123456789012, leaf_hash(b"hello world"))
    assert checkpoint.body() == GO_TREE
    assert Checkpoint.from_body(GO_TREE) == checkpoint


# --- Our checkpoints. ------------------------------------------------------------------------


def test_body_is_exact() -> None:
    assert Checkpoint("example.com/log", 0, EMPTY_ROOT).body() == (
        b"example.com/log\n0\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n"
    )


def test_sign_then_open_round_trip() -> None:
    note = SIGNER.sign(CHECKPOINT)
    body, signature_line = note.split(b"\n\n")
    assert body + b"\n" == CHECKPOINT.body()
    prefix = f"\u2014 {ORIGIN} ".encode()
    assert signature_line.startswith(prefix) and signature_line.endswith(b"\n")
    raw = base64.b64decode(signature_line[len(prefix) : -1], validate=True)
    assert raw[:4] == SIGNER.key_hash and len(raw) == 4 + 64
    opened = open_checkpoint(note, NoteVerifier.parse(SIGNER.verifier_key()))
    assert opened == CHECKPOINT


def test_verifier_key_format() -> None:
    key = SIGNER.verifier_key()
    name, key_hash, key_b64 = key.split("+", 2)
    assert name == ORIGIN
    assert key_hash == SIGNER.key_hash.hex() and len(key_hash) == 8
    assert base64.b64decode(key_b64) == b"\x01" + SIGNER.public_raw
    assert NoteVerifier.parse(key).verifier_key() == key


def test_tampered_body_is_refused() -> None:
    note = SIGNER.sign(CHECKPOINT)
    forged = note.replace(b"\n7\n", b"\n8\n", 1)
    assert forged != note
    with pytest.raises(InvalidCheckpointError, match="does not verify"):
        open_checkpoint(forged, SIGNER.verifier())


def test_wrong_key_or_name_is_refused() -> None:
    note = SIGNER.sign(CHECKPOINT)
    other_key = NoteSigner(ORIGIN, bytes(32)).verifier()
    with pytest.raises(InvalidCheckpointError, match="no signature from"):
        open_checkpoint(note, other_key)
    other_name = NoteSigner("reliquary.example/other", bytes(range(32))).verifier()
    with pytest.raises(InvalidCheckpointError, match="no signature from"):
        open_checkpoint(note, other_name)


def test_missing_signature_is_refused() -> None:
    with pytest.raises(InvalidCheckpointError):
        open_checkpoint(CHECKPOINT.body(), SIGNER.verifier())
    with pytest.raises(InvalidCheckpointError):
        open_checkpoint(CHECKPOINT.body() + b"\n", SIGNER.verifier())


def test_unknown_signers_are_ignored_but_a_bad_own_signature_is_not() -> None:
    note = SIGNER.sign(CHECKPOINT)
    witness = NoteSigner("witness.example/w1", bytes([7]) * 32).sign(CHECKPOINT)
    witness_line = witness.split(b"\n\n")[1]
    # Same name as ours with another key ID: an unknown key, ignored.
    impostor = NoteSigner(ORIGIN, bytes([9]) * 32).sign(CHECKPOINT).split(b"\n\n")[1]
    for extra in (witness_line, impostor):
        assert open_checkpoint(note + extra, SIGNER.verifier()) == CHECKPOINT
        body, own_line = note.split(b"\n\n")
        extra_first = body + b"\n\n" + extra + own_line
        assert open_checkpoint(extra_first, SIGNER.verifier()) == CHECKPOINT
    with pytest.raises(InvalidCheckpointError, match="no signature from"):
        open_checkpoint(witness, SIGNER.verifier())
    # A second line that claims our key but does not verify poisons the note.
    prefix = f"\u2014 {ORIGIN} ".encode()
    raw = bytearray(base64.b64decode(note.split(b"\n\n")[1][len(prefix) :]))
    raw[-1] ^= 0x01
    forged_line = prefix + base64.b64encode(bytes(raw)) + b"\n"
    with pytest.raises(InvalidCheckpointError, match="does not verify"):
        open_checkpoint(note + forged_line, SIGNER.verifier())


def test_origin_is_not_compared_with_key_name() -> None:
    checkpoint = Checkpoint("some.other/origin", 1, leaf_hash(b"x"))
    assert open_checkpoint(SIGNER.sign(checkpoint), SIGNER.verifier()).origin == "some.other/origin"


def test_extension_lines_are_allowed_and_ignored() -> None:
    body = CHECKPOINT.body() + b"extension one\nextension two\n"
    assert Checkpoint.from_body(body) == CHECKPOINT
    assert open_checkpoint(SIGNER.sign_text(body), SIGNER.verifier()) == CHECKPOINT


ROOT_B64 = base64.b64encode(CHECKPOINT.root)


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"origin\n7\n",
        b"origin\n7\n" + ROOT_B64,  # no final newline
        b"\n7\n" + ROOT_B64 + b"\n",  # empty origin
        b"origin\n07\n" + ROOT_B64 + b"\n",  # leading zero
        b"origin\n+7\n" + ROOT_B64 + b"\n",
        b"origin\n-7\n" + ROOT_B64 + b"\n",
        b"origin\n 7\n" + ROOT_B64 + b"\n",
        b"origin\n7_0\n" + ROOT_B64 + b"\n",
        b"origin\n\xd9\xa7\n" + ROOT_B64 + b"\n",  # Arabic-Indic digit seven
        b"origin\n0xabcdef\n" + ROOT_B64 + b"\n",
        b"origin\n9223372036854775808\n" + ROOT_B64 + b"\n",  # 2**63
        b"origin\n" + b"9" * 5000 + b"\n" + ROOT_B64 + b"\n",  # past int()'s 4300 digits
        b"origin\n7\n" + ROOT_B64.rstrip(b"=") + b"\n",  # unpadded
        b"origin\n7\n" + base64.b64encode(bytes(31)) + b"\n",
        b"origin\n7\n" + base64.urlsafe_b64encode(b"\xff" * 32) + b"\n",
        b"origin\n7\nTszzRgjTG6xce+z2AG31kAXYKBgQVtCSCE40HmuwBTOOBIG=\n",
        b"origin\n7\nTszzRgjTG6xce+z2AG31kAXYKBgQVtCSCE40HmuwBb1=\n",  # non-canonical bits
        b"origin\n7\n" + ROOT_B64 + b"\n\n",  # empty extension line
        b"ori\tgin\n7\n" + ROOT_B64 + b"\n",
        b"\xffrigin\n7\n" + ROOT_B64 + b"\n",
    ],
)
def test_malformed_bodies_are_refused(body: bytes) -> None:
    with pytest.raises(InvalidCheckpointError):
        Checkpoint.from_body(body)


@pytest.mark.parametrize(
    ("origin", "size", "root"),
    [
        ("", 0, EMPTY_ROOT),
        ("a\nb", 0, EMPTY_ROOT),
        ("a", -1, EMPTY_ROOT),
        ("a", 2**63, EMPTY_ROOT),
        ("a", 0, EMPTY_ROOT[:31]),
        ("a\ud800", 0, EMPTY_ROOT),
    ],
)
def test_invalid_checkpoints_cannot_be_built(origin: str, size: int, root: bytes) -> None:
    with pytest.raises(ValueError):
        Checkpoint(origin, size, root)


@pytest.mark.parametrize("name", ["", "a+b", "a b", "a\u00a0b", "a\tb"])
def test_invalid_key_names_are_refused(name: str) -> None:
    with pytest.raises(InvalidCheckpointError):
        NoteSigner(name, bytes(32))


def test_seed_must_be_32_bytes() -> None:
    with pytest.raises(InvalidCheckpointError, match="32 bytes"):
        NoteSigner(ORIGIN, bytes(31))


def test_verifier_refuses_a_key_hash_that_does_not_match() -> None:
    with pytest.raises(InvalidCheckpointError, match="does not match"):
        NoteVerifier(SIGNER.name, b"\x00\x00\x00\x00", SIGNER.public_raw)
    with pytest.raises(InvalidCheckpointError, match="does not match"):
        NoteVerifier.parse(PETER_VKEY.replace("PeterNeumann", "PeterNeuman"))
