"""Exact netting sums, and the trade-id index's collision handling."""

from __future__ import annotations

import numpy as np
import polars as pl
from hypothesis import given
from hypothesis import strategies as st

from clearhouse.clearing.idindex import IdIndex, hash_ids
from clearhouse.clearing.netting import net_trades
from clearhouse.core.exact import exact_bincount


@given(st.lists(st.tuples(st.integers(0, 4), st.integers(-(2**50), 2**50)), max_size=200))
def test_exact_bincount_matches_python_ints(pairs) -> None:
    keys = np.array([k for k, _ in pairs], dtype=np.int64)
    values = np.array([v for _, v in pairs], dtype=np.int64)
    expected = [sum(v for k, v in pairs if k == b) for b in range(5)]
    assert exact_bincount(keys, values, 5).tolist() == expected


def test_netting_of_large_values_is_exact() -> None:
    n = 1000
    value = np.full(n, 10**15 - 1, dtype=np.int64)
    nets = net_trades(
        np.zeros(n, np.int64), np.ones(n, np.int64), np.zeros(n, np.int64), np.ones(n, np.int64),
        value, np.zeros(n, np.int64), 2, 1, np.zeros(1, np.int64), 1,
    )
    assert nets.cash.tolist() == [-(10**15 - 1) * n, (10**15 - 1) * n]
    assert nets.gross_value.tolist() == [2 * n * (10**15 - 1)]


def test_index_confirms_hash_hits_against_the_text() -> None:
    index = IdIndex()
    ids = pl.Series(["a", "b", "c"])
    index.insert(ids, hash_ids(ids), np.array([1, 2, 3], dtype=np.uint64))
    # force a collision: a new id given the same hash as "a" is not found
    fake = pl.Series(["zzz"])
    found, _ = index.lookup(fake, hash_ids(pl.Series(["a"])))
    assert not found.any()
    found, body = index.lookup(pl.Series(["c", "a", "q"]), hash_ids(pl.Series(["c", "a", "q"])))
    assert found.tolist() == [True, True, False]
    assert body[:2].tolist() == [3, 1]


def test_index_survives_many_merges() -> None:
    index = IdIndex()
    all_ids = []
    for k in range(20):
        ids = pl.Series([f"id{k}-{i}" for i in range(k * 7 + 1)])
        index.insert(ids, hash_ids(ids), np.arange(len(ids), dtype=np.uint64))
        all_ids.extend(ids.to_list())
    probe = pl.Series(all_ids + ["absent-1", "absent-2"])
    found, _ = index.lookup(probe, hash_ids(probe))
    assert found.sum() == len(all_ids) and not found[-2:].any()
