"""The embedded node: orders submissions into blocks, applies them, signs and stores each block.

The embedded sequencer is a FIFO queue in this process; ``seal`` cuts the queue into the next
block at a business date and timestamp the caller passes in. Opening a node replays the stored
blocks from genesis and checks each state root, so a restarted node resumes exactly where the
last stored block left it. Imports clearhouse.core, clearhouse.ledger, clearhouse.state and
clearhouse.node only.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from clearhouse.core.errors import StorageError
from clearhouse.core.hashing import ZERO_DIGEST
from clearhouse.ledger.crypto import KeyPair
from clearhouse.ledger.records import (
    Block,
    BlockHeader,
    Submission,
    receipts_root,
    submissions_root,
)
from clearhouse.ledger.store import LedgerStore, Rejection
from clearhouse.node.rows import state_rows
from clearhouse.state.kinds import Kind
from clearhouse.state.machine import Receipt, StateMachine

SUBMISSIONS_PER_BLOCK_MAX = 10_000


class Node:
    """State machine + store + embedded sequencer."""

    def __init__(self, store: LedgerStore, sequencer_id: str, sequencer_key: KeyPair | None) -> None:
        self.store = store
        self.sequencer_id = sequencer_id
        self.sequencer_key = sequencer_key
        self.machine = StateMachine()
        self.head_hash = ZERO_DIGEST
        self.last_receipts: list[Receipt] = []
        self.halted: str | None = None
        self._queue: list[Submission] = []

    @classmethod
    def open(
        cls,
        store: LedgerStore,
        sequencer_id: str,
        sequencer_key: KeyPair | None,
        progress: Callable[[int, int], None] | None = None,
    ) -> Node:
        """A node at the store's head, rebuilt by replaying every stored block."""
        node = cls(store, sequencer_id, sequencer_key)
        head = store.head_height()
        for block in store.blocks():
            node.machine.apply_block(block.height, dt.date.fromisoformat(block.header.business_date),
                                     block.submissions)
            if node.machine.state_root() != block.header.state_root:
                raise StorageError(
                    f"replay of block {block.height} gives another state root than stored; "
                    "run `clearhouse verify`"
                )
            node.head_hash = block.header.hash()
            if progress:
                progress(block.height, head)
        return node

    @property
    def height(self) -> int:
        return self.machine.height

    def submit(self, submission: Submission) -> None:
        self._queue.append(submission)

    def queued(self) -> int:
        return len(self._queue)

    def seal(self, business_date: dt.date, timestamp: str) -> Block:
        """Cut the queue into the next block, apply it, sign it and store it atomically."""
        if self.sequencer_key is None:
            raise StorageError("this node holds no sequencer key and cannot cut blocks")
        if self.halted:
            raise StorageError(f"the node halted and cuts no more blocks: {self.halted}")
        subs = tuple(self._queue[:SUBMISSIONS_PER_BLOCK_MAX])
        del self._queue[: len(subs)]
        height = self.machine.height + 1
        try:
            receipts, rejected = self.machine.apply_block(height, business_date, subs)
        except BaseException as exc:
            # the machine may be part-applied: nothing of this block is stored, and the node stops;
            # a restart replays the store to the last good block
            self.halted = f"{type(exc).__name__}: {exc}"
            raise
        encoded = [r.encode() for r in receipts]
        header = BlockHeader(
            height=height,
            prev_hash=self.head_hash,
            business_date=business_date.isoformat(),
            timestamp=timestamp,
            merkle_root=submissions_root(subs),
            state_root=self.machine.state_root(),
            results_root=receipts_root(encoded),
            sequencer=self.sequencer_id,
        )
        block = Block(header, self.sequencer_key.sign(header.hash()), subs)
        changes_state = any(s.kind != Kind.trades for s in subs)
        self.store.append(
            block,
            encoded,
            [Rejection(height, r.submission_id, r.item_id, r.reason) for r in rejected],
            state_rows(self.machine) if changes_state else None,
            height,
        )
        self.head_hash = header.hash()
        self.last_receipts = receipts
        return block
