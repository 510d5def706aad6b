"""DvP models 1, 2 and 3 on the ledger, with the settlement features, through `clearhouse run`.

Worked examples are written out with their outcomes worked by hand; property tests run small
random markets under every model and check conservation, no negative balance, verification of
the whole ledger and, when everyone is funded, that every model ends where gross settlement does.
"""

from __future__ import annotations

import datetime as dt
import json
from collections import defaultdict
from decimal import Decimal
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.conftest import cli, write_scenario

from clearhouse.cycle.report import build_report
from clearhouse.cycle.run import run_scenario
from clearhouse.cycle.scenario import Scenario
from clearhouse.ledger.sqlite_store import SqliteStore
from clearhouse.ledger.verify import verify_store

THREE = "participant_id,name\nA,Broker A\nB,Broker B\nC,Broker C"


def run(scenario: Path, data: Path, *options: str) -> dict[str, Any]:
    code, stdout = cli("run", str(scenario), "--data", str(data), "--json", *options)
    assert code == 0, stdout
    report = json.loads(stdout)
    assert report["ledger"]["verified"] is True
    return report


def securities_of(report: dict[str, Any]) -> dict[tuple[str, str], int]:
    return {(b["participant_id"], b["security_id"]): b["quantity"] for b in report["balances"]["securities"]}


def cash_of(report: dict[str, Any]) -> dict[str, str]:
    return {b["participant_id"]: b["amount"] for b in report["balances"]["cash"]}


# ---------------------------------------------------------------- gridlock

def test_securities_gridlock_settles_in_a_batch_and_fails_trade_by_trade(tmp_path: Path) -> None:
    # A owes B 100 X, B owes C 100 X, C owes A 100 X, all at 10.00 for today; nobody holds any X.
    # Each member can deliver only once it has received: trade by trade (model 1) no trade can
    # go first, so all three fail for lack of securities (the buyers' rows: linked). In a batch
    # (model 2) every delivery is covered by the receipt of the same batch: all three settle and
    # everyone ends as it started. Net (model 3) there is nothing left to settle at all.
    sc = write_scenario(
        tmp_path / "s", participants=THREE,
        securities="security_id,currency,lot_size\nX,AUD,1",
        cash="participant_id,currency,amount\nA,AUD,1000\nB,AUD,1000\nC,AUD,1000",
        trades="""
            trade_id,trade_date,buyer,seller,security_id,quantity,price,settlement_date
            ab,2026-03-02,B,A,X,100,10,2026-03-02
            bc,2026-03-02,C,B,X,100,10,2026-03-02
            ca,2026-03-02,A,C,X,100,10,2026-03-02
        """,
    )
    gross = run(sc, tmp_path / "m1", "--dvp-model", "1")
    assert gross["settlement"]["settled"] == 0 and gross["settlement"]["failed"] == 6
    reasons = sorted((f["participant_id"], f["quantity"], f["reason"]) for f in gross["fails"])
    assert reasons == [
        ("A", -100, "insufficient_securities"), ("A", 100, "linked_instruction_failed"),
        ("B", -100, "insufficient_securities"), ("B", 100, "linked_instruction_failed"),
        ("C", -100, "insufficient_securities"), ("C", 100, "linked_instruction_failed"),
    ]
    assert len(gross["open_fails"]) == 3 and {f["age"] for f in gross["open_fails"]} == {1}
    batch = run(sc, tmp_path / "m2", "--dvp-model", "2")
    assert batch["settlement"]["settled"] == 6 and batch["fails"] == []
    assert cash_of(batch) == {"A": "1000.00", "B": "1000.00", "C": "1000.00"}
    net = run(sc, tmp_path / "m3")
    assert net["net_positions"] == [] and net["fails"] == []


