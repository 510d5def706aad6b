"""A trade file with bad rows is taken row by row: each bad row is rejected with its reason, each
good row is accepted, and submitted = accepted + rejected."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.conftest import cli, run_json, write_scenario

PARTIES = """
    participant_id,name
    A,Broker A
    B,Broker B
"""

# trade id -> expected result; dates: Mon 2 Mar 2026, T+2 = Wed 4 Mar
ROWS = [
    ("ok-1,2026-03-02,A,B,X,100,10.50,", "accepted"),
    ("ok-2,2026-03-02,B,A,X,10,10.5,2026-03-03", "accepted"),
    ("ok-1,2026-03-02,A,B,X,100,10.50,", "exists"),
    ("ok-2,2026-03-02,B,A,X,11,10.5,2026-03-03", "duplicate_in_batch"),
    (",2026-03-02,A,B,X,1,1,", "invalid_trade_id"),
    ("d1,2026-02-30,A,B,X,1,1,", "bad_trade_date"),
    ("d2,02/03/2026,A,B,X,1,1,", "bad_trade_date"),
    ("d3,2026-03-02,A,B,X,1,1,tomorrow", "bad_settlement_date"),
    ("q1,2026-03-02,A,B,X,1.5,1,", "invalid_quantity"),
    ("q2,2026-03-02,A,B,X,0,1,", "non_positive_quantity"),
    ("q3,2026-03-02,A,B,X,-5,1,", "non_positive_quantity"),
    ("p1,2026-03-02,A,B,X,1,abc,", "invalid_price"),
    ("p2,2026-03-02,A,B,X,1,1.0000001,", "invalid_price"),
    ("p3,2026-03-02,A,B,X,1,0,", "non_positive_price"),
    ("p4,2026-03-02,A,B,X,1,-2.5,", "non_positive_price"),
    ("s1,2026-03-02,A,A,X,1,1,", "buyer_equals_seller"),
    ("u1,2026-03-02,Z,B,X,1,1,", "unknown_buyer"),
    ("u2,2026-03-02,A,Z,X,1,1,", "unknown_seller"),
    ("u3,2026-03-02,A,B,NOPE,1,1,", "unknown_security"),
    ("m1,2026-03-02,A,CCP,X,1,1,", "not_a_clearing_member"),
    ("l1,2026-03-02,A,B,L,150,1,", "quantity_not_lot_multiple"),
    ("v1,2026-03-02,A,B,X,999999999999,999999999,", "value_too_large"),
    ("t1,2026-03-07,A,B,X,1,1,2026-03-09", "trade_date_not_business_day"),
    ("t2,2026-03-02,A,B,X,1,1,2026-02-27", "settlement_date_before_trade_date"),
    ("t3,2026-03-02,A,B,X,1,1,2026-03-08", "settlement_date_not_business_day"),
    ("ok-3,2026-03-02,A,B,L,200,0.5,", "accepted"),
]


def test_every_bad_row_is_rejected_with_its_reason(tmp_path: Path) -> None:
    sc = write_scenario(
        tmp_path / "s",
        participants=PARTIES,
        securities="security_id,currency,lot_size\nX,AUD,1\nL,AUD,100",
        trades="trade_id,trade_date,buyer,seller,security_id,quantity,price,settlement_date\n"
        + "\n".join(r for r, _ in ROWS),
    )
    report = run_json(sc, tmp_path / "d")
    t = report["trades"]
    assert t["submitted"] == len(ROWS) == t["accepted"] + t["rejected"]
    assert t["accepted"] == sum(1 for _, e in ROWS if e == "accepted")
    got = [(r["trade_id"], r["reason"]) for r in report["rejections"]]
    expected = [(row.split(",")[0], e) for row, e in ROWS if e != "accepted"]
    assert sorted(got) == sorted(expected)  # a weekend trade is sent on the next business day
    assert report["ledger"]["verified"] is True


def test_a_member_may_report_only_its_own_trades(tmp_path: Path) -> None:
    sc = write_scenario(
        tmp_path / "s",
        participants=PARTIES + "    C,Broker C\n",
        securities="security_id,currency,lot_size\nX,AUD,1",
        trades="""
            trade_id,trade_date,buyer,seller,security_id,quantity,price,submitter
            own,2026-03-02,A,B,X,1,1,A
            other,2026-03-02,A,B,X,1,1,C
            venue,2026-03-02,B,C,X,1,1,
        """,
    )
    report = run_json(sc, tmp_path / "d")
    assert [(r["trade_id"], r["reason"]) for r in report["rejections"]] == [("other", "not_party_to_trade")]
    assert report["trades"] == {"submitted": 3, "accepted": 2, "rejected": 1}


def test_parquet_trades_are_read_like_csv(tmp_path: Path) -> None:
    import polars as pl

    sc = write_scenario(tmp_path / "s", participants=PARTIES,
                        securities="security_id,currency,lot_size\nX,AUD,1")
    pl.DataFrame({
        "trade_id": ["p1", "p2"], "trade_date": ["2026-03-02", "2026-03-02"], "buyer": ["A", "A"],
        "seller": ["B", "B"], "security_id": ["X", "X"], "quantity": [5, -1], "price": [2.25, 1.0],
    }).write_parquet(sc / "trades.parquet")
    report = run_json(sc, tmp_path / "d")
    assert report["trades"] == {"submitted": 2, "accepted": 1, "rejected": 1}
    assert report["rejections"][0]["reason"] == "non_positive_quantity"
    assert {(p["participant_id"], p["quantity"], p["cash"]) for p in report["net_positions"]} == {
        ("A", 5, "-11.25"), ("B", -5, "11.25"),
    }


def test_a_missing_column_is_a_clear_error(tmp_path: Path) -> None:
    sc = write_scenario(tmp_path / "s", participants=PARTIES,
                        securities="security_id,currency,lot_size\nX,AUD,1",
                        trades="trade_id,trade_date,buyer,seller,security_id,quantity\n1,2026-03-02,A,B,X,1")
    code, _ = cli("run", str(sc), "--data", str(tmp_path / "d"))
    assert code == 2


def test_the_console_script_runs_resumes_verifies_and_shows_positions(tmp_path: Path) -> None:
    sc = write_scenario(
        tmp_path / "s", participants=PARTIES,
        securities="security_id,currency,lot_size\nX,AUD,1",
        holdings="participant_id,security_id,quantity\nB,X,10",
        cash="participant_id,currency,amount\nA,AUD,100",
        trades="trade_id,trade_date,buyer,seller,security_id,quantity,price\n1,2026-03-02,A,B,X,10,2",
    )
    exe = [sys.executable, "-m", "clearhouse.interfaces.cli"]
    data = str(tmp_path / "d")
    first = json.loads(subprocess.run([*exe, "run", str(sc), "--data", data, "--json"],
                                      check=True, capture_output=True, text=True).stdout)
    again = json.loads(subprocess.run([*exe, "run", str(sc), "--data", data, "--json"],
                                      check=True, capture_output=True, text=True).stdout)
    assert again["ledger"] == first["ledger"]  # a finished run resumes to the same head
    verified = json.loads(subprocess.run([*exe, "verify", "--data", data, "--json"],
                                         check=True, capture_output=True, text=True).stdout)
    assert verified["verified"] is True and verified["first_bad_height"] is None
    assert verified["height"] == first["ledger"]["height"]
    pos = json.loads(subprocess.run([*exe, "positions", "A", "--data", data, "--json"],
                                    check=True, capture_output=True, text=True).stdout)
    assert pos["securities"] == [{"security_id": "X", "quantity": 10}]
    assert pos["cash"] == [{"currency": "AUD", "amount": "80.00"}]


def test_reference_data_rejections_are_reported(tmp_path: Path) -> None:
    sc = write_scenario(
        tmp_path / "s", participants=PARTIES,
        securities="security_id,currency,lot_size\nX,AUD,1\nBAD,aud,1\nLOT,AUD,0",
        holdings="participant_id,security_id,quantity\nA,X,10\nA,NOPE,5\nQ,X,1\nB,X,-3",
        cash="participant_id,currency,amount\nA,AUD,100\nNOBODY,AUD,1",
        trades="trade_id,trade_date,buyer,seller,security_id,quantity,price\n1,2026-03-02,B,A,X,10,2",
    )
    report = run_json(sc, tmp_path / "d")
    got = sorted((r["item_id"], r["reason"]) for r in report["reference_rejections"])
    assert got == sorted([
        ("BAD", "invalid_currency"), ("LOT", "invalid_lot_size"),
        ("holding#1", "unknown_security"), ("holding#2", "unknown_participant"),
        ("holding#3", "non_positive_quantity"), ("deposit#1", "unknown_participant"),
    ])
    assert report["refused_submissions"] == []


def test_set_up_larger_than_one_submission_is_split(tmp_path: Path, monkeypatch) -> None:
    import clearhouse.cycle.run as run_module
    import clearhouse.state.machine as machine_module

    monkeypatch.setattr(run_module, "JSON_ITEMS_MAX", 2)
    monkeypatch.setattr(machine_module, "JSON_ITEMS_MAX", 2)
    sc = write_scenario(
        tmp_path / "s", participants=PARTIES + "    C,Broker C\n    D,Broker D\n",
        securities="security_id,currency,lot_size\nX,AUD,1\nY,AUD,1\nZ,AUD,1",
        holdings="participant_id,security_id,quantity\nA,X,1\nA,Y,2\nB,X,3\nB,Z,4\nC,Y,5",
        trades="trade_id,trade_date,buyer,seller,security_id,quantity,price\n1,2026-03-02,B,A,X,1,2",
    )
    report = run_json(sc, tmp_path / "d")
    held = {(b["participant_id"], b["security_id"]): b["quantity"] for b in report["balances"]["securities"]}
    # every opening holding arrived (B has no cash, so the one trade fails and nothing moves)
    assert held == {("A", "X"): 1, ("A", "Y"): 2, ("B", "X"): 3, ("B", "Z"): 4, ("C", "Y"): 5}


def test_a_refused_set_up_stops_the_run_with_its_reason(tmp_path: Path, monkeypatch) -> None:
    import clearhouse.state.machine as machine_module

    monkeypatch.setattr(machine_module, "JSON_ITEMS_MAX", 1)  # the ledger now refuses what the plan sends
    sc = write_scenario(
        tmp_path / "s", participants=PARTIES, securities="security_id,currency,lot_size\nX,AUD,1",
        trades="trade_id,trade_date,buyer,seller,security_id,quantity,price\n1,2026-03-02,B,A,X,1,2",
    )
    code, _ = cli("run", str(sc), "--data", str(tmp_path / "d"))
    assert code == 2
