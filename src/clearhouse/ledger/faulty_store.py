"""A fault-injecting LedgerStore: a disk that acknowledges writes before they are durable.

``FaultyStore`` wraps another store, which plays the disk's durable medium, and puts a volatile
write-back cache in front of it. The fault model, driven by one seeded ``random.Random``:

* ``append`` returns as soon as the write is in the cache; reads see cached writes (as they would
  through an OS page cache), but nothing in the cache is durable yet.
* ``sync`` (fsync) makes every cached write durable, in order. Synced writes are never lost or
  damaged: bit rot of durable data is out of this model (``clearhouse verify`` catches it).
* ``crash`` kills the process. The disk writes its cache in order, so a random prefix of the
  unsynced writes reached the medium whole; the next one may have reached it in part (a torn
  write); everything after is lost.
* With probability ``torn_rate`` an ``append`` is itself interrupted by a crash part way
  (``CrashPoint`` is raised and the store is down): the write in flight joins the unsynced
  writes above, so it may have landed whole, landed torn, or not at all.
* ``recover`` is the restart: it reads the writes that reached the medium after the last durable
  head, checks each against the checksum taken when it was appended, keeps the whole ones in
  order and discards the first torn one and everything after it. The previous durable head is
  never touched, so a crash never leaves half a block (and never half a DvP).

A node that promises durability must therefore ``sync`` before it tells anyone about a block.
Imports clearhouse.core and clearhouse.ledger (records, store) only.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass, replace

from clearhouse.core.errors import StorageError
from clearhouse.core.hashing import canonical_json, sha256
from clearhouse.ledger.records import Block
from clearhouse.ledger.store import LedgerStore, Rejection, StateRow


class CrashPoint(Exception):
    """The simulated process died inside a store call; its caller is gone with it."""


@dataclass(frozen=True, slots=True)
class _Write:
    """One append as it sits in the cache or on the medium, with the checksum taken at append."""

    block: Block
    receipts: tuple[bytes, ...]
    rejections: tuple[Rejection, ...]
    state_rows: tuple[StateRow, ...] | None
    state_height: int
    checksum: bytes


def _checksum(w: _Write) -> bytes:
    parts = [w.block.header.hash(), w.block.signature, *(s.leaf() for s in w.block.submissions)]
    parts += [len(r).to_bytes(8, "little") + r for r in w.receipts]
    tail = canonical_json({
        "submissions": len(w.block.submissions),
        "rejections": [[r.height, r.submission_id, r.item_id, r.reason] for r in w.rejections],
        "rows": None if w.state_rows is None else [[r.table, r.owner, r.asset, r.value] for r in w.state_rows],
        "state_height": w.state_height,
    })
    return sha256(b"clearhouse/faulty-store/v1", *parts, tail)


@dataclass(slots=True)
class FaultCounts:
    """What the store did with its writes.

    Attributes:
        appends: appends acknowledged (the write reached the cache).
        synced: writes made durable by ``sync``.
        survived: unsynced writes that reached the medium whole before a crash.
        lost: acknowledged writes that had not reached the medium at a crash.
        torn: writes found torn at recovery and discarded.
        crashes: crashes, of which ``mid_append`` interrupted an append.
    """

    appends: int = 0
    synced: int = 0
    survived: int = 0
    lost: int = 0
    torn: int = 0
    crashes: int = 0
    mid_append: int = 0


class FaultyStore:
    """:class:`clearhouse.ledger.store.LedgerStore` with an unsynced cache that crashes lose or tear."""

    def __init__(self, durable: LedgerStore, rng: random.Random, torn_rate: float = 0.0) -> None:
        self.durable = durable
        self.rng = rng
        self.torn_rate = torn_rate
        self.counts = FaultCounts()
        self._cache: list[_Write] = []
        self._on_medium: list[_Write] = []
        self._acknowledged_at_crash = 0
        self._down = False

    # ---------------------------------------------------------------- faults

    def sync(self) -> None:
        """Make every cached write durable, in order."""
        self._check_up()
        for w in self._cache:
            self.durable.append(w.block, list(w.receipts), list(w.rejections),
                                None if w.state_rows is None else list(w.state_rows), w.state_height)
        self.counts.synced += len(self._cache)
        self._cache = []

    def crash(self) -> None:
        """The process dies now: unsynced writes reach the medium in part, in order."""
        self._crash(None)

    def _crash(self, in_flight: _Write | None) -> None:
        self._check_up()
        pending = [*self._cache, *([in_flight] if in_flight else [])]
        whole = self.rng.randint(0, len(pending))
        self._on_medium = pending[:whole]
        if whole < len(pending) and self.rng.random() < 0.5:
            self._on_medium.append(self._tear(pending[whole]))
        self._acknowledged_at_crash = len(self._cache)
        self._cache = []
        self._down = True
        self.counts.crashes += 1

    def _tear(self, w: _Write) -> _Write:
        """The write cut somewhere after its header: a prefix of its submissions and receipts."""
        n = len(w.block.submissions)
        keep = self.rng.randrange(n) if n else 0
        block = replace(w.block, submissions=w.block.submissions[:keep])
        return replace(w, block=block, receipts=w.receipts[: self.rng.randrange(len(w.receipts) + 1)],
                       state_rows=None if w.state_rows is None else w.state_rows[: len(w.state_rows) // 2])

    def recover(self) -> None:
        """Restart after a crash: keep the whole writes found on the medium, discard from the first torn."""
        if not self._down:
            return
        kept = 0
        for w in self._on_medium:
            if _checksum(w) != w.checksum:
                self.counts.torn += 1
                break
            self.durable.append(w.block, list(w.receipts), list(w.rejections),
                                None if w.state_rows is None else list(w.state_rows), w.state_height)
            kept += 1
        acknowledged_kept = min(kept, self._acknowledged_at_crash)
        self.counts.survived += acknowledged_kept
        self.counts.lost += self._acknowledged_at_crash - acknowledged_kept
        self._on_medium = []
        self._down = False

    def _check_up(self) -> None:
        if self._down:
            raise StorageError("the store's process has crashed; recover() first")

    # ---------------------------------------------------------------- LedgerStore

    def head_height(self) -> int:
        self._check_up()
        return self.durable.head_height() + len(self._cache)

    def append(
        self,
        block: Block,
        receipts: list[bytes],
        rejections: list[Rejection],
        state_rows: list[StateRow] | None,
        state_height: int,
    ) -> None:
        self._check_up()
        if block.height != self.head_height() + 1:
            raise StorageError(f"cannot append block {block.height} after {self.head_height()}")
        w = _Write(block, tuple(receipts), tuple(rejections),
                   None if state_rows is None else tuple(state_rows), state_height, b"")
        w = replace(w, checksum=_checksum(w))
        if self.rng.random() < self.torn_rate:
            self.counts.mid_append += 1
            self._crash(w)
            raise CrashPoint(f"crashed while appending block {block.height}")
        self._cache.append(w)
        self.counts.appends += 1

    def _cached(self, height: int) -> _Write | None:
        i = height - self.durable.head_height() - 1
        return self._cache[i] if 0 <= i < len(self._cache) else None

    def block(self, height: int) -> Block:
        self._check_up()
        w = self._cached(height)
        return w.block if w else self.durable.block(height)

    def blocks(self, start: int = 0) -> Iterator[Block]:
        for height in range(max(start, 0), self.head_height() + 1):
            yield self.block(height)

    def receipts(self, height: int) -> list[bytes]:
        self._check_up()
        w = self._cached(height)
        return list(w.receipts) if w else self.durable.receipts(height)

    def rejections(self, submission_id: str | None = None, height: int | None = None) -> list[Rejection]:
        self._check_up()
        cached = [
            r for w in self._cache for r in w.rejections
            if (submission_id is None or r.submission_id == submission_id)
            and (height is None or r.height == height)
        ]
        return self.durable.rejections(submission_id, height) + cached

    def submission_height(self, submission_id: str) -> int | None:
        self._check_up()
        found = self.durable.submission_height(submission_id)
        if found is not None:
            return found
        for w in self._cache:
            if any(s.submission_id == submission_id for s in w.block.submissions):
                return w.block.height
        return None

    def state_rows(self, owner: str | None = None) -> tuple[int, list[StateRow]]:
        self._check_up()
        for w in reversed(self._cache):
            if w.state_rows is not None:
                return w.state_height, [r for r in w.state_rows if owner is None or r.owner == owner]
        return self.durable.state_rows(owner)

    def get_meta(self, key: str) -> str | None:
        self._check_up()
        return self.durable.get_meta(key)

    def set_meta(self, key: str, value: str) -> None:
        """Meta is written through: small settings, durable at once (outside the fault model)."""
        self._check_up()
        self.durable.set_meta(key, value)

    def close(self) -> None:
        self.durable.close()