def test_cash_gridlock_settles_in_a_batch_and_fails_trade_by_trade(tmp_path: Path) -> None:
    # A sells its X to B, B its Y to C, C its Z to A, each for 1,000.00; nobody has cash. Each
    # buyer can pay only with the proceeds of its own sale: trade by trade all fail for cash; with
    # net cash at the end of the cycle (model 2) or net batch (model 3) every payment is covered.
    sc = write_scenario(
        tmp_path / "s", participants=THREE,
        securities="security_id,currency,lot_size\nX,AUD,1\nY,AUD,1\nZ,AUD,1",
        holdings="participant_id,security_id,quantity\nA,X,100\nB,Y,100\nC,Z,100",
        trades="""
            trade_id,trade_date,buyer,seller,security_id,quantity,price,settlement_date
            x,2026-03-02,B,A,X,100,10,2026-03-02
            y,2026-03-02,C,B,Y,100,10,2026-03-02
            z,2026-03-02,A,C,Z,100,10,2026-03-02
        """,
    )
    gross = run(sc, tmp_path / "m1", "--dvp-model", "1")
    assert gross["settlement"]["settled"] == 0
    assert {f["reason"] for f in gross["fails"] if f["quantity"] > 0} == {"insufficient_cash"}
    for model, data in (("2", "m2"), ("3", "m3")):
        report = run(sc, tmp_path / data, "--dvp-model", model)
        assert report["fails"] == [] and report["settlement"]["failed"] == 0
        assert securities_of(report) == {("B", "X"): 100, ("C", "Y"): 100, ("A", "Z"): 100}
    optimised = run(sc, tmp_path / "m2o", "--dvp-model", "2", "--optimise")
    assert optimised["fails"] == []
    (figures,) = optimised["optimiser"]
    assert figures["status"] == "optimal" and figures["gap_bps"] == 0
    assert figures["settled_value"] == figures["lp_bound"] == 300000


def test_a_ledger_resumes_only_under_the_rules_it_was_made_with(tmp_path: Path) -> None:
    sc = write_scenario(
        tmp_path / "s", participants=THREE, securities="security_id,currency,lot_size\nX,AUD,1",
        trades="trade_id,trade_date,buyer,seller,security_id,quantity,price\nt,2026-03-02,B,A,X,100,10",
    )
    first = run(sc, tmp_path / "d", "--dvp-model", "2", "--lending")
    again = run(sc, tmp_path / "d", "--dvp-model", "2", "--lending")
    assert again["ledger"] == first["ledger"] and again["settlement_rules"] == {"dvp_model": 2, "lending": True}
    code, _ = cli("run", str(sc), "--data", str(tmp_path / "d"), "--dvp-model", "2", "--json")
    assert code == 2
    code, _ = cli("run", str(sc), "--data", str(tmp_path / "d"), "--json")
    assert code == 2


# ---------------------------------------------------------------- partial settlement

PARTIAL_TRADES = """
    trade_id,trade_date,buyer,seller,security_id,quantity,price,settlement_date,partial_allowed
    t1,2026-03-02,B,A,X,1000,10,2026-03-02,yes
    t2,2026-03-03,A,C,X,300,10,2026-03-04,no
    tail,2026-03-03,A,C,X,0,10,2026-03-05,no
"""


@pytest.mark.parametrize("model", ["1", "2", "3"])
def test_partial_settlement_in_lots_then_recycling_settles_the_rest(tmp_path: Path, model: str) -> None:
    # 1,000 X due from A to B, A holds 730, lot 100: 700 settle (7,000.00), 300 stay open.
    # A buys 300 from C on day 2 for day 3; then the 300 left settle (recycling): on day 3 in a
    # batch, on day 4 trade by trade (A's older delivery is tried before its purchase settles).
    sc = write_scenario(
        tmp_path / "s", participants=THREE,
        securities="security_id,currency,lot_size\nX,AUD,100",
        holdings="participant_id,security_id,quantity\nA,X,730\nC,X,300",
        cash="participant_id,currency,amount\nA,AUD,5000\nB,AUD,20000",
        trades=PARTIAL_TRADES,
    )
    report = run(sc, tmp_path / "d", "--dvp-model", model, "--partial")
    # gross: one instruction A -> B settled in part; net: A's delivery and B's receipt, both in part
    parts = report["partial_settlements"]
    assert [(p["quantity"], p["settled_quantity"], p["settled_cash"]) for p in parts] == (
        [(-1000, -700, "7000.00"), (1000, 700, "-7000.00")] if model == "3" else [(1000, 700, "7000.00")])
    first_fail = [f for f in report["fails"] if f["settlement_date"] == "2026-03-02" and f["participant_id"] == "A"]
    # what stayed open on day 1: 300 (model 1 settled the 700 on arrival, then failed the rest at the run)
    assert [f["quantity"] - f["settled_quantity"] for f in first_fail] == [-300]
    assert report["open_fails"] == [] and report["open_positions"] == 0
    assert securities_of(report) == {("A", "X"): 30, ("B", "X"): 1000}
    assert cash_of(report) == {"A": "12000.00", "B": "10000.00", "C": "3000.00"}
    # without --partial nothing of t1 settles on day 1: A has 730 of 1,000
    whole = run(sc, tmp_path / "w", "--dvp-model", model)
    assert whole["partial_settlements"] == []
    assert {f["settled_quantity"] for f in whole["fails"] if f["settlement_date"] == "2026-03-02"} == {0}
    # a minimum partial value above 7,000.00 keeps the part from settling
    high = run(sc, tmp_path / "h", "--dvp-model", model, "--partial", "--min-partial-value", "700001")
    assert high["partial_settlements"] == []


