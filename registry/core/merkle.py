"""The transparency log's Merkle tree: RFC 9162 §2.1 (identical to RFC 6962) over SHA-256.

Invariants:
- ``leaf_hash(e) = SHA-256(0x00 || e)``, ``node_hash(l, r) = SHA-256(0x01 || l || r)`` and
  the empty tree's root is ``SHA-256("")``, so roots, inclusion proofs and consistency proofs
  match every other RFC 6962 implementation (Go's ``tlog``, Certificate Transparency).
- A tree of ``n`` leaves splits at ``k``, the largest power of two smaller than ``n``
  (never the midpoint).
- Storage holds only *perfect* subtrees: node ``(level, index)`` is the root of leaves
  ``[index * 2**level, (index + 1) * 2**level)``; level 0 holds the leaf hashes. Every other
  range hash is folded from the O(log n) perfect subtrees that tile it, so ``root``,
  ``inclusion_proof`` and ``consistency_proof`` read O(log n) nodes and never rehash leaves.
- Verification is pure arithmetic on the proof; it trusts nothing a server said and raises
  ``InvalidProofError`` (a ``CoreError``, hence a ``ValueError``) for every failure, including
  impossible sizes.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Sequence

from registry.core.errors import CoreError

HASH_SIZE = 32
EMPTY_ROOT: bytes = hashlib.sha256(b"").digest()

NodeReader = Callable[[int, int], bytes]
"""``(level, index) -> hash`` of a stored perfect subtree; it must exist."""


class InvalidProofError(CoreError):
    """An inclusion or consistency proof does not prove what it claims."""


def leaf_hash(entry: bytes) -> bytes:
    """``SHA-256(0x00 || entry)``: the hash of a log entry as a leaf."""
    return hashlib.sha256(b"\x00" + entry).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """``SHA-256(0x01 || left || right)``: an interior node."""
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two strictly smaller than ``n`` (``n >= 2``)."""
    return 1 << ((n - 1).bit_length() - 1)


def _is_power_of_two(n: int) -> bool:
    return n > 0 and n & (n - 1) == 0


