"""PostgreSQL ledger store: the backend of nodes that run as servers, one database per node.

It keeps exactly what the SQLite backend keeps and answers every read the same way (it passes
``tests/ledger/storage_suite.py``). ``append`` runs in one transaction: a block, its receipts,
rejections and head state rows are all committed or none is. Text that submitters choose
(submission ids, participant and item ids, reasons) is stored as UTF-8 ``bytea``: PostgreSQL text
cannot hold NUL characters, and byte order is code-point order, so ``state_rows`` sorts exactly as
the state machine does whatever the server's collation. Driver errors become ``StorageError``.
Imports clearhouse.core and clearhouse.ledger (records, store, sqlite_store's header parser) only;
nothing of clearhouse.network.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import psycopg

from clearhouse.core.errors import StorageError
from clearhouse.ledger.records import Block, Submission
from clearhouse.ledger.sqlite_store import header_from_bytes
from clearhouse.ledger.store import Rejection, StateRow

SCHEMA = """
CREATE TABLE IF NOT EXISTS blocks (
    height BIGINT PRIMARY KEY,
    header BYTEA NOT NULL,
    signature BYTEA NOT NULL
);
CREATE TABLE IF NOT EXISTS submissions (
    height BIGINT NOT NULL,
    idx INTEGER NOT NULL,
    submission_id BYTEA NOT NULL,
    kind BYTEA NOT NULL,
    submitter BYTEA NOT NULL,
    payload BYTEA NOT NULL,
    signature BYTEA NOT NULL,
    PRIMARY KEY (height, idx)
);
CREATE INDEX IF NOT EXISTS submissions_id ON submissions (submission_id);
CREATE TABLE IF NOT EXISTS receipts (
    height BIGINT NOT NULL,
    idx INTEGER NOT NULL,
    data BYTEA NOT NULL,
    PRIMARY KEY (height, idx)
);
CREATE TABLE IF NOT EXISTS rejections (
    seq BIGSERIAL PRIMARY KEY,
    height BIGINT NOT NULL,
    submission_id BYTEA NOT NULL,
    item_id BYTEA NOT NULL,
    reason BYTEA NOT NULL
);
CREATE INDEX IF NOT EXISTS rejections_sub ON rejections (submission_id);
CREATE INDEX IF NOT EXISTS rejections_height ON rejections (height);
CREATE TABLE IF NOT EXISTS state (
    tbl BYTEA NOT NULL,
    owner BYTEA NOT NULL,
    asset BYTEA NOT NULL,
    value BYTEA NOT NULL,
    PRIMARY KEY (tbl, owner, asset)
);
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
"""
# A concurrent ``CREATE TABLE IF NOT EXISTS`` from two connections can still collide in the
# catalogue; the schema is created under this transaction-scoped advisory lock.
SCHEMA_LOCK = 0x636C6561  # "clea"


def _b(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")


def _s(raw: bytes | memoryview) -> str:
    return bytes(raw).decode("utf-8", "surrogatepass")


class PostgresStore:
    """:class:`clearhouse.ledger.store.LedgerStore` on one PostgreSQL database.

    One connection, used by one thread at a time (a lock serialises calls, so a node may hand
    the store to a worker thread).
    """

    def __init__(self, dsn: str, *, connect_timeout_s: int = 10) -> None:
        self.dsn = dsn
        self._lock = threading.Lock()
        try:
            self._db = psycopg.connect(dsn, autocommit=True, connect_timeout=connect_timeout_s)
            with self._db.transaction():
                self._db.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK,))
                self._db.execute(SCHEMA)
        except psycopg.Error as exc:
            raise StorageError(f"cannot open the ledger database: {exc}") from exc

    # -- reads ---------------------------------------------------------------------------------

    def _all(self, query: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            try:
                return self._db.execute(query, args).fetchall()
            except psycopg.Error as exc:
                raise StorageError(str(exc)) from exc

    def _one(self, query: str, args: tuple[Any, ...] = ()) -> tuple[Any, ...] | None:
        rows = self._all(query, args)
        return rows[0] if rows else None

    def head_height(self) -> int:
        row = self._one("SELECT MAX(height) FROM blocks")
        return -1 if row is None or row[0] is None else int(row[0])

    def _submissions(self, height: int) -> tuple[Submission, ...]:
        rows = self._all(
            "SELECT submission_id, kind, submitter, payload, signature FROM submissions "
            "WHERE height = %s ORDER BY idx",
            (height,),
        )
        return tuple(Submission(_s(r[0]), _s(r[1]), _s(r[2]), bytes(r[3]), bytes(r[4])) for r in rows)

    def block(self, height: int) -> Block:
        row = self._one("SELECT header, signature FROM blocks WHERE height = %s", (height,))
        if row is None:
            raise StorageError(f"no block at height {height}")
        return Block(header_from_bytes(bytes(row[0])), bytes(row[1]), self._submissions(height))

    def blocks(self, start: int = 0) -> Iterator[Block]:
        for height in range(start, self.head_height() + 1):
            yield self.block(height)

    def receipts(self, height: int) -> list[bytes]:
        rows = self._all("SELECT data FROM receipts WHERE height = %s ORDER BY idx", (height,))
        return [bytes(r[0]) for r in rows]

    def rejections(self, submission_id: str | None = None, height: int | None = None) -> list[Rejection]:
        query = "SELECT height, submission_id, item_id, reason FROM rejections WHERE TRUE"
        args: tuple[Any, ...] = ()
        if submission_id is not None:
            query += " AND submission_id = %s"
            args += (_b(submission_id),)
        if height is not None:
            query += " AND height = %s"
            args += (height,)
        rows = self._all(query + " ORDER BY seq", args)
        return [Rejection(int(r[0]), _s(r[1]), _s(r[2]), _s(r[3])) for r in rows]

    def submission_height(self, submission_id: str) -> int | None:
        row = self._one("SELECT MIN(height) FROM submissions WHERE submission_id = %s", (_b(submission_id),))
        return None if row is None or row[0] is None else int(row[0])

    def state_rows(self, owner: str | None = None) -> tuple[int, list[StateRow]]:
        height = int(self.get_meta("state_height") or -1)
        query = "SELECT tbl, owner, asset, value FROM state"
        args: tuple[Any, ...] = ()
        if owner is not None:
            query += " WHERE owner = %s"
            args = (_b(owner),)
        rows = self._all(query + " ORDER BY tbl, owner, asset", args)
        return height, [StateRow(_s(r[0]), _s(r[1]), _s(r[2]), _s(r[3])) for r in rows]

    def get_meta(self, key: str) -> str | None:
        row = self._one("SELECT value FROM meta WHERE key = %s", (key,))
        return None if row is None else str(row[0])

    # -- writes --------------------------------------------------------------------------------

    def append(
        self,
        block: Block,
        receipts: list[bytes],
        rejections: list[Rejection],
        state_rows: list[StateRow] | None,
        state_height: int,
    ) -> None:
        h = block.header
        with self._lock:
            try:
                with self._db.transaction(), self._db.cursor() as cur:
                    cur.execute(
                        "INSERT INTO blocks (height, header, signature) VALUES (%s, %s, %s)",
                        (h.height, h.canonical(), block.signature),
                    )
                    cur.executemany(
                        "INSERT INTO submissions VALUES (%s, %s, %s, %s, %s, %s, %s)",
                        [
                            (h.height, i, _b(s.submission_id), _b(s.kind), _b(s.submitter), s.payload,
                             s.signature)
                            for i, s in enumerate(block.submissions)
                        ],
                    )
                    cur.executemany(
                        "INSERT INTO receipts VALUES (%s, %s, %s)",
                        [(h.height, i, r) for i, r in enumerate(receipts)],
                    )
                    if rejections:
                        with cur.copy("COPY rejections (height, submission_id, item_id, reason) FROM STDIN") as cp:
                            for r in rejections:
                                cp.write_row((r.height, _b(r.submission_id), _b(r.item_id), _b(r.reason)))
                    if state_rows is not None:
                        cur.execute("DELETE FROM state")
                        with cur.copy("COPY state (tbl, owner, asset, value) FROM STDIN") as cp:
                            for row in state_rows:
                                cp.write_row((_b(row.table), _b(row.owner), _b(row.asset), _b(row.value)))
                        cur.execute(
                            "INSERT INTO meta VALUES ('state_height', %s) "
                            "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
                            (str(state_height),),
                        )
            except psycopg.Error as exc:
                raise StorageError(f"cannot append block {h.height}: {exc}") from exc

    def set_meta(self, key: str, value: str) -> None:
        with self._lock:
            try:
                self._db.execute(
                    "INSERT INTO meta VALUES (%s, %s) ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
                    (key, value),
                )
            except psycopg.Error as exc:
                raise StorageError(str(exc)) from exc

    def close(self) -> None:
        with self._lock:
            self._db.close()
