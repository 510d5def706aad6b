"""The read side shared by the SQL stores (SQLite and PostgreSQL): one set of queries over the
same schema, with each backend giving its parameter marker, how it keeps text, and its queries'
runner. Imports clearhouse.core and clearhouse.ledger only.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from clearhouse.core.errors import StorageError
from clearhouse.ledger.records import Block, Submission, header_from_bytes
from clearhouse.ledger.store import Rejection, StateRow


class SqlReads:
    """Reads of a SQL ledger store; a backend supplies ``_all``, ``MARK`` and the text codec."""

    MARK = "?"  # the driver's parameter marker
    REJECTION_ORDER = "rowid"  # the column that keeps rejections in the order they were given

    def _all(self, query: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        raise NotImplementedError

    def _text_in(self, text: str) -> Any:
        """How the backend stores an id or other text."""
        return text

    def _text_out(self, value: Any) -> str:
        return str(value)

    def _q(self, query: str) -> str:
        return query.replace("?", self.MARK)

    def _one(self, query: str, args: tuple[Any, ...] = ()) -> tuple[Any, ...] | None:
        rows = self._all(query, args)
        return rows[0] if rows else None

    def head_height(self) -> int:
        row = self._one("SELECT MAX(height) FROM blocks")
        return -1 if row is None or row[0] is None else int(row[0])

    def _submissions(self, height: int) -> tuple[Submission, ...]:
        rows = self._all(
            self._q("SELECT submission_id, kind, submitter, payload, signature FROM submissions "
                    "WHERE height = ? ORDER BY idx"),
            (height,),
        )
        t = self._text_out
        return tuple(Submission(t(r[0]), t(r[1]), t(r[2]), bytes(r[3]), bytes(r[4])) for r in rows)

    def block(self, height: int) -> Block:
        row = self._one(self._q("SELECT header, signature FROM blocks WHERE height = ?"), (height,))
        if row is None:
            raise StorageError(f"no block at height {height}")
        return Block(header_from_bytes(bytes(row[0])), bytes(row[1]), self._submissions(height))

    def blocks(self, start: int = 0) -> Iterator[Block]:
        for height in range(start, self.head_height() + 1):
            yield self.block(height)

    def receipts(self, height: int) -> list[bytes]:
        rows = self._all(self._q("SELECT data FROM receipts WHERE height = ? ORDER BY idx"), (height,))
        return [bytes(r[0]) for r in rows]

    def rejections(self, submission_id: str | None = None, height: int | None = None) -> list[Rejection]:
        query = "SELECT height, submission_id, item_id, reason FROM rejections WHERE 1 = 1"
        args: tuple[Any, ...] = ()
        if submission_id is not None:
            query += " AND submission_id = ?"
            args += (self._text_in(submission_id),)
        if height is not None:
            query += " AND height = ?"
            args += (height,)
        rows = self._all(self._q(query + f" ORDER BY {self.REJECTION_ORDER}"), args)
        t = self._text_out
        return [Rejection(int(r[0]), t(r[1]), t(r[2]), t(r[3])) for r in rows]

    def submission_height(self, submission_id: str) -> int | None:
        row = self._one(self._q("SELECT MIN(height) FROM submissions WHERE submission_id = ?"),
                        (self._text_in(submission_id),))
        return None if row is None or row[0] is None else int(row[0])

    def state_rows(self, owner: str | None = None) -> tuple[int, list[StateRow]]:
        height = int(self.get_meta("state_height") or -1)
        query = "SELECT tbl, owner, asset, value FROM state"
        args: tuple[Any, ...] = ()
        if owner is not None:
            query += " WHERE owner = ?"
            args = (self._text_in(owner),)
        rows = self._all(self._q(query + " ORDER BY tbl, owner, asset"), args)
        t = self._text_out
        return height, [StateRow(t(r[0]), t(r[1]), t(r[2]), t(r[3])) for r in rows]

    def get_meta(self, key: str) -> str | None:
        row = self._one(self._q("SELECT value FROM meta WHERE key = ?"), (key,))
        return None if row is None else str(row[0])
