"""Binary SHA-256 Merkle trees with domain separation and inclusion proofs.

Leaves are hashed with a 0x00 prefix and inner nodes with 0x01, so a leaf can never pass for a
node; an odd node at the end of a level is promoted unchanged (never duplicated), which rules out
the duplicate-leaf ambiguity. The root of no leaves is the zero digest.
Imports clearhouse.core only.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from clearhouse.core.hashing import ZERO_DIGEST

_LEAF = b"\x00"
_NODE = b"\x01"


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(_LEAF + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(_NODE + left + right).digest()


def _levels(leaves: Sequence[bytes]) -> list[list[bytes]]:
    level = [leaf_hash(leaf) for leaf in leaves]
    levels = [level]
    while len(level) > 1:
        nxt = [node_hash(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            nxt.append(level[-1])
        levels.append(nxt)
        level = nxt
    return levels


def merkle_root(leaves: Sequence[bytes]) -> bytes:
    """Root over the leaves' raw bytes (each is leaf-hashed here)."""
    if not leaves:
        return ZERO_DIGEST
    return _levels(leaves)[-1][0]


@dataclass(frozen=True, slots=True)
class MerkleProof:
    """Inclusion proof of one leaf.

    Attributes:
        index: position of the leaf among all leaves.
        size: number of leaves in the tree.
        path: sibling hashes from the leaf level upwards, each with True when the sibling is on the left.
    """

    index: int
    size: int
    path: tuple[tuple[bytes, bool], ...]


def merkle_proof(leaves: Sequence[bytes], index: int) -> MerkleProof:
    if not 0 <= index < len(leaves):
        raise IndexError(f"leaf {index} outside a tree of {len(leaves)}")
    path: list[tuple[bytes, bool]] = []
    pos = index
    for level in _levels(leaves)[:-1]:
        sibling = pos ^ 1
        if sibling < len(level):
            path.append((level[sibling], sibling < pos))
        pos //= 2
    return MerkleProof(index=index, size=len(leaves), path=tuple(path))


def verify_proof(leaf: bytes, proof: MerkleProof, root: bytes) -> bool:
    """True when ``leaf`` sits at ``proof.index`` under ``root``."""
    current = leaf_hash(leaf)
    for sibling, on_left in proof.path:
        current = node_hash(sibling, current) if on_left else node_hash(current, sibling)
    return current == root
