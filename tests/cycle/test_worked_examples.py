"""Worked netting and settlement examples, run through `clearhouse run --json`.

Each example states its trades and the net positions worked out by hand; the comparison is
exact (quantities and decimal cash strings).
"""

from __future__ import annotations

from pathlib import Path

from tests.conftest import nets_by_key, run_json, write_scenario

PARTIES = """
    participant_id,name
    A,Broker A
    B,Broker B
    C,Broker C
    D,Broker D
"""


def test_three_brokers_one_stock_net_to_one_delivery_each(tmp_path: Path) -> None:
    # A buys 1,000 from B at 5.00; B buys 1,500 from C at 5.10; C buys 500 from A at 5.05.
    # A: +1,000 - 500 = +500, cash -5,000.00 + 2,525.00 = -2,475.00
    # B: -1,000 + 1,500 = +500, cash +5,000.00 - 7,650.00 = -2,650.00
    # C: -1,500 + 500 = -1,000, cash +7,650.00 - 2,525.00 = +5,125.00
    sc = write_scenario(
        tmp_path / "s",
        participants=PARTIES,
        securities="security_id,currency,lot_size\nXYZ,AUD,1",
        holdings="participant_id,security_id,quantity\nC,XYZ,1000",
        cash="participant_id,currency,amount\nA,AUD,10000\nB,AUD,10000\nC,AUD,0",
        trades="""
            trade_id,trade_date,buyer,seller,security_id,quantity,price
            1,2026-03-02,A,B,XYZ,1000,5.00
            2,2026-03-02,B,C,XYZ,1500,5.10
            3,2026-03-02,C,A,XYZ,500,5.05
        """,
    )
    report = run_json(sc, tmp_path / "d")
    assert nets_by_key(report) == {
        ("A", "XYZ"): (500, "-2475.00"),
        ("B", "XYZ"): (500, "-2650.00"),
        ("C", "XYZ"): (-1000, "5125.00"),
    }
    assert {p["settlement_date"] for p in report["net_positions"]} == {"2026-03-04"}
    assert report["netting"]["gross_obligations"] == 6
    assert report["netting"]["net_obligations"] == 3
    # gross: 2 x (5,000 + 7,650 + 2,525) = 30,350; net: 2,475 + 2,650 + 5,125 = 10,250
    assert report["netting"]["gross_value"] == "30350.00"
    assert report["netting"]["net_value"] == "10250.00"
    assert report["netting"]["reduction_pct"] == round(100 * (1 - 10250 / 30350), 2)
    # everyone could cover: C delivers 1,000 it holds, A and B pay from their cash
    assert report["settlement"] == {
        "settled": 3, "failed": 0, "settled_value": "10250.00", "failed_value": "0.00",
        "by_currency": {"AUD": {"settled_value": "10250.00", "failed_value": "0.00"}},
    }
    bal = {(b["participant_id"], b["security_id"]): b["quantity"] for b in report["balances"]["securities"]}
    assert bal == {("A", "XYZ"): 500, ("B", "XYZ"): 500}
    cash = {b["participant_id"]: b["amount"] for b in report["balances"]["cash"]}
    assert cash == {"A": "7525.00", "B": "7350.00", "C": "5125.00"}
    assert report["ledger"]["verified"] is True


def test_circular_trades_net_to_nothing(tmp_path: Path) -> None:
    # A sells 100 to B, B to C, C to D, D to A, all at 20.00: every member nets to zero.
    sc = write_scenario(
        tmp_path / "s",
        participants=PARTIES,
        securities="security_id,currency,lot_size\nBHP,AUD,1",
        trades="""
            trade_id,trade_date,buyer,seller,security_id,quantity,price
            c1,2026-03-02,B,A,BHP,100,20
            c2,2026-03-02,C,B,BHP,100,20
            c3,2026-03-02,D,C,BHP,100,20
            c4,2026-03-02,A,D,BHP,100,20
        """,
    )
    report = run_json(sc, tmp_path / "d")
    assert report["net_positions"] == []
    assert report["netting"]["gross_obligations"] == 8
    assert report["netting"]["net_obligations"] == 0
    assert report["netting"]["reduction_pct"] == 100.0
    assert report["settlement"]["settled"] == 0 and report["settlement"]["failed"] == 0