# ---------------------------------------------------------------- recycling

@pytest.mark.parametrize("model", ["1", "2", "3"])
def test_recycling_settles_once_the_securities_arrive(tmp_path: Path, model: str) -> None:
    # A sells 100 X to B for day 1 holding nothing; C sells A 100 X for day 3. Day 3's run (or
    # day 4's, trade by trade: A's old delivery comes first and fails again) settles A's delivery.
    sc = write_scenario(
        tmp_path / "s", participants=THREE,
        securities="security_id,currency,lot_size\nX,AUD,1",
        holdings="participant_id,security_id,quantity\nC,X,100",
        cash="participant_id,currency,amount\nA,AUD,1000\nB,AUD,1000",
        trades="""
            trade_id,trade_date,buyer,seller,security_id,quantity,price,settlement_date
            ab,2026-03-02,B,A,X,100,5,2026-03-02
            ca,2026-03-02,A,C,X,100,5,2026-03-04
            later,2026-03-02,B,C,X,0,5,2026-03-05
        """,
    )
    report = run(sc, tmp_path / "d", "--dvp-model", model)
    assert report["open_fails"] == [] and report["open_positions"] == 0
    assert securities_of(report) == {("B", "X"): 100}
    assert cash_of(report) == {"A": "1000.00", "B": "500.00", "C": "500.00"}
    days = sorted({f["settlement_date"] for f in report["fails"] if f["participant_id"] == "A"})
    assert days == (["2026-03-02", "2026-03-03", "2026-03-04"] if model == "1" else ["2026-03-02", "2026-03-03"])


# ---------------------------------------------------------------- securities lending

@pytest.mark.parametrize("model", ["1", "2", "3"])
def test_a_borrow_covers_the_shortfall_and_is_returned_with_its_fee(tmp_path: Path, model: str) -> None:
    # A sells 1,000 X at 50.00 to B for today but holds none; L offers 5,000 X at 200 bps a year.
    # A borrows 1,000 (value 50,000.00), delivers; on day 4 it receives 1,000 X bought from C and
    # returns the loan: 3 days at 200 bps a year on 50,000.00 = 8.219..., rounded up to 8.22.
    sc = write_scenario(
        tmp_path / "s", participants=THREE + "\nL,Lender",
        securities="security_id,currency,lot_size\nX,AUD,1",
        holdings="participant_id,security_id,quantity\nL,X,5000\nC,X,1000",
        cash="participant_id,currency,amount\nA,AUD,60000\nB,AUD,60000",
        lenders="participant_id,security_id,quantity,fee_bps\nL,X,5000,200",
        trades="""
            trade_id,trade_date,buyer,seller,security_id,quantity,price,settlement_date
            sale,2026-03-02,B,A,X,1000,50,2026-03-02
            cover,2026-03-03,A,C,X,1000,50,2026-03-05
        """,
    )
    report = run(sc, tmp_path / "d", "--dvp-model", model, "--lending")
    (loan,) = report["loans"]
    assert {k: loan[k] for k in ("lender", "borrower", "security", "quantity", "fee_bps", "value", "lent")} == {
        "lender": "L", "borrower": "A", "security": "X", "quantity": 1000, "fee_bps": 200,
        "value": "50000.00", "lent": "2026-03-02"}
    assert (loan["status"], loan["returned"], loan["fee"]) == ("returned", "2026-03-05", "8.22")
    assert report["fails"] == []
    assert securities_of(report) == {("B", "X"): 1000, ("L", "X"): 5000}
    assert cash_of(report) == {"A": "59991.78", "B": "10000.00", "C": "50000.00", "L": "8.22"}
    # the loan's grant and its return with the fee are in settlement receipts (under the results root)
    store = SqliteStore(tmp_path / "d" / "ledger.sqlite")
    events = [e for h in range(store.head_height() + 1) for raw in store.receipts(h)
              for e in json.loads(raw[4:4 + int.from_bytes(raw[:4], "little")]).get("summary", {}).get("events", [])]
    store.close()
    assert [(e["event"], e["quantity"], e.get("fee")) for e in events if e.get("event", "").startswith("loan")] == [
        ("loan", 1000, None), ("loan_returned", 1000, 822)], events
    # without lending the sale fails until A has the securities
    plain = run(sc, tmp_path / "p", "--dvp-model", model)
    assert plain["loans"] == [] and plain["fails"]


