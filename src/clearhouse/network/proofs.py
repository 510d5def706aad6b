"""Proofs of a holding that anyone can check without access to any node's database.

A proof ties one balance leaf ``["securities"|"cash", participant, asset, amount]`` to a state
root: the leaf's Merkle path up to the balances root, the state's components (the balances root
among them, hashed in sorted key order into the state root exactly as
``StateMachine.state_root`` does), the block header that commits to that state root (its hash is
the head hash, signed by the sequencer), and the checkpoints other nodes signed for the same
height, head hash and state root with their participant keys. :func:`verify_proof` recomputes
every step and checks every signature; with ``trusted`` keys it also insists that each signer's
key is the one the verifier knows.

Imports clearhouse.core, ledger, state, node and network.wire only.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from clearhouse.core.errors import ClearhouseError, InputError
from clearhouse.core.hashing import sha256
from clearhouse.ledger.crypto import verify_signature
from clearhouse.ledger.merkle import MerkleProof, merkle_proof
from clearhouse.ledger.merkle import verify_proof as verify_merkle
from clearhouse.ledger.records import BlockHeader, header_from_bytes
from clearhouse.ledger.store import LedgerStore
from clearhouse.network.wire import Checkpoint
from clearhouse.node.node import Node

PROOF_VERSION = 1
STATE_DOMAIN = b"clearhouse/state/v1"


def _leaf_prefix(table: str, participant: str, asset: str) -> bytes:
    """The start of the balance leaf, as ``StateMachine.balance_leaves`` writes it."""
    return (f'["{table}",{json.dumps(participant, ensure_ascii=False)},'
            f'{json.dumps(asset, ensure_ascii=False)},').encode()


def make_proof(source: LedgerStore | Node, participant: str, security: str,
               checkpoints: Iterable[Checkpoint] = ()) -> dict[str, Any]:
    """A proof of ``participant``'s balance of ``security`` (or of a currency: cash) at the head.

    ``source`` is a node at its head or a store (replayed here). ``checkpoints`` are the other
    nodes' signed checkpoints; those of the head's height, head hash and state root are kept.
    """
    node = source if isinstance(source, Node) else Node.open(source, "SEQUENCER", None)
    machine = node.machine
    if node.height < 0:
        raise InputError("the ledger is empty")
    if security in machine.sindex:
        table = "securities"
    elif security in machine.cindex:
        table = "cash"
    else:
        raise InputError(f"{security} is neither a security nor a currency of this ledger")
    leaves = machine.balance_leaves()
    prefix = _leaf_prefix(table, participant, security)
    index = next((i for i, leaf in enumerate(leaves) if leaf.startswith(prefix)), None)
    if index is None:
        raise InputError(f"{participant} holds no {security} at height {node.height} (only non-zero balances "
                         "have leaves)")
    proof = merkle_proof(leaves, index)
    components = machine.state_components()
    block = node.store.block(node.height)
    head_hash = block.header.hash()
    state_root = machine.state_root()
    keys = {p.id: p.public_key for p in machine.participants}
    signed = {
        cp.node: cp for cp in checkpoints
        if cp.height == node.height and cp.head_hash == head_hash and cp.state_root == state_root and cp.node in keys
    }
    sequencer = machine.participant(block.header.sequencer)
    return {
        "version": PROOF_VERSION,
        "participant": participant,
        "asset": security,
        "table": table,
        "amount": int(json.loads(leaves[index])[3]),
        "leaf": leaves[index].decode(),
        "merkle": {"index": proof.index, "size": proof.size,
                   "path": [[sibling.hex(), on_left] for sibling, on_left in proof.path]},
        "components": {k: v.hex() for k, v in sorted(components.items())},
        "state_root": state_root.hex(),
        "height": node.height,
        "head_hash": head_hash.hex(),
        "header": block.header.canonical().decode(),
        "sequencer": {"id": block.header.sequencer, "signature": block.signature.hex(),
                      "public_key": sequencer.public_key.hex() if sequencer else ""},
        "checkpoints": [
            {**cp.to_json(), "public_key": keys[cp.node].hex()} for _, cp in sorted(signed.items())
        ],
    }


def _check(doc: dict[str, Any], trusted: dict[str, bytes] | None, min_signers: int) -> str:
    """'' when the proof holds, else what fails."""
    leaf = doc["leaf"].encode()
    if json.loads(leaf) != [doc["table"], doc["participant"], doc["asset"], doc["amount"]]:
        return "the leaf does not state the participant, asset and amount the proof names"
    components = {k: bytes.fromhex(v) for k, v in doc["components"].items()}
    m = doc["merkle"]
    path = tuple((bytes.fromhex(h), bool(left)) for h, left in m["path"])
    if not verify_merkle(leaf, MerkleProof(int(m["index"]), int(m["size"]), path), components["balances"]):
        return "the leaf's Merkle path does not lead to the balances root"
    state_root = bytes.fromhex(doc["state_root"])
    if sha256(STATE_DOMAIN, *(components[k] for k in sorted(components))) != state_root:
        return "the state components do not hash to the state root"
    header: BlockHeader = header_from_bytes(doc["header"].encode())
    head_hash = bytes.fromhex(doc["head_hash"])
    if header.canonical().decode() != doc["header"] or header.hash() != head_hash:
        return "the block header does not hash to the head hash"
    if header.state_root != state_root or header.height != int(doc["height"]):
        return "the block header commits to another state root or height"
    seq = doc["sequencer"]
    seq_key = bytes.fromhex(seq["public_key"])
    if trusted is not None and seq["id"] in trusted and trusted[seq["id"]] != seq_key:
        return f"the sequencer key in the proof is not the trusted key of {seq['id']}"
    if not verify_signature(seq_key, head_hash, bytes.fromhex(seq["signature"])):
        return "the sequencer's signature on the block does not verify"
    signers: set[str] = set()
    for body in doc["checkpoints"]:
        cp = Checkpoint.from_json(body)
        key = bytes.fromhex(body["public_key"])
        if (cp.height, cp.head_hash, cp.state_root) != (header.height, head_hash, state_root):
            return f"the checkpoint of {cp.node} is for another height, head or state root"
        if trusted is not None and trusted.get(cp.node) != key:
            return f"the checkpoint of {cp.node} is signed with a key that is not its trusted key"
        if not verify_signature(key, cp.digest(), cp.signature):
            return f"the checkpoint signature of {cp.node} does not verify"
        signers.add(cp.node)
    if len(signers) < min_signers:
        return f"{len(signers)} node(s) signed this state root; {min_signers} required"
    return ""


def verify_proof(doc: Any, trusted: dict[str, bytes] | None = None, min_signers: int = 1) -> tuple[bool, str]:
    """(True, summary) when the proof holds; (False, what fails) otherwise. Needs no database:
    everything is recomputed from the document. ``trusted`` maps participant ids to the public
    keys the verifier knows; ``min_signers`` is how many nodes' checkpoints must vouch."""
    try:
        if not isinstance(doc, dict) or doc.get("version") != PROOF_VERSION:
            return False, "not a clearhouse proof (version 1)"
        problem = _check(doc, trusted, min_signers)
    except (KeyError, TypeError, ValueError, IndexError, AttributeError, ClearhouseError) as exc:
        return False, f"malformed proof: {type(exc).__name__}: {exc}"
    if problem:
        return False, problem
    signers = ", ".join(c["node"] for c in doc["checkpoints"]) or "no node"
    return True, (f"{doc['participant']} holds {doc['amount']} {doc['asset']} at height {doc['height']} "
                  f"(state root {doc['state_root'][:16]}…, signed by {signers})")
