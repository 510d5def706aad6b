"""A byte changed anywhere in the store is caught by verify, at the block it belongs to."""

from __future__ import annotations

import sqlite3
from dataclasses import replace
from pathlib import Path

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clearhouse.cycle.run import LEDGER_FILE, run_scenario
from clearhouse.ledger.sqlite_store import SqliteStore
from clearhouse.ledger.verify import verify_store
from clearhouse.market.synthetic import MarketSpec, generate_market


@pytest.fixture(scope="module")
def ledger(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data = tmp_path_factory.mktemp("ledger")
    spec = MarketSpec(members=6, securities=8, trades=3_000, days=3, fail_rate=0.2, seed=3)
    scenario = generate_market(spec)
    bad = pl.DataFrame({
        "trade_id": ["bad-1", "bad-2"], "trade_date": ["2026-01-05", "2026-01-06"],
        "buyer": ["M000", "M001"], "seller": ["M000", "NOBODY"], "security_id": ["X", "Y"],
        "quantity": ["1", "2"], "price": ["1", "2"], "settlement_date": ["", ""],
    })
    scenario = replace(scenario, trades=pl.concat([scenario.trades, bad]))
    node = run_scenario(scenario, data, 1)
    node.store.close()
    return data / LEDGER_FILE


# (table, column, the column that says which block a row belongs to)
TARGETS = [
    ("blocks", "header", "height"),
    ("blocks", "signature", "height"),
    ("submissions", "payload", "height"),
    ("submissions", "signature", "height"),
    ("submissions", "submission_id", "height"),
    ("submissions", "submitter", "height"),
    ("submissions", "kind", "height"),
    ("receipts", "data", "height"),
    ("rejections", "reason", "height"),
    ("state", "value", None),
]


def flip(path: Path, table: str, column: str, row: int, byte: int, copy_to: Path) -> int | None:
    """Change one byte of one value in a copy of the store; returns the row's block height."""
    copy_to.write_bytes(path.read_bytes())
    db = sqlite3.connect(copy_to)
    rows = db.execute(f"SELECT rowid, {column}, {'height' if table != 'state' else 'NULL'} FROM {table}").fetchall()
    rowid, value, height = rows[row % len(rows)]
    new: bytes | str
    if isinstance(value, bytes):
        raw = bytearray(value)
        raw[byte % len(raw)] ^= 0x01
        new = bytes(raw)
    else:
        text = str(value)
        i = byte % len(text)
        new = text[:i] + ("Q" if text[i] != "Q" else "R") + text[i + 1:]
    db.execute(f"UPDATE {table} SET {column} = ? WHERE rowid = ?", (new, rowid))
    db.commit()
    db.close()
    return height


@settings(max_examples=40, deadline=None)
@given(target=st.sampled_from(TARGETS), row=st.integers(0, 10_000), byte=st.integers(0, 10_000))
def test_any_changed_byte_is_caught_at_its_block(ledger: Path, tmp_path_factory, target, row, byte) -> None:
    table, column, _ = target
    copy = tmp_path_factory.mktemp("t") / LEDGER_FILE
    height = flip(ledger, table, column, row, byte, copy)
    store = SqliteStore(copy)
    report = verify_store(store)
    store.close()
    assert not report.verified
    if height is not None:
        assert report.first_bad_height == height, report.reason
    else:
        # head state rows belong to the last block that changed balances or positions
        good = SqliteStore(ledger)
        assert report.first_bad_height == good.state_rows()[0]
        good.close()
    assert report.reason


def test_an_untouched_ledger_verifies(ledger: Path) -> None:
    store = SqliteStore(ledger)
    report = verify_store(store)
    assert report.verified and report.height == store.head_height()
    store.close()


def test_a_removed_block_breaks_the_chain(ledger: Path, tmp_path: Path) -> None:
    copy = tmp_path / LEDGER_FILE
    copy.write_bytes(ledger.read_bytes())
    db = sqlite3.connect(copy)
    db.execute("DELETE FROM blocks WHERE height = 3")
    db.commit()
    db.close()
    store = SqliteStore(copy)
    report = verify_store(store)
    assert not report.verified and report.first_bad_height == 3
