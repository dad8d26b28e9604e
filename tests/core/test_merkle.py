"""The log's Merkle tree against a textbook RFC 9162 §2.1 and the published RFC 6962 vectors.

A registry auditor (`reliquary audit verify`) holds an old checkpoint and a new one; these
tests are what lets it believe a proof means the log only grew.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Sequence
from functools import cache

import pytest

from registry.core.merkle import (
    EMPTY_ROOT,
    InvalidProofError,
    completed_nodes,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    node_hash,
    root,
    root_from_leaves,
    verify_consistency,
    verify_inclusion,
)

# --- A straightforward recursive RFC 9162 §2.1 reference, written from the spec. -------------


def _k(n: int) -> int:
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def ref_mth(d: Sequence[bytes]) -> bytes:
    """MTH(D[n]) over leaf hashes (§2.1.1)."""
    if not d:
        return hashlib.sha256(b"").digest()
    if len(d) == 1:
        return d[0]
    k = _k(len(d))
    return hashlib.sha256(b"\x01" + ref_mth(d[:k]) + ref_mth(d[k:])).digest()


def ref_path(m: int, d: Sequence[bytes]) -> list[bytes]:
    """PATH(m, D[n]) (§2.1.3.1)."""
    if len(d) == 1:
        return []
    k = _k(len(d))
    if m < k:
        return [*ref_path(m, d[:k]), ref_mth(d[k:])]
    return [*ref_path(m - k, d[k:]), ref_mth(d[:k])]


def ref_subproof(m: int, d: Sequence[bytes], b: bool) -> list[bytes]:
    """SUBPROOF(m, D[n], b) (§2.1.4.1)."""
    n = len(d)
    if m == n:
        return [] if b else [ref_mth(d)]
    k = _k(n)
    if m <= k:
        return [*ref_subproof(m, d[:k], b), ref_mth(d[k:])]
    return [*ref_subproof(m - k, d[k:], False), ref_mth(d[:k])]


def ref_shape(m: int, n: int) -> tuple[str, ...]:
    """Which side each PATH(m, D[n]) element sits on, leaf first: all verification sees."""
    if n == 1:
        return ()
    k = _k(n)
    return (*ref_shape(m, k), "R") if m < k else (*ref_shape(m - k, n - k), "L")


def ref_consistency_shape(m: int, n: int, b: bool = True) -> tuple[str, ...]:
    """The role of each SUBPROOF(m, D[n], b) element, innermost first."""
    if m == n:
        return ("old root",) if b else ("node",)
    k = _k(n)
    if m <= k:
        return (*ref_consistency_shape(m, k, b), "R")
    return (*ref_consistency_shape(m - k, n - k, False), "L")


# --- A node store the way the database keeps one: only perfect subtrees. ---------------------


class CountingStore:
    """Perfect-subtree nodes in a dict, filled by ``completed_nodes``; counts reads."""

    def __init__(self) -> None:
        self.nodes: dict[tuple[int, int], bytes] = {}
        self.reads = 0
        self.size = 0

    def get(self, level: int, index: int) -> bytes:
        self.reads += 1
        return self.nodes[(level, index)]

    def append(self, leaf: bytes) -> list[tuple[int, int, bytes]]:
        added = completed_nodes(self.size, leaf, self.get)
        for level, index, value in added:
            assert (level, index) not in self.nodes
            self.nodes[(level, index)] = value
        self.size += 1
        return added


def leaves(n: int) -> list[bytes]:
    return [leaf_hash(b"entry-%d" % i) for i in range(n)]


MAX = 70
LEAVES = leaves(MAX)


@pytest.fixture(scope="module")
def store() -> CountingStore:
    s = CountingStore()
    for leaf in LEAVES:
        s.append(leaf)
    return s


# --- Published vectors: RFC 6962 / Certificate Transparency / transparency-dev/merkle. -------

CT_ENTRIES = [
    bytes.fromhex(h)
    for h in ("", "00", "10", "2021", "3031", "40414243", "5051525354555657", "606162636465666768696a6b6c6d6e6f")
]  # fmt: skip
CT_EMPTY_ROOT = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
# Every perfect subtree of the 8-entry tree, [level][index] (transparency-dev/merkle
# testonly/constants.go NodeHashes).
CT_NODES = [
    [
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
        "0298d122906dcfc10892cb53a73992fc5b9f493ea4c9badb27b791b4127a7fe7",
        "07506a85fd9dd2f120eb694f86011e5bb4662e5c415a62917033d4a9624487e7",
        "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        "4271a26be0d8a84f0bd54c8c302e7cb3a3b5d1fa6780a40bcce2873477dab658",
        "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
        "46f6ffadd3d06a09ff3c5860d2755c8b9819db7df44251788c7d8e3180de8eb1",
    ],
    [
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
        "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
    ],
    [
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
    ],
    ["5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"],
]
# Root hash per tree size 0..8 (constants.go RootHashes).
CT_ROOTS = [
    CT_EMPTY_ROOT,
    CT_NODES[0][0],
    CT_NODES[1][0],
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    CT_NODES[2][0],
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    CT_NODES[3][0],
]
# Proofs from transparency-dev/merkle proof/verify_test.go (its leaf numbers are 1-based),
# each element written as the (level, index) of the published node it equals.
CT_INCLUSION = [
    (0, 8, [(0, 1), (1, 1), (2, 1)]),
    (5, 8, [(0, 4), (1, 3), (2, 0)]),
    (2, 3, [(1, 0)]),
    (1, 5, [(0, 0), (1, 1), (0, 4)]),
]
CT_CONSISTENCY = [
    (1, 8, [(0, 1), (1, 1), (2, 1)]),
    (6, 8, [(1, 2), (1, 3), (2, 0)]),
    (2, 5, [(1, 1), (0, 4)]),
    (6, 7, [(1, 2), (0, 6), (2, 0)]),
]


def _ct(path: list[tuple[int, int]]) -> list[str]:
    return [CT_NODES[level][index] for level, index in path]


@pytest.fixture(scope="module")
def ct_store() -> CountingStore:
    s = CountingStore()
    for entry in CT_ENTRIES:
        s.append(leaf_hash(entry))
    return s


def test_appends_store_exactly_the_published_nodes(ct_store: CountingStore) -> None:
    published = {
        (level, index): value
        for level, row in enumerate(CT_NODES)
        for index, value in enumerate(row)
    }
    assert {key: value.hex() for key, value in ct_store.nodes.items()} == published


def test_hashing_matches_rfc_6962_prefixes() -> None:
    assert EMPTY_ROOT.hex() == CT_ROOTS[0]
    assert leaf_hash(b"").hex() == CT_ROOTS[1]
    assert node_hash(leaf_hash(b""), leaf_hash(b"\x00")).hex() == CT_ROOTS[2]


def test_published_roots_for_every_size(ct_store: CountingStore) -> None:
    hashes = [leaf_hash(e) for e in CT_ENTRIES]
    for size, expected in enumerate(CT_ROOTS):
        assert root(size, ct_store.get).hex() == expected, size
        assert root_from_leaves(hashes[:size]).hex() == expected, size


@pytest.mark.parametrize(("index", "size", "path"), CT_INCLUSION)
def test_published_inclusion_proofs(
    ct_store: CountingStore, index: int, size: int, path: list[tuple[int, int]]
) -> None:
    proof = _ct(path)
    assert [p.hex() for p in inclusion_proof(index, size, ct_store.get)] == proof
    leaf, top = leaf_hash(CT_ENTRIES[index]), bytes.fromhex(CT_ROOTS[size])
    verify_inclusion(index, size, leaf, [bytes.fromhex(p) for p in proof], top)


@pytest.mark.parametrize(("old", "new", "path"), CT_CONSISTENCY)
def test_published_consistency_proofs(
    ct_store: CountingStore, old: int, new: int, path: list[tuple[int, int]]
) -> None:
    proof = _ct(path)
    assert [p.hex() for p in consistency_proof(old, new, ct_store.get)] == proof
    old_root, new_root = bytes.fromhex(CT_ROOTS[old]), bytes.fromhex(CT_ROOTS[new])
    verify_consistency(old, new, old_root, new_root, [bytes.fromhex(p) for p in proof])


# --- Agreement with the reference for every shape up to 70 leaves. --------------------------


def test_root_matches_reference_for_every_size(store: CountingStore) -> None:
    for size in range(MAX + 1):
        expected = ref_mth(LEAVES[:size])
        assert root(size, store.get) == expected, size
        assert root_from_leaves(LEAVES[:size]) == expected, size


def test_inclusion_proofs_match_reference_and_verify(store: CountingStore) -> None:
    for size in range(1, MAX + 1):
        top = ref_mth(LEAVES[:size])
        for index in range(size):
            proof = inclusion_proof(index, size, store.get)
            assert proof == ref_path(index, LEAVES[:size]), (index, size)
            verify_inclusion(index, size, LEAVES[index], proof, top)


def test_consistency_proofs_match_reference_and_verify(store: CountingStore) -> None:
    for new in range(1, MAX + 1):
        new_root = ref_mth(LEAVES[:new])
        for old in range(1, new + 1):
            proof = consistency_proof(old, new, store.get)
            assert proof == ref_subproof(old, LEAVES[:new], True), (old, new)
            verify_consistency(old, new, ref_mth(LEAVES[:old]), new_root, proof)


# --- Verification rejects every corruption. --------------------------------------------------


def _flips(proof: list[bytes]) -> list[list[bytes]]:
    out = []
    for i, element in enumerate(proof):
        for byte in (0, 31):
            damaged = bytearray(element)
            damaged[byte] ^= 0x01
            out.append([*proof[:i], bytes(damaged), *proof[i + 1 :]])
    return out


def _mangled_proofs(proof: list[bytes], extra: bytes) -> list[list[bytes]]:
    mangled = [*_flips(proof), [*proof, extra], [extra, *proof]]
    if proof:
        mangled += [proof[:-1], proof[1:], [*proof[:1], extra, *proof[1:]]]
    if len(proof) > 1:
        mangled.append([proof[1], proof[0], *proof[2:]])
    return mangled


def _accepts(verify: Callable[..., None], *args: object) -> bool:
    try:
        verify(*args)
    except InvalidProofError:
        return False
    return True


def test_inclusion_verification_rejects_any_corruption(store: CountingStore) -> None:
    other = leaf_hash(b"not in the log")
    for size in range(1, 34):
        top = root(size, store.get)
        for index in range(size):
            leaf, proof = LEAVES[index], inclusion_proof(index, size, store.get)
            for bad in _mangled_proofs(proof, top):
                with pytest.raises(InvalidProofError):
                    verify_inclusion(index, size, leaf, bad, top)
            for i in {index - 1, index + 1, index ^ 1, index ^ 2} - {index}:
                with pytest.raises(InvalidProofError):
                    verify_inclusion(i, size, leaf, proof, top)
            # A proof does not bind the tree size beyond its shape (the signed checkpoint
            # does): another size is refused exactly when the path has another shape.
            for s in {size - 1, size + 1, size * 2, size // 2} - {size}:
                same_shape = 0 <= index < s and ref_shape(index, s) == ref_shape(index, size)
                assert _accepts(verify_inclusion, index, s, leaf, proof, top) == same_shape
            for bad_leaf, bad_root in [(other, top), (leaf, other), (leaf, EMPTY_ROOT)]:
                with pytest.raises(InvalidProofError):
                    verify_inclusion(index, size, bad_leaf, proof, bad_root)


def test_consistency_verification_rejects_any_corruption(store: CountingStore) -> None:
    for new in range(2, 34):
        new_root = root(new, store.get)
        for old in range(1, new):
            old_root = root(old, store.get)
            proof = consistency_proof(old, new, store.get)
            for bad in [*_mangled_proofs(proof, old_root), [], [new_root, *proof]]:
                with pytest.raises(InvalidProofError):
                    verify_consistency(old, new, old_root, new_root, bad)
            shape = ref_consistency_shape(old, new)
            wrong = {(o, new) for o in (old - 1, old + 1, old ^ 1, old ^ 2)}
            wrong |= {(old, n) for n in (new - 1, new + 1, new * 2)}
            for o, n in wrong - {(old, new)}:
                same_shape = 0 < o < n and ref_consistency_shape(o, n) == shape
                assert _accepts(verify_consistency, o, n, old_root, new_root, proof) == same_shape
            rewritten = leaf_hash(b"history rewritten")
            for bad_old, bad_new in [
                (rewritten, new_root),
                (old_root, rewritten),
                (new_root, old_root),
            ]:
                with pytest.raises(InvalidProofError):
                    verify_consistency(old, new, bad_old, bad_new, proof)


def test_verification_edge_cases() -> None:
    a, b = leaf_hash(b"a"), leaf_hash(b"b")
    verify_inclusion(0, 1, a, [], a)
    verify_consistency(0, 5, EMPTY_ROOT, b, [])
    verify_consistency(3, 3, a, a, [])
    verify_consistency(0, 0, EMPTY_ROOT, EMPTY_ROOT, [])
    for index, size, leaf, top in [(0, 0, a, a), (1, 1, a, a), (-1, 1, a, a), (0, 1, a[:31], a)]:
        with pytest.raises(InvalidProofError):
            verify_inclusion(index, size, leaf, [], top)
    cases: list[tuple[int, int, bytes, bytes, list[bytes]]] = [
        (3, 3, a, b, []),  # same size, two roots: a fork
        (3, 3, a, a, [a]),
        (0, 5, a, b, []),  # size 0 has only the empty root
        (0, 5, EMPTY_ROOT, b, [a]),
        (5, 3, a, b, [a]),  # shrinking
        (-1, 3, a, b, []),
        (1, 2, a, b, []),
        (1, 2, a, b, [b[:16]]),
    ]
    for old, new, r1, r2, proof in cases:
        with pytest.raises(InvalidProofError):
            verify_consistency(old, new, r1, r2, proof)


def test_invalid_arguments_say_why(store: CountingStore) -> None:
    with pytest.raises(ValueError, match="not in a tree of size 3"):
        inclusion_proof(3, 3, store.get)
    with pytest.raises(ValueError, match="size must be >= 1"):
        inclusion_proof(0, 0, store.get)
    with pytest.raises(ValueError, match="must be >= 0"):
        root(-1, store.get)
    with pytest.raises(ValueError, match="empty tree"):
        consistency_proof(0, 5, store.get)
    with pytest.raises(ValueError, match="larger than new tree size"):
        consistency_proof(6, 5, store.get)
    with pytest.raises(ValueError, match="32-byte"):
        completed_nodes(0, b"short", store.get)
    with pytest.raises(ValueError, match=">= 0"):
        completed_nodes(-1, LEAVES[0], store.get)
    assert consistency_proof(5, 5, store.get) == []


# --- Storage behaviour: what appends write, how much proofs read. ----------------------------


def test_completed_nodes_builds_exactly_the_perfect_subtrees() -> None:
    s = CountingStore()
    hashes = leaves(100)
    for n, leaf in enumerate(hashes, start=1):
        added = s.append(leaf)
        assert added[0] == (0, n - 1, leaf)
        assert [level for level, _, _ in added] == list(range(len(added)))
        # After n appends the store holds every perfect subtree over [0, n), and nothing else.
        expected = {
            (level, index): ref_mth(hashes[index << level : (index + 1) << level])
            for level in range(n.bit_length())
            for index in range(n >> level)
        }
        assert s.nodes == expected, n


class UniformTree:
    """Node reader for a tree of any size whose leaves are all one hash: node (level, i) is
    computed in O(level), so a million-leaf tree costs nothing. Reads are counted, and a read
    of a node that is not yet complete in a tree of ``size`` leaves fails the test."""

    def __init__(self, size: int) -> None:
        self.size, self.reads = size, 0

    @staticmethod
    @cache
    def node(level: int, index: int) -> bytes:
        if level == 0:
            return leaf_hash(b"same entry")
        below = UniformTree.node(level - 1, 0)
        return node_hash(below, below)

    def get(self, level: int, index: int) -> bytes:
        assert (index + 1) << level <= self.size, f"read of incomplete node ({level}, {index})"
        self.reads += 1
        return self.node(level, index)


@pytest.mark.parametrize("size", [10**6, 2**20, 2**20 - 1, 2**20 + 1, 999_983])
def test_proofs_read_logarithmically_many_nodes(size: int) -> None:
    tree = UniformTree(size)
    bound = 2 * math.log2(size) + 2
    top = root(size, tree.get)
    assert tree.reads <= math.log2(size) + 1
    for index in [0, 1, size // 3, size // 2, size - 2, size - 1]:
        tree.reads = 0
        proof = inclusion_proof(index, size, tree.get)
        assert tree.reads <= bound, (index, tree.reads)
        verify_inclusion(index, size, tree.node(0, index), proof, top)
    for old in [1, 2, 3, size // 3, size // 2, 2**19, size - 1, size]:
        tree.reads = 0
        proof = consistency_proof(old, size, tree.get)
        assert tree.reads <= bound, (old, tree.reads)
        verify_consistency(old, size, root(old, UniformTree(old).get), top, proof)
