"""A seeded synthetic market: members, securities, opening holdings and cash, and trades.

Members have a heavy-tailed (Pareto) activity share and securities a heavy-tailed (Zipf)
liquidity share, as on real exchanges where a few brokers and a few names carry most of the
flow. Prices scatter around each security's reference price at a one-cent tick. Opening
holdings and cash are sized from each member's own net obligations so that, with every member
funded, everything would settle; a chosen share of (member, security) pairs is then under-funded
so that about ``fail_rate`` of the net settlement instructions fail (directly or because the CCP
cannot pass on what it did not receive). The CCP gets own liquid funds (its capital and default
fund, in central-bank money) to pay deliverers when receivers fail, as real CCPs must hold.
Everything is drawn from one ``numpy`` generator.
Imports clearhouse.core, clearhouse.clearing and clearhouse.cycle.scenario only.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import polars as pl

from clearhouse.core.calendar import BusinessCalendar, day_number
from clearhouse.cycle.scenario import Scenario


@dataclass(frozen=True, slots=True)
class MarketSpec:
    """What to generate.

    Attributes:
        members, securities, trades, days: sizes; trades spread over ``days`` business days.
        start: first trade date (moved to the next business day if it is not one).
        cycle_days: N of T+N, used to size funding per settlement date.
        fail_rate: share of net instructions meant to fail, about (0 funds everyone).
        ccp_liquidity_pct: the CCP's own liquid funds, as a share of an average day's gross value.
        currency: the market's currency.
        seed: the only source of randomness.
    """

    members: int = 40
    securities: int = 300
    trades: int = 300_000
    days: int = 5
    start: dt.date = dt.date(2026, 1, 5)
    cycle_days: int = 2
    fail_rate: float = 0.02
    ccp_liquidity_pct: float = 0.05
    currency: str = "AUD"
    seed: int = 7


def _price_text(cents: pl.Expr) -> pl.Expr:
    return (cents // 100).cast(pl.String) + "." + (cents % 100).cast(pl.String).str.zfill(2)


def _net_need(member: np.ndarray, key2: np.ndarray, day: np.ndarray, amount: np.ndarray,
              n_members: int, n2: int) -> np.ndarray:
    """Largest cumulative net outflow per (member, key2) across settlement days (>= 0)."""
    days, code = np.unique(day, return_inverse=True)
    flat = (code * n_members + member) * n2 + key2
    per_day = np.bincount(flat, weights=amount, minlength=len(days) * n_members * n2)
    per_day = per_day.reshape(len(days), n_members * n2)
    running = np.cumsum(per_day, axis=0)
    return np.maximum(-running.min(axis=0), 0).reshape(n_members, n2)


def generate_market(spec: MarketSpec) -> Scenario:
    rng = np.random.default_rng(spec.seed)
    m, s, n = spec.members, spec.securities, spec.trades
    members = [f"M{i:03d}" for i in range(m)]
    isins = [f"AU{rng.integers(10**9, 10**10):010d}" for _ in range(s)]
    isins = [f"{isin[:11]}{i % 10}" if isins.count(isin) > 1 else isin for i, isin in enumerate(isins)]
    lot = np.where(rng.random(s) < 0.1, 100, 1).astype(np.int64)
    ref_cents = np.maximum(np.round(np.exp(rng.normal(3.0, 1.0, s)) * 100), 5).astype(np.int64)
    activity = rng.pareto(1.3, m) + 0.05
    activity /= activity.sum()
    liquidity = 1.0 / np.arange(1, s + 1) ** 1.1
    liquidity = rng.permutation(liquidity / liquidity.sum())

    calendar = BusinessCalendar.of()
    first = calendar.add_business_days(spec.start, 0)
    trade_days = np.array(
        [day_number(calendar.add_business_days(first, k)) for k in range(spec.days)], dtype=np.int64
    )
    day = trade_days[rng.integers(0, spec.days, n)]
    buyer = rng.choice(m, n, p=activity)
    seller = rng.choice(m, n, p=activity)
    clash = buyer == seller
    seller[clash] = (buyer[clash] + 1 + rng.integers(0, m - 1, int(clash.sum()))) % m
    sec = rng.choice(s, n, p=liquidity)
    lots = np.maximum(np.round(rng.lognormal(np.log(400), 1.0, n) / lot[sec]), 1).astype(np.int64)
    qty = lots * lot[sec]
    cents = np.maximum(np.round(ref_cents[sec] * (1 + rng.normal(0, 0.01, n))), 1).astype(np.int64)
    sd = calendar.add_business_days_vec(day, spec.cycle_days)

    trades = pl.DataFrame(
        {"n": np.arange(n), "day": day, "b": buyer, "s": seller, "sec": sec, "qty": qty,
         "cents": cents}
    ).select(
        trade_id=pl.lit("T") + pl.col("n").cast(pl.String).str.zfill(9),
        trade_date=pl.col("day").cast(pl.Date).dt.to_string("%Y-%m-%d"),
        buyer=pl.col("b").replace_strict(list(range(m)), members, return_dtype=pl.String),
        seller=pl.col("s").replace_strict(list(range(m)), members, return_dtype=pl.String),
        security_id=pl.col("sec").replace_strict(list(range(s)), isins, return_dtype=pl.String),
        quantity=pl.col("qty").cast(pl.String),
        price=_price_text(pl.col("cents")),
        settlement_date=pl.lit(""),
    )

    # funding: what each member must deliver / pay at worst across settlement dates
    both = np.concatenate
    who, what = both([buyer, seller]), both([sec, sec])
    when = both([sd, sd])
    need_sec = _net_need(who, what, when, both([qty, -qty]).astype(np.float64), m, s)
    value = qty * cents
    need_cash = _net_need(who, np.zeros(2 * n, np.int64), when,
                          both([-value, value]).astype(np.float64), m, 1)[:, 0]
    short = (need_sec > 0) & (rng.random((m, s)) < spec.fail_rate / 2)
    holding = np.where(short, np.floor(need_sec * rng.uniform(0.0, 0.9, (m, s))),
                       need_sec + np.round(rng.uniform(0, 0.5, (m, s)) * need_sec))
    holding = np.maximum(holding, 0).astype(np.int64)
    cash = (need_cash * 1.25 + rng.uniform(1e6, 5e6, m) * 100).astype(np.int64)

    ccp_cash = int(float(value.sum()) / spec.days * spec.ccp_liquidity_pct)
    cash_owners = [*members, "CCP"]
    cash_amounts = [*cash.tolist(), ccp_cash]
    hm, hs = np.nonzero(holding)
    return Scenario(
        participants=pl.DataFrame({"participant_id": members,
                                   "name": [f"Member {i}" for i in range(m)]}),
        securities=pl.DataFrame({"security_id": isins, "currency": [spec.currency] * s,
                                 "lot_size": [str(x) for x in lot]}),
        holdings=pl.DataFrame({
            "participant_id": [members[i] for i in hm],
            "security_id": [isins[j] for j in hs],
            "quantity": [str(int(holding[i, j])) for i, j in zip(hm, hs, strict=True)],
        }),
        cash=pl.DataFrame({
            "participant_id": cash_owners,
            "currency": [spec.currency] * len(cash_owners),
            "amount": [f"{c // 100}.{c % 100:02d}" for c in cash_amounts],
        }),
        trades=trades,
    )
