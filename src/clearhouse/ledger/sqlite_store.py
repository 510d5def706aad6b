"""SQLite ledger store: the embedded default, zero set-up, one file under the data directory.

WAL journal with synchronous=FULL: a block is durable once ``append`` returns, and a crash
mid-append leaves the previous head intact. Imports clearhouse.core and clearhouse.ledger only.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from clearhouse.core.errors import StorageError
from clearhouse.ledger.records import Block
from clearhouse.ledger.sql_reads import SqlReads
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


class SqliteStore(SqlReads):
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

    def _all(self, sql: str, args: tuple[object, ...] = ()) -> list[tuple]:
        try:
            return self._db.execute(sql, args).fetchall()
        except sqlite3.Error as exc:
            raise StorageError(str(exc)) from exc

    def set_meta(self, key: str, value: str) -> None:
        try:
            self._db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))
        except sqlite3.Error as exc:
            raise StorageError(str(exc)) from exc

    def close(self) -> None:
        self._db.close()
