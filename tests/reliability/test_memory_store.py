"""The in-memory and fault-injecting stores: the shared storage suite, and the fault model.

A FaultyStore that injects no fault must behave like any other backend; with faults, a crash may
lose or tear only writes that were never synced, and recovery keeps whole writes in order.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.ledger.storage_suite import StorageSuite

from clearhouse.core.errors import StorageError
from clearhouse.core.hashing import ZERO_DIGEST
from clearhouse.ledger.faulty_store import CrashPoint, FaultyStore
from clearhouse.ledger.memory_store import MemoryStore
from clearhouse.ledger.records import Block, BlockHeader, Submission
from clearhouse.ledger.store import Rejection, StateRow


class TestMemoryStore(StorageSuite):
    def make_store(self, tmp_path: Path) -> MemoryStore:
        return MemoryStore()


class TestFaultyStoreWithoutFaults(StorageSuite):
    def make_store(self, tmp_path: Path) -> FaultyStore:
        return FaultyStore(MemoryStore(), random.Random(0))


def chain(n: int) -> list[Block]:
    """n linked blocks of two submissions each."""
    blocks: list[Block] = []
    prev = ZERO_DIGEST
    for h in range(n):
        subs = (Submission(f"s{h}a", "trades", "M1", bytes([h]) * 5, b"x"),
                Submission(f"s{h}b", "cutoff", "CCP", b"{}", b"y"))
        header = BlockHeader(h, prev, "2026-03-02", f"2026-03-02T07:00:{h:02d}Z", ZERO_DIGEST,
                             ZERO_DIGEST, ZERO_DIGEST, "SEQ")
        blocks.append(Block(header, b"s" * 64, subs))
        prev = header.hash()
    return blocks


def append(store: FaultyStore, block: Block) -> None:
    h = block.height
    store.append(block, [b"r%d" % h, b"q%d" % h], [Rejection(h, f"s{h}a", "t1", "unknown_security")],
                 [StateRow("cash", "M1", "AUD", f"{h}.00")], h)


def assert_prefix_of(store: FaultyStore, blocks: list[Block]) -> None:
    """Whatever survived is exactly a prefix of what was appended, block, receipts and rows alike."""
    head = store.head_height()
    assert [store.block(h) for h in range(head + 1)] == blocks[: head + 1]
    for h in range(head + 1):
        assert store.receipts(h) == [b"r%d" % h, b"q%d" % h]
    assert store.state_rows() == ((head, [StateRow("cash", "M1", "AUD", f"{head}.00")]) if head >= 0 else (-1, []))


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32), synced=st.integers(0, 6), unsynced=st.integers(0, 6))
def test_a_crash_loses_only_unsynced_writes_and_never_part_of_one(seed: int, synced: int, unsynced: int) -> None:
    blocks = chain(synced + unsynced)
    store = FaultyStore(MemoryStore(), random.Random(seed))
    for b in blocks[:synced]:
        append(store, b)
    store.sync()
    for b in blocks[synced:]:
        append(store, b)
    store.crash()
    with pytest.raises(StorageError):
        store.head_height()
    store.recover()
    assert synced - 1 <= store.head_height() <= synced + unsynced - 1
    assert_prefix_of(store, blocks)
    c = store.counts
    assert c.survived + c.lost == unsynced


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32), before=st.integers(0, 4))
def test_a_crash_mid_append_leaves_the_previous_head_intact(seed: int, before: int) -> None:
    blocks = chain(before + 1)
    store = FaultyStore(MemoryStore(), random.Random(seed))
    for b in blocks[:before]:
        append(store, b)
    store.sync()
    store.torn_rate = 1.0
    with pytest.raises(CrashPoint):
        append(store, blocks[before])
    store.recover()
    # the block in flight landed whole or not at all; nothing before it changed
    assert store.head_height() in (before - 1, before)
    assert_prefix_of(store, blocks)


def test_torn_writes_are_found_and_discarded() -> None:
    torn = 0
    for seed in range(200):
        store = FaultyStore(MemoryStore(), random.Random(seed))
        blocks = chain(4)
        for b in blocks:
            append(store, b)
        store.crash()
        store.recover()
        assert_prefix_of(store, blocks)
        torn += store.counts.torn
    assert torn > 0
