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
from typing import Any

import psycopg

from clearhouse.core.errors import StorageError
from clearhouse.ledger.records import Block
from clearhouse.ledger.sql_reads import SqlReads
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


class PostgresStore(SqlReads):
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

    # -- reads (the queries are SqlReads'; text is kept as bytes, see _b) ---------------------

    MARK = "%s"
    REJECTION_ORDER = "seq"

    def _text_in(self, text: str) -> bytes:
        return _b(text)

    def _text_out(self, value: Any) -> str:
        return _s(value)

    def _all(self, query: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            try:
                return self._db.execute(query, args).fetchall()
            except psycopg.Error as exc:
                raise StorageError(str(exc)) from exc

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
