"""Ledger records: signed submissions and hash-chained blocks, with their canonical digests.

A submission is a batch of items signed once by its submitter; a block orders submissions and
commits to them (Merkle root), to the state after applying them (state root) and to every result
the state machine gave (results root), and is signed by the sequencer that cut it.
Imports clearhouse.core only.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from clearhouse.core.errors import StorageError
from clearhouse.core.hashing import canonical_json, sha256
from clearhouse.ledger.merkle import merkle_root


@dataclass(frozen=True, slots=True)
class Submission:
    """A batch signed by one participant.

    Attributes:
        submission_id: chosen by the submitter; the idempotency key of the whole batch.
        kind: what the payload holds (see ``clearhouse.state.kinds``).
        submitter: participant id whose key signed it.
        payload: the batch's bytes, decoded by the state machine on every node.
        signature: Ed25519 signature over :meth:`signing_digest`.
    """

    submission_id: str
    kind: str
    submitter: str
    payload: bytes
    signature: bytes

    @staticmethod
    def digest_for(submission_id: str, kind: str, submitter: str, payload: bytes) -> bytes:
        header = canonical_json({"id": submission_id, "kind": kind, "submitter": submitter})
        return sha256(b"clearhouse/submission/v1", sha256(header), sha256(payload))

    def signing_digest(self) -> bytes:
        return self.digest_for(self.submission_id, self.kind, self.submitter, self.payload)

    def body_digest(self) -> bytes:
        """What idempotency compares: everything but the signature."""
        return self.signing_digest()

    def leaf(self) -> bytes:
        """The Merkle leaf: the signed digest and the signature itself."""
        return self.signing_digest() + self.signature


@dataclass(frozen=True, slots=True)
class BlockHeader:
    """What a block commits to.

    Attributes:
        height: 0 for genesis, then +1 per block.
        prev_hash: hash of the previous block's header (zeros for genesis).
        business_date: ISO date of the business day the block belongs to.
        timestamp: ISO 8601 UTC time, passed in by the sequencer (never read inside the core).
        merkle_root: root over the submissions' leaves in block order.
        state_root: root of the state after applying this block.
        results_root: root over the receipts the state machine gave for each submission.
        sequencer: participant id of the sequencer that cut and signed the block.
    """

    height: int
    prev_hash: bytes
    business_date: str
    timestamp: str
    merkle_root: bytes
    state_root: bytes
    results_root: bytes
    sequencer: str

    def canonical(self) -> bytes:
        return canonical_json(
            {
                "height": self.height,
                "prev_hash": self.prev_hash.hex(),
                "business_date": self.business_date,
                "timestamp": self.timestamp,
                "merkle_root": self.merkle_root.hex(),
                "state_root": self.state_root.hex(),
                "results_root": self.results_root.hex(),
                "sequencer": self.sequencer,
            }
        )

    def hash(self) -> bytes:
        return sha256(b"clearhouse/block/v1", self.canonical())


def header_from_bytes(raw: bytes) -> BlockHeader:
    """Rebuild a header from its canonical bytes; a damaged header raises ``StorageError``."""
    try:
        d = json.loads(raw)
        return BlockHeader(
            height=int(d["height"]),
            prev_hash=bytes.fromhex(d["prev_hash"]),
            business_date=str(d["business_date"]),
            timestamp=str(d["timestamp"]),
            merkle_root=bytes.fromhex(d["merkle_root"]),
            state_root=bytes.fromhex(d["state_root"]),
            results_root=bytes.fromhex(d["results_root"]),
            sequencer=str(d["sequencer"]),
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise StorageError(f"unreadable block header: {exc}") from exc


@dataclass(frozen=True, slots=True)
class Block:
    """A header, the sequencer's signature over its hash, and the ordered submissions."""

    header: BlockHeader
    signature: bytes
    submissions: tuple[Submission, ...]

    @property
    def height(self) -> int:
        return self.header.height


def submissions_root(submissions: tuple[Submission, ...] | list[Submission]) -> bytes:
    return merkle_root([s.leaf() for s in submissions])


def receipts_root(receipts: list[bytes]) -> bytes:
    return merkle_root(receipts)
