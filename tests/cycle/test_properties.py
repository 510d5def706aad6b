"""Property tests of the cycle: netting is zero-sum, net settlement equals gross settlement when
everyone is funded, and replaying the ledger reproduces every state root."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from decimal import Decimal
from pathlib import Path

import polars as pl
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clearhouse.cycle.report import build_report
from clearhouse.cycle.run import open_node, run_scenario
from clearhouse.cycle.scenario import Scenario
from clearhouse.ledger.verify import verify_store

MEMBERS = ["A", "B", "C", "D", "E"]
SECURITIES = {"X": "AUD", "Y": "AUD", "Z": "USD"}
DAYS = [dt.date(2026, 3, 2), dt.date(2026, 3, 3), dt.date(2026, 3, 4)]

trade = st.tuples(
    st.sampled_from(MEMBERS),
    st.sampled_from(MEMBERS),
    st.sampled_from(sorted(SECURITIES)),
    st.integers(1, 5_000),
    st.integers(1, 100_000),  # price in cents
    st.sampled_from(DAYS),
).filter(lambda t: t[0] != t[1])


def scenario_of(trades: list[tuple], funded: bool) -> Scenario:
    rich = 10**9 if funded else 0
    return Scenario(
        participants=pl.DataFrame({"participant_id": MEMBERS, "name": MEMBERS}),
        securities=pl.DataFrame({"security_id": list(SECURITIES), "currency": list(SECURITIES.values()),
                                 "lot_size": ["1"] * len(SECURITIES)}),
        holdings=pl.DataFrame({
            "participant_id": [m for m in MEMBERS for _ in SECURITIES] if funded else [],
            "security_id": [s for _ in MEMBERS for s in SECURITIES] if funded else [],
            "quantity": [str(rich)] * (len(MEMBERS) * len(SECURITIES)) if funded else [],
        }, schema=dict.fromkeys(("participant_id", "security_id", "quantity"), pl.String)),
        cash=pl.DataFrame({
            "participant_id": [m for m in MEMBERS for _ in ("AUD", "USD")] if funded else [],
            "currency": ["AUD", "USD"] * len(MEMBERS) if funded else [],
            "amount": [str(rich)] * (2 * len(MEMBERS)) if funded else [],
        }, schema=dict.fromkeys(("participant_id", "currency", "amount"), pl.String)),
        trades=pl.DataFrame({
            "trade_id": [f"t{i}" for i in range(len(trades))],
            "trade_date": [t[5].isoformat() for t in trades],
            "buyer": [t[0] for t in trades],
            "seller": [t[1] for t in trades],
            "security_id": [t[2] for t in trades],
            "quantity": [str(t[3]) for t in trades],
            "price": [str(Decimal(t[4]) / 100) for t in trades],
            "settlement_date": [""] * len(trades),
        }),
    )


SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@SETTINGS
@given(trades=st.lists(trade, min_size=1, max_size=40), cycle=st.sampled_from([0, 1, 2]))
def test_net_positions_sum_to_zero_per_security_and_currency(tmp_path_factory, trades, cycle) -> None:
    node = run_scenario(scenario_of(trades, funded=False), tmp_path_factory.mktemp("d"), cycle)
    report = build_report(node, None)
    qty: dict[tuple[str, str], int] = defaultdict(int)
    cash: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    for p in report["net_positions"]:
        qty[(p["security_id"], p["settlement_date"])] += p["quantity"]
        cash[(p["currency"], p["settlement_date"])] += Decimal(p["cash"])
    assert all(v == 0 for v in qty.values()), qty
    assert all(v == 0 for v in cash.values()), cash
    per_ccy: dict[tuple[str, str, str], Decimal] = defaultdict(Decimal)
    for p in report["net_positions"]:
        per_ccy[(p["participant_id"], p["currency"], p["settlement_date"])] += Decimal(p["cash"])
    assert {k: v for k, v in per_ccy.items()} == {
        (c["participant_id"], c["currency"], c["settlement_date"]): Decimal(c["amount"])
        for c in report["net_cash"]
    }


def gross_reference(trades: list[tuple]) -> tuple[dict, dict]:
    """Settle every trade on its own, by the obvious rules, with exact decimals."""
    sec: dict[tuple[str, str], int] = defaultdict(int)
    cash: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    for m in MEMBERS:
        for s in SECURITIES:
            sec[(m, s)] = 10**9
        for c in ("AUD", "USD"):
            cash[(m, c)] = Decimal(10**9)
    for buyer, seller, s, q, cents, _ in trades:
        value = Decimal(q) * Decimal(cents) / 100
        sec[(buyer, s)] += q
        sec[(seller, s)] -= q
        cash[(buyer, SECURITIES[s])] -= value
        cash[(seller, SECURITIES[s])] += value
    return dict(sec), dict(cash)


@SETTINGS
@given(trades=st.lists(trade, min_size=1, max_size=40), cycle=st.sampled_from([0, 1, 2]))
def test_net_settlement_ends_where_gross_settlement_does(tmp_path_factory, trades, cycle) -> None:
    node = run_scenario(scenario_of(trades, funded=True), tmp_path_factory.mktemp("d"), cycle)
    report = build_report(node, None)
    assert report["fails"] == [] and report["open_positions"] == 0
    sec = {(b["participant_id"], b["security_id"]): b["quantity"] for b in report["balances"]["securities"]}
    cash = {(b["participant_id"], b["currency"]): Decimal(b["amount"]) for b in report["balances"]["cash"]}
    ref_sec, ref_cash = gross_reference(trades)
    assert sec == {k: v for k, v in ref_sec.items() if v}
    assert cash == {k: v for k, v in ref_cash.items() if v}


@settings(max_examples=10, deadline=None)
@given(trades=st.lists(trade, min_size=1, max_size=30), funded=st.booleans())
def test_replay_reproduces_every_state_root(tmp_path_factory, trades, funded) -> None:
    data: Path = tmp_path_factory.mktemp("d")
    node = run_scenario(scenario_of(trades, funded), data, 1)
    roots = [b.header.state_root for b in node.store.blocks()]
    node.store.close()
    replayed = open_node(data)
    assert [b.header.state_root for b in replayed.store.blocks()] == roots
    assert replayed.machine.state_root() == roots[-1]
    report = verify_store(replayed.store)
    assert report.verified and report.first_bad_height is None