# ---------------------------------------------------------------- auto-collateralisation

COLLATERAL_SCENARIO = {
    "participants": THREE,
    "securities": "security_id,currency,lot_size\nX,AUD,1\nY,AUD,1",
    "holdings": "participant_id,security_id,quantity\nA,X,100\nB,Y,100",
    "cash": "participant_id,currency,amount\nB,AUD,1000\nC,AUD,10000",
    "collateral": "security_id,haircut_pct\nX,20",
}


def test_intraday_credit_against_the_securities_bought_is_repaid_at_the_end_of_the_day(tmp_path: Path) -> None:
    # Trade by trade: B buys 100 X at 50.00 (5,000.00) from A holding 1,000.00. X is eligible at a
    # 20% haircut: the 100 X it receives are worth 4,000.00 as collateral, exactly the shortfall;
    # the central bank lends 4,000.00 and the trade settles. B then sells 100 Y to C for 4,500.00
    # (reported by C, after B's batch) and repays the 4,000.00 at the end of the day.
    sc = write_scenario(
        tmp_path / "s", **COLLATERAL_SCENARIO,
        trades="""
            trade_id,trade_date,buyer,seller,security_id,quantity,price,settlement_date,submitter
            bx,2026-03-02,B,A,X,100,50,2026-03-02,B
            cy,2026-03-02,C,B,Y,100,45,2026-03-02,C
        """,
    )
    report = run(sc, tmp_path / "d", "--dvp-model", "1", "--auto-collateral")
    assert report["fails"] == []
    (credit,) = report["credit"]
    assert {k: credit[k] for k in ("member", "granted", "repaid", "outstanding", "status")} == {
        "member": "B", "granted": "4000.00", "repaid": "4000.00", "outstanding": "0.00", "status": "repaid"}
    assert cash_of(report) == {"A": "5000.00", "B": "500.00", "C": "5500.00"}
    # without credit the purchase waits for the end-of-day run, after B's sale has paid in
    without = run(sc, tmp_path / "n", "--dvp-model", "1")
    assert without["credit"] == [] and without["fails"] == []


def test_credit_not_repaid_is_reported_and_its_collateral_goes_to_the_central_bank(tmp_path: Path) -> None:
    # As above without B's sale: at the end of the day B has no cash to repay the 4,000.00. The
    # failure is reported and the credit stays as an overdue loan of the central bank, which takes
    # the pledged X: 4,000.00 / (50.00 x 80%) = 100 units.
    sc = write_scenario(
        tmp_path / "s", **COLLATERAL_SCENARIO,
        trades="""
            trade_id,trade_date,buyer,seller,security_id,quantity,price,settlement_date
            bx,2026-03-02,B,A,X,100,50,2026-03-02
        """,
    )
    for model in ("1", "2", "3"):
        data = tmp_path / f"d{model}"
        report = run(sc, data, "--dvp-model", model, "--auto-collateral")
        (credit,) = report["credit"]
        assert (credit["status"], credit["outstanding"], credit["not_repaid_on"]) == ("overdue", "4000.00",
                                                                                      "2026-03-02")
        assert credit["collateral"] == [["X", 100]]
        assert securities_of(report) == {("B", "Y"): 100}
        assert cash_of(report) == {"A": "5000.00", "C": "10000.00"}


# ---------------------------------------------------------------- fails lifecycle

