"""The storage test suite every LedgerStore backend must pass: subclass and provide ``make_store``.

A backend is done when this whole class passes against it.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from clearhouse.core.errors import StorageError
from clearhouse.core.hashing import ZERO_DIGEST
from clearhouse.cycle.run import run_scenario
from clearhouse.ledger.records import Block, BlockHeader, Submission
from clearhouse.ledger.store import LedgerStore, Rejection, StateRow
from clearhouse.ledger.verify import verify_store
from clearhouse.market.synthetic import MarketSpec, generate_market
from clearhouse.node.node import Node


def _block(height: int, prev: bytes, subs: tuple[Submission, ...]) -> Block:
    header = BlockHeader(height, prev, "2026-03-02", f"2026-03-02T07:00:0{height}Z", ZERO_DIGEST,
                         ZERO_DIGEST, ZERO_DIGEST, "SEQ")
    return Block(header, b"s" * 64, subs)


class StorageSuite:
    """Behaviour every backend shares."""

    def make_store(self, tmp_path: Path) -> LedgerStore:
        raise NotImplementedError

    def test_empty_store(self, tmp_path: Path) -> None:
        store = self.make_store(tmp_path)
        assert store.head_height() == -1
        assert list(store.blocks()) == []
        assert store.state_rows() == (-1, [])
        assert store.submission_height("x") is None
        with pytest.raises(StorageError):
            store.block(0)
        store.close()

    def test_blocks_round_trip_exactly(self, tmp_path: Path) -> None:
        store = self.make_store(tmp_path)
        subs = (Submission("s1", "trades", "A", b"\x00payload\xff", b"sig1"),
                Submission("s2", "cutoff", "CCP", b"{}", b"sig2"))
        b0 = _block(0, ZERO_DIGEST, subs)
        store.append(b0, [b"r1", b"r2"], [Rejection(0, "s1", "t9", "unknown_security")],
                     [StateRow("cash", "A", "AUD", "1.00")], 0)
        b1 = _block(1, b0.header.hash(), ())
        store.append(b1, [], [], None, 1)
        assert store.head_height() == 1
        assert store.block(0) == b0 and store.block(1) == b1
        assert [b.height for b in store.blocks()] == [0, 1]
        assert store.receipts(0) == [b"r1", b"r2"]
        assert store.rejections() == [Rejection(0, "s1", "t9", "unknown_security")]
        assert store.rejections(submission_id="s2") == []
        assert store.rejections(height=0) == [Rejection(0, "s1", "t9", "unknown_security")]
        assert store.submission_height("s2") == 0
        assert store.state_rows() == (0, [StateRow("cash", "A", "AUD", "1.00")])
        assert store.state_rows("B") == (0, [])
        store.close()

    def test_append_is_all_or_nothing(self, tmp_path: Path) -> None:
        store = self.make_store(tmp_path)
        b0 = _block(0, ZERO_DIGEST, ())
        store.append(b0, [], [], [StateRow("cash", "A", "AUD", "1.00")], 0)
        with pytest.raises(StorageError):
            store.append(_block(0, ZERO_DIGEST, ()), [], [], [StateRow("cash", "A", "AUD", "9.00")], 0)
        assert store.head_height() == 0
        assert store.state_rows() == (0, [StateRow("cash", "A", "AUD", "1.00")])
        store.close()

    def test_meta(self, tmp_path: Path) -> None:
        store = self.make_store(tmp_path)
        assert store.get_meta("k") is None
        store.set_meta("k", "v")
        store.set_meta("k", "w")
        assert store.get_meta("k") == "w"
        store.close()

    def test_a_node_runs_a_market_and_reopens_to_the_same_root(self, tmp_path: Path) -> None:
        spec = MarketSpec(members=5, securities=6, trades=2_000, days=2, seed=11)
        node = run_scenario(generate_market(spec), tmp_path / "ref", 1)
        store = self.make_store(tmp_path)
        live = Node(store, node.sequencer_id, node.sequencer_key)
        for block in node.store.blocks():
            for sub in block.submissions:
                live.submit(sub)
            live.seal(dt.date.fromisoformat(block.header.business_date), block.header.timestamp)
        assert live.machine.state_root() == node.machine.state_root()
        report = verify_store(store)
        assert report.verified, report.reason
        reopened = Node.open(store, node.sequencer_id, node.sequencer_key)
        assert reopened.machine.state_root() == node.machine.state_root()
        store.close()
