"""The SQLite backend against the shared storage suite."""

from __future__ import annotations

from pathlib import Path

from clearhouse.ledger.sqlite_store import SqliteStore
from tests.ledger.storage_suite import StorageSuite


class TestSqliteStore(StorageSuite):
    def make_store(self, tmp_path: Path) -> SqliteStore:
        return SqliteStore(tmp_path / "ledger.sqlite")