def test_cancellation_after_n_days_and_buy_in_flag(tmp_path: Path) -> None:
    # A never has the 100 X it sold. Buy-in is flagged after 2 failing runs; under the gross
    # models the instruction is cancelled after 3; the net position (model 3) is never cancelled.
    sc = write_scenario(
        tmp_path / "s", participants=THREE,
        securities="security_id,currency,lot_size\nX,AUD,1",
        cash="participant_id,currency,amount\nB,AUD,1000",
        trades="""
            trade_id,trade_date,buyer,seller,security_id,quantity,price,settlement_date
            ab,2026-03-02,B,A,X,100,5,2026-03-02
            end,2026-03-02,B,C,X,0,5,2026-03-09
        """,
    )
    for model in ("1", "2"):
        report = run(sc, tmp_path / f"g{model}", "--dvp-model", model, "--cancel-after", "3", "--buy-in-after", "2")
        (flag,) = report["buy_ins"]
        assert (flag["seller"], flag["runs"], flag["date"], flag["cash"]) == ("A", 2, "2026-03-03", "500.00")
        (cancelled,) = report["cancellations"]
        assert (cancelled["seller"], cancelled["runs"], cancelled["date"]) == ("A", 3, "2026-03-04")
        assert cancelled["reason"] == "insufficient_securities"
        assert sorted({f["settlement_date"] for f in report["fails"]}) == ["2026-03-02", "2026-03-03", "2026-03-04"]
        assert report["open_fails"] == [] and cash_of(report) == {"B": "1000.00"}
    net = run(sc, tmp_path / "n", "--buy-in-after", "2")
    (flag,) = net["buy_ins"]
    assert (flag["member"], flag["quantity"], flag["runs"], flag["date"]) == ("A", -100, 2, "2026-03-03")
    assert net["cancellations"] == []
    (still,) = [f for f in net["open_fails"] if f["participant_id"] == "A"]
    assert (still["age"], still["reason"]) == (6, "insufficient_securities")


# ---------------------------------------------------------------- the optimiser

def test_optimiser_settles_more_than_deselection_and_reports_its_gap(tmp_path: Path) -> None:
    # A has 600.00 and buys 100 X for 500.00 and 100 Y for 400.00: deselection fails both of its
    # payments (all paying instructions of a member short of cash fail), so B and C fail too
    # (linked). The optimiser settles A's X purchase and B's delivery: 1,000.00 of instruction
    # value, proven optimal (gap 0 against the LP bound).
    sc = write_scenario(
        tmp_path / "s", participants=THREE,
        securities="security_id,currency,lot_size\nX,AUD,1\nY,AUD,1",
        holdings="participant_id,security_id,quantity\nB,X,100\nC,Y,100",
        cash="participant_id,currency,amount\nA,AUD,600",
        trades="""
            trade_id,trade_date,buyer,seller,security_id,quantity,price,settlement_date
            x,2026-03-02,A,B,X,100,5,2026-03-02
            y,2026-03-02,A,C,Y,100,4,2026-03-02
        """,
    )
    plain = run(sc, tmp_path / "p")
    assert plain["settlement"]["settled"] == 0
    best = run(sc, tmp_path / "o", "--optimise")
    assert best["settlement"]["settled"] == 2 and best["settlement"]["settled_value"] == "1000.00"
    (figures,) = best["optimiser"]
    assert (figures["status"], figures["settled_value"], figures["gap_bps"]) == ("optimal", 100000, 0)
    assert securities_of(best) == {("A", "X"): 100, ("C", "Y"): 100}


def test_payments_command_settles_a_gridlock_by_offsetting(tmp_path: Path) -> None:
    # A owes B 100, B owes C 100, C owes A 100, nobody has cash: resolved together, no liquidity.
    (tmp_path / "p.csv").write_text("payment_id,payer,payee,currency,amount\n1,A,B,AUD,100\n2,B,C,AUD,100\n"
                                    "3,C,A,AUD,100\n")
    (tmp_path / "c.csv").write_text("participant_id,currency,amount\nA,AUD,0\nB,AUD,0\nC,AUD,0\n")
    code, stdout = cli("payments", str(tmp_path / "p.csv"), "--balances", str(tmp_path / "c.csv"), "--json")
    assert code == 0, stdout
    body = json.loads(stdout)
    assert sorted(body["settled"]) == ["1", "2", "3"] and body["queued"] == []
    assert body["liquidity_used"] == {"AUD": "0.00"}
    assert {b["amount"] for b in body["final_balances"]} == {"0.00"}


