"""Verification of a whole store: hash chain, Merkle roots, every signature, and a full replay
from genesis comparing every state root, results root and the stored head state rows.

It names the first bad block. Imports clearhouse.core, clearhouse.ledger, clearhouse.state and
clearhouse.node.rows only.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

from clearhouse.core.errors import ClearhouseError
from clearhouse.core.hashing import ZERO_DIGEST
from clearhouse.ledger.crypto import verify_signature
from clearhouse.ledger.records import receipts_root, submissions_root
from clearhouse.ledger.store import LedgerStore, Rejection
from clearhouse.node.rows import state_rows
from clearhouse.state.kinds import Kind, Role
from clearhouse.state.machine import StateMachine


@dataclass(frozen=True, slots=True)
class VerifyReport:
    """Outcome of a verification.

    Attributes:
        verified: True when every check passed.
        height: height of the last stored block (-1 for an empty store).
        first_bad_height: height of the first block that failed a check, None when all is well.
        reason: what failed, '' when all is well.
        head_hash, state_root: of the last block that verified.
    """

    verified: bool
    height: int
    first_bad_height: int | None
    reason: str
    head_hash: str
    state_root: str


def verify_store(
    store: LedgerStore, progress: Callable[[int, int], None] | None = None
) -> VerifyReport:
    head = store.head_height()
    machine = StateMachine()
    prev_hash = ZERO_DIGEST
    state_root = ZERO_DIGEST
    rows_expected_at = -1

    def bad(height: int, reason: str) -> VerifyReport:
        return VerifyReport(False, head, height, reason, prev_hash.hex(), state_root.hex())

    for height in range(head + 1):
        try:
            block = store.block(height)
        except ClearhouseError as exc:
            return bad(height, f"block unreadable: {exc}")
        h = block.header
        if h.height != height:
            return bad(height, f"block stored at {height} says height {h.height}")
        if h.prev_hash != prev_hash:
            return bad(height, "previous-block hash does not match: the chain is broken")
        if submissions_root(block.submissions) != h.merkle_root:
            return bad(height, "Merkle root does not match the stored submissions")
        try:
            receipts, rejected = machine.apply_block(height, dt.date.fromisoformat(h.business_date),
                                              block.submissions)
        except (ClearhouseError, ValueError) as exc:
            return bad(height, f"replay failed: {exc}")
        seq = machine.participant(h.sequencer)
        if seq is None or seq.role != Role.sequencer:
            return bad(height, f"block signed by {h.sequencer!r}, which is not the ledger's sequencer")
        if not verify_signature(seq.public_key, h.hash(), block.signature):
            return bad(height, "sequencer signature does not verify")
        encoded = [r.encode() for r in receipts]
        if receipts_root(encoded) != h.results_root:
            return bad(height, "results root differs from the replayed results")
        if store.receipts(height) != encoded:
            return bad(height, "stored receipts differ from the replayed results")
        if store.rejections(height=height) != [
            Rejection(height, r.submission_id, r.item_id, r.reason) for r in rejected
        ]:
            return bad(height, "stored rejections differ from the replayed results")
        if any(s.kind != Kind.trades for s in block.submissions):
            rows_expected_at = height
        state_root = machine.state_root()
        if state_root != h.state_root:
            return bad(height, "state root differs from the replayed state")
        prev_hash = h.hash()
        if progress:
            progress(height, head)
    rows_height, rows = store.state_rows()
    # rows are rewritten by every block that can change balances or positions
    if rows_height != rows_expected_at:
        return bad(max(rows_expected_at, 0), f"state rows claim height {rows_height}, "
                   f"not {rows_expected_at}")
    if rows != state_rows(machine):
        return bad(rows_height, "stored state rows differ from the replayed state")
    return VerifyReport(True, head, None, "", prev_hash.hex(), state_root.hex())