def test_net_cash_is_one_payment_per_member_across_securities(tmp_path: Path) -> None:
    # A buys 10 X at 3.00 from B and sells 4 Y at 2.50 to B.
    # A: X +10 cash -30.00; Y -4 cash +10.00; one payment of -20.00.
    sc = write_scenario(
        tmp_path / "s",
        participants=PARTIES,
        securities="security_id,currency,lot_size\nX,AUD,1\nY,AUD,1",
        holdings="participant_id,security_id,quantity\nA,Y,4\nB,X,10",
        cash="participant_id,currency,amount\nA,AUD,100\nB,AUD,100",
        trades="""
            trade_id,trade_date,buyer,seller,security_id,quantity,price
            1,2026-03-02,A,B,X,10,3.00
            2,2026-03-02,B,A,Y,4,2.50
        """,
    )
    report = run_json(sc, tmp_path / "d", "T+1")
    assert nets_by_key(report) == {
        ("A", "X"): (10, "-30.00"), ("A", "Y"): (-4, "10.00"),
        ("B", "X"): (-10, "30.00"), ("B", "Y"): (4, "-10.00"),
    }
    assert report["net_cash"] == [
        {"participant_id": "A", "settlement_date": "2026-03-03", "currency": "AUD", "amount": "-20.00"},
        {"participant_id": "B", "settlement_date": "2026-03-03", "currency": "AUD", "amount": "20.00"},
    ]


def test_a_fail_is_reported_carried_forward_and_settles_once_covered(tmp_path: Path) -> None:
    # Day 1 (Mon 2 Mar, T+0): B sells 50 X to A at 1.00 but holds nothing: it fails, and A's
    # receipt fails with it (the CCP passes on only what it receives). Day 2: C sells 50 X to B;
    # B's position rolls into the next net: B is flat in X (-50 + 50), receives 50 from C via
    # the CCP and A finally receives its 50.
    sc = write_scenario(
        tmp_path / "s",
        participants=PARTIES,
        securities="security_id,currency,lot_size\nX,AUD,1",
        holdings="participant_id,security_id,quantity\nC,X,50",
        cash="participant_id,currency,amount\nA,AUD,100\nB,AUD,100",
        trades="""
            trade_id,trade_date,buyer,seller,security_id,quantity,price
            1,2026-03-02,A,B,X,50,1.00
            2,2026-03-03,B,C,X,50,1.00
        """,
    )
    report = run_json(sc, tmp_path / "d", "T+0")
    fails = [(f["participant_id"], f["settlement_date"], f["reason"]) for f in report["fails"]]
    assert fails == [
        ("A", "2026-03-02", "linked_instruction_failed"),
        ("B", "2026-03-02", "insufficient_securities"),
    ]
    bal = {(b["participant_id"], b["security_id"]): b["quantity"] for b in report["balances"]["securities"]}
    assert bal == {("A", "X"): 50}
    cash = {b["participant_id"]: b["amount"] for b in report["balances"]["cash"]}
    assert cash == {"A": "50.00", "B": "100.00", "C": "50.00"}
    assert report["open_positions"] == 0
    assert report["settlement"]["failed"] == 2


def test_the_ccp_stays_flat_when_a_member_lacks_cash(tmp_path: Path) -> None:
    # A buys 10 X at 10.00 from B with 5.00 of cash: A's payment fails, so B's delivery cannot be
    # paid for by the CCP (it holds no funds of its own) and fails as linked.
    sc = write_scenario(
        tmp_path / "s",
        participants=PARTIES,
        securities="security_id,currency,lot_size\nX,AUD,1",
        holdings="participant_id,security_id,quantity\nB,X,10",
        cash="participant_id,currency,amount\nA,AUD,5",
        trades="""
            trade_id,trade_date,buyer,seller,security_id,quantity,price
            1,2026-03-02,A,B,X,10,10.00
        """,
    )
    report = run_json(sc, tmp_path / "d", "T+0")
    assert [(f["participant_id"], f["reason"]) for f in report["fails"]] == [
        ("A", "insufficient_cash"), ("B", "linked_instruction_failed"),
    ]
    bal = {(b["participant_id"], b["security_id"]): b["quantity"] for b in report["balances"]["securities"]}
    assert bal == {("B", "X"): 10}
    assert report["open_positions"] == 2
