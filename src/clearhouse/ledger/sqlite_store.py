"""SQLite ledger store: the embedded default, zero set-up, one file under the data directory.

WAL journal with synchronous=FULL: a block is durable once ``append`` returns, and a crash
mid-append leaves the previous head intact. Imports clearhouse.core and clearhouse.ledger only.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

from clearhouse.core.errors import StorageError
from clearhouse.ledger.records import Block, BlockHeader, Submission
from clearhouse.ledger.store import Rejection, StateRow

SCHEMA = """
CREATE TABLE IF NOT EXISTS blocks (
    height INTEGER PRIMARY KEY,
    header BLOB NOT NULL,
    signature BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS submissions (
    height INTEGER NOT NULL,
    idx INTEGER NOT NULL,
    submission_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    submitter TEXT NOT NULL,
    payload BLOB NOT NULL,
    signature BLOB NOT NULL,
    PRIMARY KEY (height, idx)
);
CREATE INDEX IF NOT EXISTS submissions_id ON submissions (submission_id);
CREATE TABLE IF NOT EXISTS receipts (
    height INTEGER NOT NULL,
    idx INTEGER NOT NULL,
    data BLOB NOT NULL,
    PRIMARY KEY (height, idx)
);
CREATE TABLE IF NOT EXISTS rejections (
    height INTEGER NOT NULL,
    submission_id TEXT NOT NULL,
    item_id TEXT NOT NULL,
    reason TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS rejections_sub ON rejections (submission_id);
CREATE TABLE IF NOT EXISTS state (
    tbl TEXT NOT NULL,
    owner TEXT NOT NULL,
    asset TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (tbl, owner, asset)
);
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
"""


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


class SqliteStore:
    """:class:`clearhouse.ledger.store.LedgerStore` on one SQLite file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(SCHEMA)
        except sqlite3.Error as exc:
            raise StorageError(f"cannot open the ledger at {path}: {exc}") from exc

    def head_height(self) -> int:
        row = self._one("SELECT MAX(height) FROM blocks")
        return -1 if row is None or row[0] is None else int(row[0])

    def append(
        self,
        block: Block,
        receipts: list[bytes],
        rejections: list[Rejection],
        state_rows: list[StateRow] | None,
        state_height: int,
    ) -> None:
        h = block.header
        try:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute(
                "INSERT INTO blocks (height, header, signature) VALUES (?, ?, ?)",
                (h.height, h.canonical(), block.signature),
            )
            self._db.executemany(
                "INSERT INTO submissions VALUES (?, ?, ?, ?, ?, ?, ?)",
                [
                    (h.height, i, s.submission_id, s.kind, s.submitter, s.payload, s.signature)
                    for i, s in enumerate(block.submissions)
                ],
            )
            self._db.executemany(
                "INSERT INTO receipts VALUES (?, ?, ?)",
                [(h.height, i, r) for i, r in enumerate(receipts)],
            )
            self._db.executemany(
                "INSERT INTO rejections VALUES (?, ?, ?, ?)",
                [(r.height, r.submission_id, r.item_id, r.reason) for r in rejections],
            )
            if state_rows is not None:
                self._db.execute("DELETE FROM state")
                self._db.executemany(
                    "INSERT INTO state VALUES (?, ?, ?, ?)",
                    [(r.table, r.owner, r.asset, r.value) for r in state_rows],
                )
                self._db.execute(
                    "INSERT OR REPLACE INTO meta VALUES ('state_height', ?)", (str(state_height),)
                )
            self._db.execute("COMMIT")
        except sqlite3.Error as exc:
            self._rollback()
            raise StorageError(f"cannot append block {h.height}: {exc}") from exc

    def _rollback(self) -> None:
        try:
            self._db.execute("ROLLBACK")
        except sqlite3.Error:
            pass

    def _one(self, sql: str, args: tuple[object, ...] = ()) -> tuple | None:
        try:
            return self._db.execute(sql, args).fetchone()
        except sqlite3.Error as exc:
            raise StorageError(str(exc)) from exc

    def _all(self, sql: str, args: tuple[object, ...] = ()) -> list[tuple]:
        try:
            return self._db.execute(sql, args).fetchall()
        except sqlite3.Error as exc:
            raise StorageError(str(exc)) from exc

    def _submissions(self, height: int) -> tuple[Submission, ...]:
        rows = self._all(
            "SELECT submission_id, kind, submitter, payload, signature FROM submissions "
            "WHERE height = ? ORDER BY idx",
            (height,),
        )
        return tuple(Submission(r[0], r[1], r[2], bytes(r[3]), bytes(r[4])) for r in rows)

    def block(self, height: int) -> Block:
        row = self._one("SELECT header, signature FROM blocks WHERE height = ?", (height,))
        if row is None:
            raise StorageError(f"no block at height {height}")
        return Block(header_from_bytes(bytes(row[0])), bytes(row[1]), self._submissions(height))

    def blocks(self, start: int = 0) -> Iterator[Block]:
        for height in range(start, self.head_height() + 1):
            yield self.block(height)

    def receipts(self, height: int) -> list[bytes]:
        rows = self._all("SELECT data FROM receipts WHERE height = ? ORDER BY idx", (height,))
        return [bytes(r[0]) for r in rows]

    def rejections(self, submission_id: str | None = None, height: int | None = None) -> list[Rejection]:
        sql = "SELECT height, submission_id, item_id, reason FROM rejections WHERE 1=1"
        args: tuple[object, ...] = ()
        if submission_id is not None:
            sql += " AND submission_id = ?"
            args += (submission_id,)
        if height is not None:
            sql += " AND height = ?"
            args += (height,)
        return [Rejection(int(r[0]), r[1], r[2], r[3]) for r in self._all(sql + " ORDER BY rowid", args)]

    def submission_height(self, submission_id: str) -> int | None:
        row = self._one(
            "SELECT MIN(height) FROM submissions WHERE submission_id = ?", (submission_id,)
        )
        return None if row is None or row[0] is None else int(row[0])

    def state_rows(self, owner: str | None = None) -> tuple[int, list[StateRow]]:
        height = int(self.get_meta("state_height") or -1)
        sql = "SELECT tbl, owner, asset, value FROM state"
        args: tuple[object, ...] = ()
        if owner is not None:
            sql += " WHERE owner = ?"
            args = (owner,)
        rows = self._all(sql + " ORDER BY tbl, owner, asset", args)
        return height, [StateRow(*r) for r in rows]

    def get_meta(self, key: str) -> str | None:
        row = self._one("SELECT value FROM meta WHERE key = ?", (key,))
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str) -> None:
        try:
            self._db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))
        except sqlite3.Error as exc:
            raise StorageError(str(exc)) from exc

    def close(self) -> None:
        self._db.close()