# ---------------------------------------------------------------- properties

MEMBERS = ["A", "B", "C", "D"]
SECURITIES = {"X": "AUD", "Y": "AUD", "Z": "USD"}
DAYS = [dt.date(2026, 3, 2), dt.date(2026, 3, 3)]

trade = st.tuples(
    st.sampled_from(MEMBERS), st.sampled_from(MEMBERS), st.sampled_from(sorted(SECURITIES)),
    st.integers(1, 30).map(lambda q: q * 10), st.integers(1, 5_000), st.sampled_from(DAYS),
    st.integers(0, 1), st.booleans(),
).filter(lambda t: t[0] != t[1])
holding = st.integers(0, 300)


def market(trades: list[tuple], holdings: list[int], cash: list[int], lenders: bool) -> Scenario:
    pairs = [(m, s) for m in MEMBERS for s in SECURITIES]
    cash_rows = [(m, c) for m in MEMBERS for c in ("AUD", "USD")]
    frame = pl.DataFrame({
        "trade_id": [f"t{i}" for i in range(len(trades))],
        "trade_date": [t[5].isoformat() for t in trades],
        "buyer": [t[0] for t in trades], "seller": [t[1] for t in trades],
        "security_id": [t[2] for t in trades], "quantity": [str(t[3]) for t in trades],
        "price": [str(Decimal(t[4]) / 100) for t in trades],
        "settlement_date": [(t[5] + dt.timedelta(days=t[6])).isoformat() for t in trades],
        "partial_allowed": ["yes" if t[7] else "" for t in trades],
    })
    strings = dict.fromkeys(("participant_id", "security_id", "quantity", "fee_bps"), pl.String)
    return Scenario(
        participants=pl.DataFrame({"participant_id": MEMBERS, "name": MEMBERS}),
        securities=pl.DataFrame({"security_id": list(SECURITIES), "currency": list(SECURITIES.values()),
                                 "lot_size": ["10"] * len(SECURITIES)}),
        holdings=pl.DataFrame({"participant_id": [p[0] for p in pairs], "security_id": [p[1] for p in pairs],
                               "quantity": [str(h) for h in holdings]}),
        cash=pl.DataFrame({"participant_id": [r[0] for r in cash_rows], "currency": [r[1] for r in cash_rows],
                           "amount": [str(c) for c in cash]}),
        trades=frame,
        lenders=pl.DataFrame({"participant_id": ["D", "C"], "security_id": ["X", "Z"], "quantity": ["200", "100"],
                              "fee_bps": ["50", "10"]}, schema=strings) if lenders else None,
        collateral=pl.DataFrame({"security_id": ["X", "Z"], "haircut_pct": ["10", "2.5"]}),
    )


def check_books(node: Any, scenario: Scenario) -> dict[str, Any]:
    """Conservation per security and currency, no negative balance, a verified ledger."""
    m = node.machine
    opening_sec: dict[str, int] = defaultdict(int)
    for r in scenario.holdings.iter_rows(named=True):
        opening_sec[r["security_id"]] += int(r["quantity"])
    totals = m.sec_bal.sum(axis=0)
    assert {s.id: int(totals[k]) for k, s in enumerate(m.securities) if s.id in SECURITIES} == dict(opening_sec)
    opening_cash = sum(int(r["amount"]) * 100 for r in scenario.cash.iter_rows(named=True))
    credit_out = sum(c.amount for c in m.settlement.collateral.credits)
    assert int(m.cash_bal.sum()) == opening_cash + credit_out
    assert (m.sec_bal >= 0).all() and (m.cash_bal >= 0).all()
    report = verify_store(node.store)
    assert report.verified, report.reason
    return build_report(node, None)


MODEL_SETTINGS = settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.mark.parametrize("model", [1, 2, 3])
@MODEL_SETTINGS
@given(trades=st.lists(trade, min_size=1, max_size=14), holdings=st.lists(holding, min_size=12, max_size=12),
       cash=st.lists(st.integers(0, 3_000), min_size=8, max_size=8), options=st.fixed_dictionaries({
           "optimise": st.booleans(), "partial": st.booleans(), "lending": st.booleans(),
           "auto_collateral": st.booleans(), "buy_in_after_days": st.integers(0, 2),
           "cancel_after_days": st.integers(0, 2)}))
