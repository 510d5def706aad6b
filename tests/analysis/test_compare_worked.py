"""Every figure of the regime comparison on small hand-built trade sets, answers worked by hand.

Members A, B, C; securities X (reference price 10.00) and Y (5.00), AUD, so one unit of X is
worth 1,000 cents. Amounts below are in cents. 2026-01-05 is a Monday, 2026-01-08 a Thursday.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl
import pytest

from clearhouse.analysis.regimes import (
    CUTOFF,
    DAY,
    MARGIN_RATE,
    Comparison,
    PricePath,
    Regime,
    RegimeResult,
    TradeFlow,
    compare,
    generate_times,
    parse_times,
    regime_json,
    settlement_times,
    standard_regimes,
)
from clearhouse.core.calendar import BusinessCalendar, day_number
from clearhouse.core.errors import InputError

MEMBERS = ("A", "B", "C")
SECURITIES = ("X", "Y")
REF_CENTS = (1000, 500)
PLENTY = 10**9


def at(stamp: str) -> int:
    """'2026-01-08 10:10' as seconds since 1970-01-01."""
    day, clock = stamp.split()
    h, m = clock.split(":")
    return day_number(dt.date.fromisoformat(day)) * DAY + int(h) * 3600 + int(m) * 60


def make_flow(trades: list[tuple[str, str, str, str, int, int]],
              holdings: dict[tuple[str, str], int] | None = None,
              cash: dict[str, int] | None = None, securities: tuple[str, ...] = SECURITIES) -> TradeFlow:
    """Trades as (time, buyer, seller, security, quantity, price in cents)."""
    trades = sorted(trades, key=lambda t: at(t[0]))
    m = {x: i for i, x in enumerate(MEMBERS)}
    s = {x: i for i, x in enumerate(securities)}
    hold = np.zeros((len(MEMBERS), len(securities)), dtype=np.int64)
    for (member, sec), q in (holdings or {}).items():
        hold[m[member], s[sec]] = q
    money = np.array([(cash or {}).get(x, PLENTY) for x in MEMBERS], dtype=np.int64)

    def col(i: int) -> np.ndarray:
        return np.array([t[i] for t in trades], dtype=np.int64)

    return TradeFlow(
        members=MEMBERS, securities=securities, currency="AUD",
        buyer=np.array([m[t[1]] for t in trades], dtype=np.int64),
        seller=np.array([m[t[2]] for t in trades], dtype=np.int64),
        security=np.array([s[t[3]] for t in trades], dtype=np.int64),
        quantity=col(4), value=col(4) * col(5), time=np.array([at(t[0]) for t in trades], dtype=np.int64),
        holdings=hold, cash=money, ccp_cash=0,
        ref_price_e6=np.array(REF_CENTS[: len(securities)], dtype=np.int64) * 10_000,
        calendar=BusinessCalendar.of(),
    )


# Thursday: A buys 100 X from B at 10.00; B buys 60 X from A at 10.00; C buys 50 X from A at
# 11.00; A buys 20 Y from C at 5.00.
THURSDAY = [
    ("2026-01-08 10:10", "A", "B", "X", 100, 1000),
    ("2026-01-08 10:40", "B", "A", "X", 60, 1000),
    ("2026-01-08 11:20", "C", "A", "X", 50, 1100),
    ("2026-01-08 11:30", "A", "C", "Y", 20, 500),
]


def by_name(comparison: Comparison, name: str) -> RegimeResult:
    return next(r for r in comparison.results if r.regime.name == name)


def test_netting_gross_and_net_obligations_per_regime() -> None:
    # Gross: 4 trades -> 8 obligations, value 2 x (100,000 + 60,000 + 55,000 + 10,000) = 450,000.
    # Daily (one batch): A X -10 / +15,000, A Y +20 / -10,000, B X -40 / +40,000,
    #   C X +50 / -55,000, C Y -20 / +10,000 -> 5 net obligations, net value 130,000 (-71.11 %).
    #   Payments: A +5,000, B +40,000, C -45,000 -> 90,000 (-80 %).
    # Intraday 60 min: 11:00 batch (10:10, 10:40): A X +40 / -40,000, B X -40 / +40,000;
    #   12:00 batch (11:20, 11:30): A X -50 / +55,000, C X +50 / -55,000, A Y +20 / -10,000,
    #   C Y -20 / +10,000 -> 6 obligations, 210,000 (-53.33 %). Payments: 11:00 A -40,000,
    #   B +40,000; 12:00 A +45,000, C -45,000 -> 170,000 (-62.22 %).
    # Atomic: nothing nets: 8 obligations, 450,000, 0 %.
    c = compare(make_flow(THURSDAY), standard_regimes(60))
    for name in ("T+2", "T+1", "T+0"):
        n = by_name(c, name).netting
        assert (n.gross_obligations, n.gross_value) == (8, 450_000)
        assert (n.net_obligations, n.net_value, n.net_payment_value) == (5, 130_000, 90_000)
        assert n.reduction_pct == pytest.approx(100 * (1 - 130_000 / 450_000))
        assert n.payment_reduction_pct == pytest.approx(80.0)
        assert n.count_reduction_pct == pytest.approx(100 * (1 - 5 / 8))
    n = by_name(c, "Intraday 60 min").netting
    assert (n.net_obligations, n.net_value, n.net_payment_value, n.batches) == (6, 210_000, 170_000, 2)
    n = by_name(c, "Atomic").netting
    assert (n.net_obligations, n.net_value, n.net_payment_value) == (8, 450_000, 450_000)
    assert n.reduction_pct == 0.0
    j = regime_json(c, by_name(c, "T+2"))["netting"]
    assert (j["gross_value"], j["net_value"], j["reduction_pct"]) == ("4500.00", "1300.00", 71.11)


def test_prefunding_cash_and_securities_per_member() -> None:
    # Daily, one batch: cash: only C pays (45,000). Securities: A delivers 10 X (10,000), B 40 X
    #   (40,000), C 20 Y (10,000).
    # Intraday: A's payments run -40,000 then +5,000 -> 40,000; C -45,000 -> 45,000. Securities
    #   A X +40 then -10 -> 10 X; B 40 X; C 20 Y -> same 60,000.
    # Atomic, trade by trade: A cash -100,000, -40,000, +15,000, +5,000 -> 100,000; C -55,000,
    #   -45,000 -> 55,000. Securities: B X -100 then -40 -> 100 X (100,000); A X +100, +40, -10
    #   -> 10 X (10,000); C Y -20 (10,000) -> 120,000.
    c = compare(make_flow(THURSDAY), standard_regimes(60))
    p = by_name(c, "T+1").prefunding
    assert p.cash.tolist() == [0, 0, 45_000]
    assert p.securities.tolist() == [10_000, 40_000, 10_000]
    p = by_name(c, "Intraday 60 min").prefunding
    assert p.cash.tolist() == [40_000, 0, 45_000]
    assert p.securities.tolist() == [10_000, 40_000, 10_000]
    p = by_name(c, "Atomic").prefunding
    assert p.cash.tolist() == [100_000, 0, 55_000]
    assert p.securities.tolist() == [10_000, 100_000, 10_000]
    assert (p.cash_total, p.securities_total, p.total) == (155_000, 120_000, 275_000)


def test_borrowing_what_short_sellers_borrow_and_for_how_long() -> None:
    # Holdings: A 10 X; C 100 X and 20 Y. Half of them lendable: pool X 55, Y 10.
    # Thursday as above, then Friday 10:00 B buys 40 X from C at 10.00.
    # Daily: B must deliver 40 X it lacks: borrows 40 X (40,000) at the Thursday trades' batch
    #   and returns them at the Friday trades' batch, where it receives 40 X.
    #   T+0: Thu 17:00 -> Fri 17:00 = 1 day; T+2: Mon -> Tue = 1 day; T+1: Fri -> Mon = 3 days.
    # Intraday 60: borrows at Thu 11:00, returns at Fri 11:00: 1 day.
    # Atomic: 10:10 B cannot sell 100 X (short 100 > pool 55): not executed, unmet 100,000;
    #   10:40 A sells 60 X holding 10: borrows 50 (pool 5); 11:20 A sells 50 X holding 0: short
    #   50 > 5, not executed, unmet 50,000. A never receives X again: its loan (50,000) is
    #   counted until the last trade (Fri 10:00): 23 h 20 min = 84,000 s.
    flow = make_flow(THURSDAY + [("2026-01-09 10:00", "B", "C", "X", 40, 1000)],
                     holdings={("A", "X"): 10, ("C", "X"): 100, ("C", "Y"): 20})
    c = compare(flow, standard_regimes(60), lendable_share=0.5)
    for name, days in (("T+2", 1.0), ("T+1", 3.0), ("T+0", 1.0), ("Intraday 60 min", 1.0)):
        b = by_name(c, name).borrowing
        assert (b.loans, b.borrowers, b.borrowed_value, b.peak_value) == (1, 1, 40_000, 40_000)
        assert b.value_seconds == 40_000 * days * DAY
        assert b.average_days == pytest.approx(days)
        assert (b.at_end_value, b.unmet_value) == (0, 0)
        assert by_name(c, name).settlement.fails == 0
    b = by_name(c, "Atomic").borrowing
    assert (b.loans, b.borrowed_value, b.peak_value, b.at_end_value) == (1, 50_000, 50_000, 50_000)
    assert b.value_seconds == 50_000 * 84_000
    assert b.average_days == pytest.approx(84_000 / DAY)
    assert b.unmet_value == 150_000


def test_exposure_replacement_cost_and_margin_on_a_given_price_path() -> None:
    # Thursday 10:00 A buys 100 X from B (who holds them) at 10.00 (100,000). Marks: Thu 12:00 at 10.00,
    # Thu 18:00 at 9.00, Fri 12:00 at 12.00; the horizon ends Sat 00:00.
    # T+1 settles Fri 17:00, so all three marks see the trade:
    #   Thu 12:00: A 100 x 1,000 - 100,000 = 0, B 0 -> 0
    #   Thu 18:00: A 90,000 - 100,000 = -10,000 -> A costs 10,000 to replace; B gains -> 0
    #   Fri 12:00: A +20,000 -> 0; B -120,000 + 100,000 -> 20,000
    #   weights 6 h, 18 h, 12 h: 10,000 x 64,800 + 20,000 x 43,200 = 1,512,000,000 cent-seconds
    #   = 17,500 cent-days. Margin: 4.66 % of |100| x price for each of A and B:
    #   9,320, 8,388, 11,184; time-weighted average 1,228,003,200 / 129,600 = 9,475.33 -> 9,475.
    # T+0 settles Thu 17:00: only the 12:00 mark sees it (replacement 0, margin 9,320).
    flow = make_flow([("2026-01-08 10:00", "A", "B", "X", 100, 1000)], holdings={("B", "X"): 100},
                     securities=("X",))
    path = PricePath(times=np.array([at("2026-01-08 12:00"), at("2026-01-08 18:00"), at("2026-01-09 12:00")]),
                     prices=np.array([[1000.0, 900.0, 1200.0]]), end=at("2026-01-10 00:00"))
    c = compare(flow, [Regime("T+1", "daily", cycle_days=1), Regime("T+0", "daily"),
                       Regime("Atomic", "atomic")], path=path)
    e = by_name(c, "T+1").exposure
    assert e.replacement.tolist() == [0, 10_000, 20_000]
    assert e.value_seconds == 1_512_000_000
    assert e.peak == 20_000
    assert e.member_peak.tolist() == [10_000, 20_000, 0]
    assert MARGIN_RATE == pytest.approx(0.0466)
    assert e.margin.tolist() == [9_320, 8_388, 11_184]
    assert (e.margin_peak, e.margin_average) == (11_184, 9_475)
    j = regime_json(c, by_name(c, "T+1"))["exposure"]
    assert j["replacement_cost_value_days"] == "175.00"
    assert j["largest"] == [{"member": "B", "peak": "200.00", "at": "2026-01-09T12:00:00"},
                            {"member": "A", "peak": "100.00", "at": "2026-01-08T18:00:00"}]
    e = by_name(c, "T+0").exposure
    assert (e.replacement.tolist(), e.margin.tolist()) == ([0, 0, 0], [9_320, 0, 0])
    e = by_name(c, "Atomic").exposure
    assert (e.value_seconds, e.margin_peak) == (0, 0)


def test_settlement_settled_value_fail_rate_and_failed_value() -> None:
    # Monday: A buys 100 X from B at 10.00 (B holds only 30 X, nothing to borrow); C buys 10 Y
    # from A at 5.00 (A holds 10 Y). Batch: B's delivery fails (insufficient securities), so
    # the CCP cannot deliver to A (linked); the Y trade settles: 2 x 5,000 = 10,000.
    # Fails 2 of 4 due (50 %), failed value 100,000 + 100,000. T+0 retries them at Tuesday's
    # batch (the horizon runs to T+1's settlement date): 6 instructions presented, the fails
    # are not counted again, and both are still open at the end (200,000).
    flow = make_flow([("2026-01-05 10:00", "A", "B", "X", 100, 1000),
                      ("2026-01-05 11:00", "C", "A", "Y", 10, 500)],
                     holdings={("B", "X"): 30, ("A", "Y"): 10})
    c = compare(flow, [Regime("T+1", "daily", cycle_days=1), Regime("T+0", "daily")], lendable_share=0.0)
    for name, presented in (("T+0", 6), ("T+1", 4)):
        s = by_name(c, name).settlement
        assert (s.due, s.instructions, s.settled, s.fails) == (4, presented, 2, 2)
        assert (s.settled_value, s.failed_value) == (10_000, 200_000)
        assert s.fail_rate_pct == 50.0
        assert s.by_reason == {"insufficient_securities": 1, "linked_instruction_failed": 1}
        assert (s.open_at_end, s.open_at_end_value) == (2, 200_000)
        assert by_name(c, name).borrowing.unmet_value == 70_000  # 70 X B could not borrow


def test_execution_trades_that_cannot_execute_when_pre_funded() -> None:
    # B holds 100 X; half is lendable (pool 50). A has 500.00, C plenty.
    # 10:00 A buys 100 X from B (1,000.00): A lacks the cash -> not executed.
    # 10:30 C buys 10 X from B: executes (B holds 90).
    # 11:00 C buys 200 X from B: short 110 > pool 50 -> not executed.
    # 11:30 C buys 130 X from B: borrows 40, executes.
    # Executed 2; not executed 2 (one for cash, one for securities), 300,000 of value;
    # settled value 2 x (10,000 + 130,000) = 280,000. Netted regimes execute everything.
    flow = make_flow([("2026-01-05 10:00", "A", "B", "X", 100, 1000),
                      ("2026-01-05 10:30", "C", "B", "X", 10, 1000),
                      ("2026-01-05 11:00", "C", "B", "X", 200, 1000),
                      ("2026-01-05 11:30", "C", "B", "X", 130, 1000)],
                     holdings={("B", "X"): 100}, cash={"A": 50_000}, securities=("X",))
    c = compare(flow, [Regime("T+0", "daily"), Regime("Atomic", "atomic")], lendable_share=0.5)
    x = by_name(c, "Atomic").execution
    assert (x.trades, x.executed, x.not_executed) == (4, 2, 2)
    assert (x.no_cash, x.no_securities, x.not_executed_value) == (1, 1, 300_000)
    s = by_name(c, "Atomic").settlement
    assert (s.settled, s.settled_value, s.fails) == (4, 280_000, 0)
    assert by_name(c, "Atomic").borrowing.borrowed_value == 40_000
    assert by_name(c, "T+0").execution.not_executed == 0


def test_settlement_times_of_each_regime() -> None:
    # A trade on Friday 2026-01-09 at 16:40: T+2 settles Tuesday 17:00, T+1 Monday 17:00, T+0
    # Friday 17:00; a 45-minute intraday window ends 17:15, capped at the 17:00 cut-off; a
    # 60-minute window at 17:00; atomic at execution.
    flow = make_flow([("2026-01-09 16:40", "A", "B", "X", 1, 1000)], securities=("X",))
    expect = {
        Regime("T+2", "daily", cycle_days=2): "2026-01-13 17:00",
        Regime("T+1", "daily", cycle_days=1): "2026-01-12 17:00",
        Regime("T+0", "daily"): "2026-01-09 17:00",
        Regime("i45", "intraday", batch_minutes=45): "2026-01-09 17:00",
        Regime("i60", "intraday", batch_minutes=60): "2026-01-09 17:00",
        Regime("i30", "intraday", batch_minutes=30): "2026-01-09 17:00",
        Regime("i15", "intraday", batch_minutes=15): "2026-01-09 16:45",
        Regime("Atomic", "atomic"): "2026-01-09 16:40",
    }
    for regime, when in expect.items():
        assert settlement_times(flow, regime).tolist() == [at(when)], regime.name
    assert CUTOFF == 17 * 3600


def test_timestamps_parsed_or_generated() -> None:
    text = pl.Series(["10:30", "2026-01-05T09:15:30Z", "", "2026-01-05 16:59:59.250+10:00"])
    dates = pl.Series(["2026-01-05"] * 4)
    ids = pl.Series(["t1", "t2", "t3", "t4"])
    assert parse_times(text, dates, ids).tolist() == [37_800, 33_330, -1, 61_199]
    for bad, message in (("2026-01-06T10:00", "not on its trade date"), ("17:00", "cut-off"),
                         ("25:00", "cannot read"), ("noon", "cannot read")):
        with pytest.raises(InputError, match=message):
            parse_times(pl.Series([bad]), pl.Series(["2026-01-05"]), pl.Series(["t9"]))
    times = generate_times(10_000, seed=3)
    assert times.min() >= 10 * 3600 and times.max() < 16 * 3600
    assert np.array_equal(times, generate_times(10_000, seed=3))
    assert not np.array_equal(times, generate_times(10_000, seed=4))
    # U-shaped: the first and last hour of the session are busier than the middle hours
    hours = np.bincount((times - 10 * 3600) // 3600, minlength=6)
    assert hours[0] > hours[2] and hours[5] > hours[3]