def root_from_leaves(leaf_hashes: Sequence[bytes]) -> bytes:
    """MTH over all ``leaf_hashes`` in O(n) time: a reference for tests and small trees."""
    if not leaf_hashes:
        return EMPTY_ROOT
    # Fold each level pairwise; an odd last node is promoted unchanged, which yields exactly
    # the largest-power-of-two split of RFC 9162 §2.1.1.
    level = list(leaf_hashes)
    while len(level) > 1:
        paired = [node_hash(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            paired.append(level[-1])
        level = paired
    return level[0]


def completed_nodes(leaf_index: int, leaf: bytes, get: NodeReader) -> list[tuple[int, int, bytes]]:
    """The nodes that become complete when ``leaf`` is appended at ``leaf_index``.

    Returns ``(level, index, hash)`` triples, ``(0, leaf_index, leaf)`` first, then each parent
    the new leaf completes (one per trailing 1-bit of ``leaf_index``), reading each left sibling
    through ``get``. Store them all and every perfect subtree of the tree stays available.

    Raises:
        ValueError: ``leaf_index`` is negative or ``leaf`` is not a 32-byte hash.
    """
    if leaf_index < 0:
        raise ValueError(f"leaf_index must be >= 0, got {leaf_index}")
    if len(leaf) != HASH_SIZE:
        raise ValueError(f"leaf must be a {HASH_SIZE}-byte hash, got {len(leaf)} bytes")
    nodes = [(0, leaf_index, leaf)]
    level, index, current = 0, leaf_index, leaf
    while index & 1:
        current = node_hash(get(level, index - 1), current)
        level, index = level + 1, index >> 1
        nodes.append((level, index, current))
    return nodes


def _range_hash(start: int, end: int, get: NodeReader) -> bytes:
    """MTH of leaves ``[start, end)`` from the perfect subtrees tiling it, largest first.

    Only called on ranges the RFC recursion produces, where ``start`` is a multiple of the
    largest power of two not exceeding ``end - start``, so every tile is a stored node.
    """
    tiles: list[bytes] = []
    at = start
    remaining = end - start
    while remaining:
        level = remaining.bit_length() - 1
        width = 1 << level
        tiles.append(get(level, at >> level))
        at += width
        remaining -= width
    # MTH(D[a:b]) = H(perfect left part, MTH(rest)): fold right to left.
    current = tiles[-1]
    for tile in reversed(tiles[:-1]):
        current = node_hash(tile, current)
    return current


def root(size: int, get: NodeReader) -> bytes:
    """MTH of the first ``size`` leaves in at most ``log2(size) + 1`` reads.

    Raises:
        ValueError: ``size`` is negative.
    """
    if size < 0:
        raise ValueError(f"tree size must be >= 0, got {size}")
    if size == 0:
        return EMPTY_ROOT
    return _range_hash(0, size, get)


def inclusion_proof(index: int, size: int, get: NodeReader) -> list[bytes]:
    """PATH(index, D[size]) of RFC 9162 §2.1.3.1, leaf-side sibling first.

    Reads at most ``2 * log2(size) + 1`` nodes.

    Raises:
        ValueError: not ``0 <= index < size``.
    """
    if size <= 0:
        raise ValueError(f"tree size must be >= 1 for an inclusion proof, got {size}")
    if not 0 <= index < size:
        raise ValueError(f"leaf index {index} is not in a tree of size {size}")
    siblings: list[bytes] = []
    lo, hi = 0, size
    # Walk from the root down to the leaf; the RFC lists the siblings bottom-up.
    while hi - lo > 1:
        mid = lo + _split(hi - lo)
        if index < mid:
            siblings.append(_range_hash(mid, hi, get))
            hi = mid
        else:
            siblings.append(_range_hash(lo, mid, get))
            lo = mid
    siblings.reverse()
    return siblings


def consistency_proof(old_size: int, new_size: int, get: NodeReader) -> list[bytes]:
    """PROOF(old_size, D[new_size]) of RFC 9162 §2.1.4.1; ``[]`` when the sizes are equal.

    Reads at most ``2 * log2(new_size) + 2`` nodes.

    Raises:
        ValueError: ``old_size`` is 0 (the RFC defines no proof from the empty tree, which
            every tree extends), or ``old_size > new_size``.
    """
    if old_size <= 0:
        raise ValueError(
            f"old tree size must be >= 1 for a consistency proof, got {old_size}; "
            "every tree extends the empty tree, so there is nothing to prove"
        )
    if old_size > new_size:
        raise ValueError(
            f"old tree size {old_size} is larger than new tree size {new_size}; a log only grows"
        )
    nodes: list[bytes] = []
    lo, hi = 0, new_size
    known = True  # the RFC's b: is MTH(D[lo:old_size]) the old root the verifier holds?
    # SUBPROOF(m, D[n], b), unrolled from the outside in; the RFC lists it inside out.
    while True:
        if old_size == hi:
            if not known:
                nodes.append(_range_hash(lo, hi, get))
            break
        mid = lo + _split(hi - lo)
        if old_size <= mid:
            nodes.append(_range_hash(mid, hi, get))
            hi = mid
        else:
            nodes.append(_range_hash(lo, mid, get))
            lo = mid
            known = False
    nodes.reverse()
    return nodes


def _require_hash(what: str, value: bytes) -> None:
    if len(value) != HASH_SIZE:
        raise InvalidProofError(f"{what} must be a {HASH_SIZE}-byte hash, got {len(value)} bytes")


def verify_inclusion(
    index: int, size: int, leaf: bytes, proof: Sequence[bytes], root_hash: bytes
) -> None:
    """Check that ``leaf`` is leaf ``index`` of the tree of ``size`` leaves with ``root_hash``.

    Follows RFC 9162 §2.1.3.2 step by step.

    Raises:
        InvalidProofError: the proof does not verify, or the index, size or hashes are malformed.
    """
    _require_hash("leaf hash", leaf)
    _require_hash("root hash", root_hash)
    for position, element in enumerate(proof):
        _require_hash(f"inclusion proof element {position}", element)
    # 1. leaf_index must be below tree_size.
    if not 0 <= index < size:
        raise InvalidProofError(f"leaf index {index} is not in a tree of size {size}")
    # 2. fn = leaf_index, sn = tree_size - 1.
    fn, sn = index, size - 1
    # 3. r = hash.
    r = leaf
    # 4. For each value p in the inclusion path:
    for p in proof:
        # 4a. If sn is 0, the path is too long.
        if sn == 0:
            raise InvalidProofError("inclusion proof is longer than the tree is deep")
        # 4b. p is a left sibling if fn is odd or fn is the last node of its level.
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            # 4b.ii. Skip the levels where this subtree has no right sibling.
            while fn and not fn & 1:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        # 4c. Move one level up.
        fn >>= 1
        sn >>= 1
    # 5. The path must reach the top (sn == 0) and the computed root must match.
    if sn != 0:
        raise InvalidProofError("inclusion proof is shorter than the tree is deep")
    if not hmac.compare_digest(r, root_hash):
        raise InvalidProofError(
            f"inclusion proof for leaf {index} does not lead to the root of tree size {size}"
        )


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> None:
    """Check that the tree (``new_size``, ``new_root``) extends (``old_size``, ``old_root``).

    Follows RFC 9162 §2.1.4.2 for ``0 < old_size < new_size``. Equal sizes need an empty proof
    and equal roots; the empty tree (``old_root == EMPTY_ROOT``) is extended by every tree,
    with an empty proof.

    Raises:
        InvalidProofError: the proof does not verify, the new tree is smaller, or a hash is
            malformed.
    """
    _require_hash("old root", old_root)
    _require_hash("new root", new_root)
    for position, element in enumerate(proof):
        _require_hash(f"consistency proof element {position}", element)
    if old_size < 0 or old_size > new_size:
        raise InvalidProofError(f"tree size went from {old_size} to {new_size}: a log only grows")
    if old_size == 0:
        if not hmac.compare_digest(old_root, EMPTY_ROOT):
            raise InvalidProofError("old tree of size 0 must have the empty root")
        if proof:
            raise InvalidProofError("a proof from the empty tree must be empty")
        return
    if old_size == new_size:
        if proof:
            raise InvalidProofError("a proof between equal tree sizes must be empty")
        if not hmac.compare_digest(old_root, new_root):
            raise InvalidProofError(f"two different roots for the same tree size {old_size}")
        return
    # 1. An empty consistency path fails.
    if not proof:
        raise InvalidProofError(f"empty consistency proof from size {old_size} to {new_size}")
    path = list(proof)
    # 2. If first is an exact power of 2, prepend first_hash to the path.
    if _is_power_of_two(old_size):
        path.insert(0, old_root)
    # 3. fn = first - 1, sn = second - 1.
    fn, sn = old_size - 1, new_size - 1
    # 4. While LSB(fn) is set, right-shift fn and sn.
    while fn & 1:
        fn >>= 1
        sn >>= 1
    # 5. fr = sr = the first value of the path.
    fr = sr = path[0]
    # 6. For each subsequent value c of the path:
    for c in path[1:]:
        # 6a. If sn is 0, the path is too long.
        if sn == 0:
            raise InvalidProofError("consistency proof is longer than the tree is deep")
        # 6b. c is a left sibling if fn is odd or fn is the last node of its level.
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            # 6b.ii. Skip the levels where this subtree has no right sibling.
            while fn and not fn & 1:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)
        # 6c. Move one level up.
        fn >>= 1
        sn >>= 1
    # 7. fr must be first_hash, sr must be second_hash, and sn must be 0.
    if sn != 0:
        raise InvalidProofError("consistency proof is shorter than the tree is deep")
    if not hmac.compare_digest(fr, old_root):
        raise InvalidProofError(
            f"consistency proof does not lead to the old root of tree size {old_size}"
        )
    if not hmac.compare_digest(sr, new_root):
        raise InvalidProofError(
            f"consistency proof does not lead to the new root of tree size {new_size}: "
            f"the log rewrote history after size {old_size}"
        )