def test_every_model_conserves_and_verifies(tmp_path_factory, model, trades, holdings, cash, options) -> None:
    scenario = market(trades, holdings, cash, lenders=options["lending"])
    node = run_scenario(scenario, tmp_path_factory.mktemp("d"), 0, settlement={"dvp_model": model, **options})
    report = check_books(node, scenario)
    assert report["settlement_rules"]["dvp_model"] == model


@pytest.mark.parametrize("model", [1, 2, 3])
@MODEL_SETTINGS
@given(trades=st.lists(trade, min_size=1, max_size=14), optimise=st.booleans())
def test_funded_every_model_ends_where_gross_settlement_does(tmp_path_factory, model, trades, optimise) -> None:
    rich = 10**7
    scenario = market(trades, [rich] * 12, [rich] * 8, lenders=False)
    node = run_scenario(scenario, tmp_path_factory.mktemp("d"), 0,
                        settlement={"dvp_model": model, "optimise": optimise})
    report = check_books(node, scenario)
    assert report["fails"] == [] and report["open_fails"] == []
    sec: dict[tuple[str, str], int] = {(m, s): rich for m in MEMBERS for s in SECURITIES}
    money: dict[tuple[str, str], Decimal] = {(m, c): Decimal(rich) for m in MEMBERS for c in ("AUD", "USD")}
    for buyer, seller, s, q, cents, *_ in trades:
        value = Decimal(q) * Decimal(cents) / 100
        sec[(buyer, s)] += q
        sec[(seller, s)] -= q
        money[(buyer, SECURITIES[s])] -= value
        money[(seller, SECURITIES[s])] += value
    assert securities_of(report) == {k: v for k, v in sec.items() if v}
    assert {(b["participant_id"], b["currency"]): Decimal(b["amount"]) for b in report["balances"]["cash"]} == {
        k: v for k, v in money.items() if v}


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(trades=st.lists(trade, min_size=1, max_size=10), model=st.sampled_from([1, 2, 3]))
def test_recycling_settles_everything_once_resources_arrive(tmp_path_factory, trades, model) -> None:
    # Nobody holds anything at first; a last trade day far ahead keeps the runs going, and the
    # resources arrive as trades of the members with an outside holder (E) who has everything.
    shortages = market(trades, [0] * 12, [0] * 8, lenders=False)
    supply = [("A", "E"), ("B", "E"), ("C", "E"), ("D", "E")]
    extra = pl.DataFrame({
        "trade_id": [f"s{m}{s}" for m, _ in supply for s in SECURITIES],
        "trade_date": ["2026-03-04"] * 12, "buyer": [m for m, _ in supply for _ in SECURITIES],
        "seller": ["E"] * 12, "security_id": [s for _ in supply for s in SECURITIES],
        "quantity": ["10000"] * 12, "price": ["0.01"] * 12, "settlement_date": ["2026-03-04"] * 12,
        "partial_allowed": [""] * 12,
    })
    scenario = Scenario(
        participants=pl.DataFrame({"participant_id": [*MEMBERS, "E"], "name": [*MEMBERS, "E"]}),
        securities=shortages.securities,
        holdings=pl.DataFrame({"participant_id": ["E"] * 3, "security_id": list(SECURITIES),
                               "quantity": ["1000000"] * 3}),
        cash=pl.DataFrame({"participant_id": [*MEMBERS, *MEMBERS], "currency": ["AUD"] * 4 + ["USD"] * 4,
                           "amount": ["100000"] * 8}),
        trades=pl.concat([shortages.trades, extra,
                          extra.head(1).with_columns(trade_id=pl.lit("tail"), quantity=pl.lit("0"),
                                                     settlement_date=pl.lit("2026-03-09"))]),
    )
    node = run_scenario(scenario, tmp_path_factory.mktemp("d"), 0, settlement={"dvp_model": model})
    report = check_books(node, scenario)
    assert report["open_fails"] == [] and report["open_positions"] == 0
    assert len(node.machine.settlement.gross) == 0
