"""The PostgreSQL backend against the shared storage suite, on a real server on loopback.

One server for the module (a fresh database per test); its data lives in a directory of its own
under the system temporary directory, never under pytest's ``tmp_path`` (when the tests run as
root the server runs as ``nobody``, which must be able to reach it), removed in a finalizer.
"""

from __future__ import annotations

import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from tests.ledger.storage_suite import StorageSuite

from clearhouse.core.errors import StorageError
from clearhouse.ledger.postgres_store import PostgresStore
from clearhouse.ledger.records import Block, BlockHeader, Submission
from clearhouse.ledger.store import Rejection, StateRow
from clearhouse.network.servers import PostgresServer


@pytest.fixture(scope="module")
def server() -> Iterator[PostgresServer]:
    base = Path(tempfile.mkdtemp(prefix="clearhouse-pgstore-"))
    pg = PostgresServer(base)
    try:
        pg.start()
        yield pg
    finally:
        pg.stop()
        PostgresServer.stop_from_dir(base)
        shutil.rmtree(base, ignore_errors=True)


class TestPostgresStore(StorageSuite):
    @pytest.fixture(autouse=True)
    def _server(self, server: PostgresServer) -> None:
        self.server = server

    def make_store(self, tmp_path: Path) -> PostgresStore:
        name = f"t_{uuid.uuid4().hex[:16]}"
        self.server.create_database(name)
        return PostgresStore(self.server.dsn(name))

    def test_text_with_nul_and_non_ascii_round_trips_in_code_point_order(self, tmp_path: Path) -> None:
        store = self.make_store(tmp_path)
        sub = Submission("id\x00ä", "trades", "Zoë", b"\x00", b"sig")
        header = BlockHeader(0, bytes(32), "2026-03-02", "2026-03-02T07:00:00Z", bytes(32), bytes(32),
                             bytes(32), "SEQ")
        rows = [StateRow("cash", "é", "AUD", "1.00"), StateRow("cash", "z", "AUD", "2.00"),
                StateRow("cash", "Z", "AUD", "3.00")]
        store.append(Block(header, b"s", (sub,)), [b"r"], [Rejection(0, "id\x00ä", "t\x00", "why")], rows, 0)
        assert store.block(0).submissions == (sub,)
        assert store.submission_height("id\x00ä") == 0
        assert store.rejections(submission_id="id\x00ä") == [Rejection(0, "id\x00ä", "t\x00", "why")]
        assert store.state_rows()[1] == sorted(rows, key=lambda r: (r.table, r.owner, r.asset))
        store.close()

    def test_driver_errors_become_storage_errors(self, tmp_path: Path) -> None:
        store = self.make_store(tmp_path)
        with psycopg.connect(store.dsn, autocommit=True) as conn:
            conn.execute("DROP TABLE receipts")
        with pytest.raises(StorageError):
            store.receipts(0)
        store.close()
        with pytest.raises(StorageError):
            PostgresStore(self.server.dsn("no_such_database"))
