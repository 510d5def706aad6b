"""Novation and multilateral netting, vectorised and exact.

Novation turns each accepted trade into two obligations facing the CCP: the buyer receives the
quantity and pays the value, the seller delivers the quantity and receives the value. Netting
sums them per (member, security, settlement date), with each security's cash beside it; a
member's one payment per (currency, date) is the sum of its positions' cash. Sums are exact
int64 (``clearhouse.core.exact``). Imports clearhouse.core only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from clearhouse.core.errors import invariant
from clearhouse.core.exact import exact_bincount

DENSE_BINS_MAX = 50_000_000


@dataclass(frozen=True, slots=True)
class NetPositions:
    """Net positions, one row per (settlement day, member, security) with anything to settle.

    Attributes:
        member, security, settlement_day: keys (int64), sorted by settlement day, member, security.
        quantity: > 0 the member receives, < 0 it delivers.
        cash: minor units in the security's currency, > 0 the member receives.
        gross_obligations: novated obligations netted (two per trade).
        gross_value: sum of the obligations' cash values, minor units per currency index.
    """

    member: np.ndarray
    security: np.ndarray
    settlement_day: np.ndarray
    quantity: np.ndarray
    cash: np.ndarray
    gross_obligations: int
    gross_value: np.ndarray

    def __len__(self) -> int:
        return len(self.member)


def net_trades(
    buyer: np.ndarray,
    seller: np.ndarray,
    security: np.ndarray,
    quantity: np.ndarray,
    value: np.ndarray,
    settlement_day: np.ndarray,
    n_participants: int,
    n_securities: int,
    security_currency: np.ndarray,
    n_currencies: int,
) -> NetPositions:
    """Novate and net a set of trades (columns of equal length)."""
    invariant(float(value.sum(dtype=np.float64)) * 2 < 9.0e18, "gross value exceeds int64")
    if len(settlement_day) and int(settlement_day.max()) - int(settlement_day.min()) < 400:
        first = int(settlement_day.min())
        days = np.arange(first, int(settlement_day.max()) + 1, dtype=np.int64)
        day_code = settlement_day - first
    else:
        days, day_code = np.unique(settlement_day, return_inverse=True)
    nbins = len(days) * n_participants * n_securities
    base = day_code.astype(np.int64) * n_participants
    buy_key = (base + buyer) * n_securities + security
    sell_key = (base + seller) * n_securities + security
    if nbins <= max(DENSE_BINS_MAX, 4 * len(buyer)):
        # buyers receive the quantity and pay the value; sellers the opposite
        qty = exact_bincount(buy_key, quantity, nbins) - exact_bincount(sell_key, quantity, nbins)
        cash = exact_bincount(sell_key, value, nbins) - exact_bincount(buy_key, value, nbins)
        nz = np.flatnonzero((qty != 0) | (cash != 0))
        qty, cash, key = qty[nz], cash[nz], nz.astype(np.int64)
    else:
        uniq, inv = np.unique(np.concatenate([buy_key, sell_key]), return_inverse=True)
        qty = exact_bincount(inv, np.concatenate([quantity, -quantity]), len(uniq))
        cash = exact_bincount(inv, np.concatenate([-value, value]), len(uniq))
        nz = np.flatnonzero((qty != 0) | (cash != 0))
        qty, cash, key = qty[nz], cash[nz], uniq[nz]
    sec = key % n_securities
    rest = key // n_securities
    member = rest % n_participants
    day = days[rest // n_participants] if len(days) else rest
    gross_value = exact_bincount(
        security_currency[security], value, n_currencies
    ) * 2 if len(security) else np.zeros(n_currencies, dtype=np.int64)
    return NetPositions(
        member=member.astype(np.int64),
        security=sec.astype(np.int64),
        settlement_day=np.asarray(day, dtype=np.int64),
        quantity=qty,
        cash=cash,
        gross_obligations=2 * len(buyer),
        gross_value=gross_value,
    )
