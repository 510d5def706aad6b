"""The storage interface every backend implements (SQLite embedded, PostgreSQL for server nodes).

A store keeps blocks with their submissions, the receipts the state machine gave for them, and
the head state's rows (balances, open positions) for reading without a replay. ``append`` is
atomic: a block, its receipts and its state rows are all stored or none is, so a crash never
leaves half a block (and never half a DvP). Backends translate their driver errors into
``StorageError``. Imports clearhouse.core and clearhouse.ledger.records only.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

from clearhouse.ledger.records import Block


@dataclass(frozen=True, slots=True)
class StateRow:
    """One row of the head state, e.g. ``("securities", "MEMBER1", "AU000000BHP4", "700")``.

    Attributes:
        table: which part of the state (securities, cash, position, fail, ...).
        owner: participant id.
        asset: security id or currency (with a settlement date where the table needs one).
        value: the row's value as canonical text.
    """

    table: str
    owner: str
    asset: str
    value: str


@dataclass(frozen=True, slots=True)
class Rejection:
    """A rejected item, kept: which submission, which item, why."""

    height: int
    submission_id: str
    item_id: str
    reason: str


class LedgerStore(Protocol):
    """What the node needs from storage. Every backend passes ``tests/ledger/storage_suite.py``."""

    def head_height(self) -> int:
        """Height of the last stored block, -1 when empty."""
        ...

    def append(
        self,
        block: Block,
        receipts: list[bytes],
        rejections: list[Rejection],
        state_rows: list[StateRow] | None,
        state_height: int,
    ) -> None:
        """Store the next block atomically; ``state_rows`` None keeps the previous head rows."""
        ...

    def block(self, height: int) -> Block: ...

    def blocks(self, start: int = 0) -> Iterator[Block]: ...

    def receipts(self, height: int) -> list[bytes]: ...

    def rejections(self, submission_id: str | None = None, height: int | None = None) -> list[Rejection]:
        """Rejected items in the order they were given, optionally of one submission or block."""
        ...

    def submission_height(self, submission_id: str) -> int | None:
        """Height of the block holding that submission id, None when unknown."""
        ...

    def state_rows(self, owner: str | None = None) -> tuple[int, list[StateRow]]:
        """(height the rows are of, rows), optionally only one owner's."""
        ...

    def get_meta(self, key: str) -> str | None: ...

    def set_meta(self, key: str, value: str) -> None: ...

    def close(self) -> None: ...
