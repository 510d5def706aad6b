"""In-memory ledger store: the LedgerStore protocol held in Python lists and dicts.

For the deterministic simulation and for tests that need a store without a file. It keeps
exactly what the SQLite backend keeps and answers every read the same way (it passes
``tests/ledger/storage_suite.py``); nothing survives the process. ``append`` checks everything
before it changes anything, so a refused append leaves the store as it was.
Imports clearhouse.core and clearhouse.ledger (records, store) only.
"""

from __future__ import annotations

from collections.abc import Iterator

from clearhouse.core.errors import StorageError
from clearhouse.ledger.records import Block
from clearhouse.ledger.store import Rejection, StateRow


class MemoryStore:
    """:class:`clearhouse.ledger.store.LedgerStore` in memory."""

    def __init__(self) -> None:
        self._blocks: list[Block] = []
        self._receipts: list[list[bytes]] = []
        self._rejections: list[Rejection] = []
        self._first_height: dict[str, int] = {}
        self._state: tuple[int, list[StateRow]] = (-1, [])
        self._meta: dict[str, str] = {}
        self._open = True

    def _check_open(self) -> None:
        if not self._open:
            raise StorageError("the in-memory store is closed")

    def head_height(self) -> int:
        self._check_open()
        return len(self._blocks) - 1

    def append(
        self,
        block: Block,
        receipts: list[bytes],
        rejections: list[Rejection],
        state_rows: list[StateRow] | None,
        state_height: int,
    ) -> None:
        self._check_open()
        if block.height != len(self._blocks):
            raise StorageError(
                f"cannot append block {block.height}: the next height is {len(self._blocks)}"
            )
        self._blocks.append(block)
        self._receipts.append(list(receipts))
        self._rejections.extend(rejections)
        for sub in block.submissions:
            self._first_height.setdefault(sub.submission_id, block.height)
        if state_rows is not None:
            rows = sorted(state_rows, key=lambda r: (r.table, r.owner, r.asset))
            self._state = (state_height, rows)

    def block(self, height: int) -> Block:
        self._check_open()
        if not 0 <= height < len(self._blocks):
            raise StorageError(f"no block at height {height}")
        return self._blocks[height]

    def blocks(self, start: int = 0) -> Iterator[Block]:
        for height in range(max(start, 0), self.head_height() + 1):
            yield self.block(height)

    def receipts(self, height: int) -> list[bytes]:
        self._check_open()
        return list(self._receipts[height]) if 0 <= height < len(self._receipts) else []

    def rejections(self, submission_id: str | None = None, height: int | None = None) -> list[Rejection]:
        self._check_open()
        return [
            r for r in self._rejections
            if (submission_id is None or r.submission_id == submission_id)
            and (height is None or r.height == height)
        ]

    def submission_height(self, submission_id: str) -> int | None:
        self._check_open()
        return self._first_height.get(submission_id)

    def state_rows(self, owner: str | None = None) -> tuple[int, list[StateRow]]:
        self._check_open()
        height, rows = self._state
        return height, [r for r in rows if owner is None or r.owner == owner]

    def get_meta(self, key: str) -> str | None:
        self._check_open()
        return self._meta.get(key)

    def set_meta(self, key: str, value: str) -> None:
        self._check_open()
        self._meta[key] = value

    def close(self) -> None:
        self._open = False
