"""The SQLite backend against the shared storage suite."""

from __future__ import annotations

from pathlib import Path

from tests.ledger.storage_suite import StorageSuite

from clearhouse.ledger.sqlite_store import SqliteStore


class TestSqliteStore(StorageSuite):
    def make_store(self, tmp_path: Path) -> SqliteStore:
        return SqliteStore(tmp_path / "ledger.sqlite")
