"""Merkle roots and proofs, and Ed25519 signatures over batch digests."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from clearhouse.ledger.crypto import KeyPair, KeyStore, verify_signature
from clearhouse.ledger.merkle import merkle_proof, merkle_root, verify_proof


@given(leaves=st.lists(st.binary(max_size=40), min_size=1, max_size=40), data=st.data())
def test_every_leaf_proves_and_no_other_leaf_does(leaves, data) -> None:
    root = merkle_root(leaves)
    i = data.draw(st.integers(0, len(leaves) - 1))
    proof = merkle_proof(leaves, i)
    assert verify_proof(leaves[i], proof, root)
    assert not verify_proof(leaves[i] + b"x", proof, root)


def test_a_leaf_cannot_pass_for_an_inner_node() -> None:
    leaves = [b"a", b"b", b"c", b"d"]
    assert merkle_root(leaves) != merkle_root([b"a", b"b", b"c"])
    assert merkle_root([b"a", b"b", b"c"]) != merkle_root([b"a", b"b", b"c", b"c"])


def test_signatures_bind_key_and_digest(tmp_path) -> None:
    keys = KeyStore(tmp_path)
    a, b = keys.get_or_create("A"), keys.get_or_create("B")
    assert keys.load("A").public_key == a.public_key
    assert (tmp_path / "A.key").stat().st_mode & 0o077 == 0
    sig = a.sign(b"d" * 32)
    assert verify_signature(a.public_key, b"d" * 32, sig)
    assert not verify_signature(b.public_key, b"d" * 32, sig)
    assert not verify_signature(a.public_key, b"e" * 32, sig)
    assert not verify_signature(a.public_key, b"d" * 32, b"\x00" * 64)
    assert KeyPair(a.seed).public_key == a.public_key
