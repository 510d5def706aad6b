"""Index of accepted trade ids for idempotency: a log-structured set of sorted uint64 runs.

Each accepted id is kept as (64-bit hash, body hash, row); look-ups are binary searches over a
few sorted runs and inserts merge runs of similar size, so a day of millions of ids costs
O(n log n) in total. A hash hit is confirmed against the id text itself, so a hash collision can
never make a new trade look like an old one. Imports clearhouse.core only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

ID_HASH_SEED = 0x636C656172686F75


def hash_ids(ids: pl.Series) -> np.ndarray:
    return ids.hash(ID_HASH_SEED).to_numpy()


@dataclass(slots=True)
class _Run:
    hashes: np.ndarray  # uint64, sorted
    bodies: np.ndarray  # uint64
    rows: np.ndarray  # int64, global row of the accepted trade


class IdIndex:
    """Accepted trade ids with their body hashes."""

    def __init__(self) -> None:
        self._runs: list[_Run] = []
        self._ids: list[pl.Series] = []
        self._starts: list[int] = []
        self.size = 0

    def lookup(self, ids: pl.Series, hashes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """For each id: (found, body hash of the accepted trade with that id)."""
        found = np.zeros(len(hashes), dtype=bool)
        bodies = np.zeros(len(hashes), dtype=np.uint64)
        for run in self._runs:
            pos = np.searchsorted(run.hashes, hashes)
            pos_c = np.minimum(pos, len(run.hashes) - 1)
            hit = (pos < len(run.hashes)) & (run.hashes[pos_c] == hashes) & ~found
            for i in np.flatnonzero(hit):
                # confirm every hash hit against the stored text (equal hashes may sit side by side)
                j = int(pos[i])
                while j < len(run.hashes) and run.hashes[j] == hashes[i]:
                    if self._id_at(int(run.rows[j])) == ids[int(i)]:
                        found[i] = True
                        bodies[i] = run.bodies[j]
                        break
                    j += 1
        return found, bodies

    def _id_at(self, row: int) -> str:
        k = int(np.searchsorted(np.asarray(self._starts), row, side="right")) - 1
        return str(self._ids[k][row - self._starts[k]])

    def insert(self, ids: pl.Series, hashes: np.ndarray, bodies: np.ndarray) -> None:
        n = len(hashes)
        if n == 0:
            return
        rows = np.arange(self.size, self.size + n, dtype=np.int64)
        self._ids.append(ids)
        self._starts.append(self.size)
        self.size += n
        order = np.argsort(hashes, kind="stable")
        self._runs.append(_Run(hashes[order], bodies[order], rows[order]))
        while len(self._runs) > 1 and len(self._runs[-2].hashes) <= 2 * len(self._runs[-1].hashes):
            b, a = self._runs.pop(), self._runs.pop()
            h = np.concatenate([a.hashes, b.hashes])
            order = np.argsort(h, kind="stable")
            self._runs.append(
                _Run(h[order], np.concatenate([a.bodies, b.bodies])[order],
                     np.concatenate([a.rows, b.rows])[order])
            )
