"""The direction of every figure on a generated market, as practice reports it.

DTCC reported clearing-fund requirements down about 29% after the US moved from T+2 to T+1, and
CNS netting removes about 98% of the value to settle: shorter cycles lower the CCP's exposure;
atomic settlement loses netting and needs more pre-funding. The figures are computed from the
trades, so another seed gives other numbers.
"""

from __future__ import annotations

import json

import pytest

from clearhouse.analysis.regimes import (
    Comparison,
    RegimeResult,
    compare,
    comparison_json,
    prepare_flow,
    standard_regimes,
)
from clearhouse.market.synthetic import MarketSpec, generate_market


def run(seed: int = 11, lendable: float = 0.2) -> Comparison:
    scenario = generate_market(MarketSpec(members=20, securities=50, trades=20_000, days=5, seed=seed))
    return compare(prepare_flow(scenario, seed=seed), standard_regimes(60), seed=seed,
                   lendable_share=lendable)


@pytest.fixture(scope="module")
def market() -> Comparison:
    return run()


def figures(c: Comparison) -> dict[str, RegimeResult]:
    return {r.regime.name: r for r in c.results}


def test_netting_daily_nets_most_intraday_less_atomic_nothing(market: Comparison) -> None:
    r = figures(market)
    t2, t1, t0 = r["T+2"].netting, r["T+1"].netting, r["T+0"].netting
    intraday, atomic = r["Intraday 60 min"].netting, r["Atomic"].netting
    assert t2.net_value == t1.net_value == t0.net_value  # the same trade day is netted
    assert t2.reduction_pct > intraday.reduction_pct > atomic.reduction_pct == 0.0
    assert t2.payment_reduction_pct > intraday.payment_reduction_pct > 0.0
    assert t2.payment_reduction_pct > 50.0  # fewer trades per member than CNS sees: less than 98 %
    assert atomic.net_payment_value == atomic.gross_value == t2.gross_value


def test_prefunding_rises_as_netting_is_lost(market: Comparison) -> None:
    r = figures(market)
    daily = r["T+2"].prefunding.total
    assert daily == r["T+1"].prefunding.total == r["T+0"].prefunding.total
    assert r["Atomic"].prefunding.total > r["Intraday 60 min"].prefunding.total > daily
    assert r["Atomic"].prefunding.cash_total > r["T+2"].prefunding.cash_total
    assert r["Atomic"].prefunding.securities_total > r["T+2"].prefunding.securities_total
    # no member needs less under atomic settlement than under a daily batch
    atomic = r["Atomic"].prefunding
    assert ((atomic.cash + atomic.securities) >= r["T+2"].prefunding.cash + r["T+2"].prefunding.securities).all()


def test_shorter_cycles_lower_exposure_and_margin(market: Comparison) -> None:
    r = figures(market)
    order = ["T+2", "T+1", "T+0", "Intraday 60 min"]
    rc = [r[n].exposure.value_seconds for n in order]
    margin = [r[n].exposure.margin_average for n in order]
    assert rc == sorted(rc, reverse=True) and len(set(rc)) == 4
    assert margin == sorted(margin, reverse=True) and len(set(margin)) == 4
    assert r["Atomic"].exposure.value_seconds == r["Atomic"].exposure.margin_peak == 0
    cut = 1 - r["T+1"].exposure.margin_average / r["T+2"].exposure.margin_average
    assert 0.15 < cut < 0.7  # DTCC: clearing fund about 29% lower after T+1
    assert r["T+2"].exposure.member_peak.max() >= r["T+0"].exposure.member_peak.max()


def test_atomic_settlement_borrows_more_and_cannot_execute_everything() -> None:
    c = run(lendable=0.02)
    r = figures(c)
    assert r["Atomic"].borrowing.loans > r["Intraday 60 min"].borrowing.loans > r["T+2"].borrowing.loans
    assert r["Atomic"].execution.not_executed > 0
    assert r["Atomic"].execution.not_executed_value > 0
    for name in ("T+2", "T+1", "T+0", "Intraday 60 min"):
        assert r[name].execution.not_executed == 0
    assert r["Atomic"].settlement.fails == 0
    # T+N settle the same daily batches, only later: the same obligations fail
    assert r["T+2"].settlement.fails == r["T+1"].settlement.fails == r["T+0"].settlement.fails > 0
    assert r["T+2"].settlement.settled_value < r["Atomic"].settlement.settled_value


def test_figures_are_computed_deterministic_and_json_ready(market: Comparison) -> None:
    body = comparison_json(market)
    assert [x["regime"] for x in body["regimes"]] == ["T+2", "T+1", "T+0", "Intraday 60 min", "Atomic"]
    assert body["trades"] == 20_000 and body["timestamps_generated"] == 20_000
    json.dumps(body)
    again = comparison_json(run())
    assert again == body
    other = comparison_json(run(seed=12))
    for key in ("netting", "prefunding", "exposure"):
        assert other["regimes"][0][key] != body["regimes"][0][key]
