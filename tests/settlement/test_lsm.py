"""Tests of the payment queue with liquidity saving: worked examples first, then properties.

Scenarios are written as small tables: ``id payer payee amount [priority]`` one per line, all in
USD with amounts in minor units, and opening balances as ``participant amount``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clearhouse.core.errors import InputError
from clearhouse.settlement.lsm import (
    Payment,
    PaymentsResult,
    SettledBy,
    run_payments_files,
    settle_payments,
)


def payments(table: str) -> list[Payment]:
    out = []
    for line in table.strip().splitlines():
        pid, payer, payee, amount, *prio = line.split()
        out.append(Payment(pid, payer, payee, "USD", int(amount), int(prio[0]) if prio else 0))
    return out


def balances(table: str) -> dict[tuple[str, str], int]:
    return {(who, "USD"): int(amount) for who, amount in (
        line.split() for line in table.strip().splitlines())}


def outcome(result: PaymentsResult) -> list[str]:
    """Settled payments as 'id:mechanism', then the queue, for readable comparisons."""
    return [f"{pid}:{how}" for pid, how in zip(result.settled, result.settled_by, strict=True)] + [
        f"{pid}:queued" for pid in result.queued]


# --------------------------------------------------------------------------------------------
# Worked examples


def test_classic_three_bank_gridlock_settles_in_resolution_with_no_liquidity() -> None:
    # Nobody has cash; each bank owes the next 100. No payment can settle alone and no pair
    # offsets, but together every position nets to zero.
    result = settle_payments(
        payments("""
            p1 A B 100
            p2 B C 100
            p3 C A 100
        """),
        balances("A 0\nB 0\nC 0"),
    )
    assert outcome(result) == ["p1:gridlock", "p2:gridlock", "p3:gridlock"]
    assert dict(result.final_balances) == balances("A 0\nB 0\nC 0")
    assert dict(result.liquidity_used) == {"USD": 0}


def test_gridlock_resolution_removes_a_tail_payment() -> None:
    # As above, plus C owes B another 50. Settling all four would leave C at -50, so C's queue
    # loses its tail (p4, the latest of equal priority); the cycle then settles and p4 waits.
    result = settle_payments(
        payments("""
            p1 A B 100
            p2 B C 100
            p3 C A 100
            p4 C B 50
        """),
        balances("A 0\nB 0\nC 0"),
    )
    assert outcome(result) == ["p1:gridlock", "p2:gridlock", "p3:gridlock", "p4:queued"]


def test_tail_is_lowest_priority_so_removal_can_cascade() -> None:
    # Now C's payment to B is urgent (priority 1), so C's tail is p3. Removing it leaves A
    # short, A's p1 goes, then B is short, B's p2 goes, then C is short and p4 goes too:
    # nothing can settle without liquidity.
    result = settle_payments(
        payments("""
            p1 A B 100
            p2 B C 100
            p3 C A 100
            p4 C B 50 1
        """),
        balances("A 0\nB 0\nC 0"),
    )
    assert outcome(result) == ["p1:queued", "p2:queued", "p3:queued", "p4:queued"]
    # Fifty units of liquidity at C are enough for everything to settle.
    result = settle_payments(
        payments("""
            p1 A B 100
            p2 B C 100
            p3 C A 100
            p4 C B 50 1
        """),
        balances("A 0\nB 0\nC 50"),
    )
    assert sorted(result.settled) == ["p1", "p2", "p3", "p4"]
    assert dict(result.final_balances) == balances("A 0\nB 50\nC 0")


def test_incoming_payment_releases_the_queue() -> None:
    result = settle_payments(
        payments("""
            p1 B C 50
            p2 A B 100
        """),
        balances("A 100\nB 0\nC 0"),
    )
    assert outcome(result) == ["p2:immediate", "p1:released"]
    assert dict(result.final_balances) == balances("A 0\nB 50\nC 50")
    assert dict(result.liquidity_used) == {"USD": 100}  # A's 100; B never paid out net


def test_bilateral_offsetting_on_arrival() -> None:
    # A has 20 and owes B 100; B has nothing and owes A 80. Neither settles alone; together
    # A pays a net 20 it has.
    result = settle_payments(
        payments("""
            p1 A B 100
            p2 B A 80
        """),
        balances("A 20\nB 0"),
    )
    assert outcome(result) == ["p2:offset", "p1:offset"]
    assert dict(result.final_balances) == balances("A 0\nB 20")
    assert dict(result.liquidity_used) == {"USD": 20}
    # With only 19 at A the pair does not offset; both wait (and gridlock cannot help).
    result = settle_payments(payments("p1 A B 100\np2 B A 80"), balances("A 19\nB 0"))
    assert outcome(result) == ["p1:queued", "p2:queued"]


def test_fifo_within_priority_and_priority_overtakes() -> None:
    # A has 100 and queues p1 (150). p2 (50) could be funded but waits behind p1 at equal
    # priority; p3 (50, priority 1) goes first.
    result = settle_payments(
        payments("""
            p1 A B 150
            p2 A C 50
            p3 A D 50 1
        """),
        balances("A 100\nB 0\nC 0\nD 0"),
    )
    assert outcome(result) == ["p3:immediate", "p1:queued", "p2:queued"]


def test_offsetting_does_not_spend_liquidity_an_earlier_queued_payment_waits_for() -> None:
    # B has 30 and queued p1 (to C, 50) before p2 (to A, 40). When A's p3 (10) arrives, A
    # cannot fund it; offsetting p3 against p2 would cost B a net 30, the cash p1 waits for.
    result = settle_payments(
        payments("""
            p1 B C 50
            p2 B A 40
            p3 A B 10
        """),
        balances("A 0\nB 30\nC 0"),
        gridlock_every=0,
    )
    # At the end, gridlock resolution finds B short even without p3 and trims everything.
    assert outcome(result) == ["p1:queued", "p2:queued", "p3:queued"]


def test_periodic_resolution_runs_between_arrivals() -> None:
    table = """
        p1 A B 100
        p2 B C 100
        p3 C A 100
        p4 D A 5
    """
    opening = balances("A 0\nB 0\nC 0\nD 5")
    result = settle_payments(payments(table), opening, gridlock_every=3)
    assert outcome(result) == ["p1:gridlock", "p2:gridlock", "p3:gridlock", "p4:immediate"]
    result = settle_payments(payments(table), opening, gridlock_every=0)
    assert outcome(result) == ["p4:immediate", "p1:gridlock", "p2:gridlock", "p3:gridlock"]


def test_offsetting_settles_a_run_of_the_payees_queue() -> None:
    # B queued two payments to A (30, then 50); A's 100 to B offsets both, A paying a net 20.
    result = settle_payments(
        payments("""
            q1 B A 30
            q2 B A 50
            p1 A B 100
        """),
        balances("A 20\nB 0"),
    )
    assert outcome(result) == ["p1:offset", "q1:offset", "q2:offset"]
    assert dict(result.final_balances) == balances("A 0\nB 20")


def test_bad_inputs_to_the_engine_are_refused() -> None:
    with pytest.raises(InputError):
        settle_payments(payments("p1 A B 1\np1 A B 2"), {})
    with pytest.raises(InputError):
        settle_payments(payments("p1 A A 1"), {})
    with pytest.raises(InputError):
        settle_payments(payments("p1 A B 0"), {})
    with pytest.raises(InputError):
        settle_payments(payments("p1 A B 1"), balances("A -1"))


# --------------------------------------------------------------------------------------------
# Files


def write(path: Path, text: str) -> Path:
    path.write_text("\n".join(line.strip() for line in text.strip().splitlines()) + "\n")
    return path


def test_files_gridlock_and_every_bad_row_reported(tmp_path: Path) -> None:
    cash = write(tmp_path / "CASH.csv", """
        participant_id,currency,amount
        A,USD,0.00
        B,USD,0
        C,USD,0
        D,JPY,500
    """)
    pays = write(tmp_path / "PAYMENTS.csv", """
        payment_id,payer,payee,currency,amount,priority
        p1,A,B,USD,1.00,
        p2,B,C,USD,1.00,0
        p3,C,A,USD,1,
        bad1,A,B,USD,0,
        bad2,A,B,USD,-5,
        bad3,A,B,USD,1.005,
        bad4,A,B,USD,abc,
        bad5,A,A,USD,1,
        p1,A,C,USD,1,
        bad6,A,B,USD,1,,extra
        bad7,A,B,usd,1,
        bad8,A,Z,USD,1,
        bad9,A,B,USD,1,high
        ,A,B,USD,1,
        bad10,D,A,JPY,1.5,
    """)
    out = run_payments_files(pays, cash)
    json.dumps(out)  # JSON-ready
    assert out["settled"] == ["p1", "p2", "p3"]
    assert out["queued"] == []
    assert out["final_balances"] == [
        {"participant_id": "A", "currency": "USD", "amount": "0.00"},
        {"participant_id": "B", "currency": "USD", "amount": "0.00"},
        {"participant_id": "C", "currency": "USD", "amount": "0.00"},
        {"participant_id": "D", "currency": "JPY", "amount": "500"},
    ]
    assert out["liquidity_used"] == {"USD": "0.00"}
    assert [(r["row"], r["payment_id"], r["reason"]) for r in out["rejected"]] == [
        (5, "bad1", "non_positive_amount"),
        (6, "bad2", "non_positive_amount"),
        (7, "bad3", "too_many_decimals"),
        (8, "bad4", "bad_amount"),
        (9, "bad5", "payer_equals_payee"),
        (10, "p1", "duplicate_id"),
        (11, "bad6", "wrong_field_count"),
        (12, "bad7", "bad_currency"),
        (13, "bad8", "unknown_payee"),
        (14, "bad9", "bad_priority"),
        (15, "", "missing_payment_id"),
        (16, "bad10", "too_many_decimals"),
    ]


def test_files_without_priority_column_and_with_liquidity(tmp_path: Path) -> None:
    cash = write(tmp_path / "CASH.csv", """
        participant_id,currency,amount
        A,EUR,20.00
        B,EUR,0
    """)
    pays = write(tmp_path / "PAYMENTS.csv", """
        payment_id,payer,payee,currency,amount
        p1,A,B,EUR,100.00
        p2,B,A,EUR,80.00
    """)
    out = run_payments_files(pays, cash)
    assert out["settled"] == ["p2", "p1"]
    assert out["liquidity_used"] == {"EUR": "20.00"}
    assert out["rejected"] == []


@pytest.mark.parametrize(
    ("cash_text", "pay_header"),
    [
        ("participant_id,currency,amount\nA,USD,-1\n", "payment_id,payer,payee,currency,amount"),
        ("participant_id,currency,amount\nA,USD,1\nA,USD,2\n",
         "payment_id,payer,payee,currency,amount"),
        ("participant,currency,amount\nA,USD,1\n", "payment_id,payer,payee,currency,amount"),
        ("participant_id,currency,amount\nA,USD,1\n", "payment_id,payer,payee,currency"),
        ("participant_id,currency,amount\nA,USD,1\n",
         "payment_id,payer,payee,currency,amount,memo"),
    ],
)
def test_unreadable_files_raise(tmp_path: Path, cash_text: str, pay_header: str) -> None:
    cash = tmp_path / "CASH.csv"
    cash.write_text(cash_text)
    pays = tmp_path / "PAYMENTS.csv"
    pays.write_text(pay_header + "\n")
    with pytest.raises(InputError):
        run_payments_files(pays, cash)


# --------------------------------------------------------------------------------------------
# Properties


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[list[Payment], dict[tuple[str, str], int], int]:
    people = ["A", "B", "C", "D"][: draw(st.integers(2, 4))]
    currencies = ["USD", "EUR"][: draw(st.integers(1, 2))]
    n = draw(st.integers(0, 25))
    pays = []
    for i in range(n):
        payer = draw(st.sampled_from(people))
        payee = draw(st.sampled_from([p for p in people if p != payer]))
        pays.append(Payment(f"p{i}", payer, payee, draw(st.sampled_from(currencies)),
                            draw(st.integers(1, 100)), draw(st.integers(0, 2))))
    opening = {(p, c): draw(st.integers(0, 120)) for p in people for c in currencies}
    return pays, opening, draw(st.integers(0, 5))


@settings(max_examples=300, deadline=None)
@given(scenarios())
def test_conservation_no_overdraft_and_nothing_lost(scenario: tuple) -> None:
    pays, opening, every = scenario
    result = settle_payments(pays, opening, gridlock_every=every)
    assert sorted([*result.settled, *result.queued]) == sorted(p.payment_id for p in pays)
    by_id = {p.payment_id: p for p in pays}
    expected = dict(opening)
    for pid in result.settled:
        p = by_id[pid]
        expected[(p.payer, p.currency)] -= p.amount
        expected[(p.payee, p.currency)] += p.amount
    assert dict(result.final_balances) == expected
    assert all(v >= 0 for v in result.final_balances.values())
    for currency in {c for _, c in opening}:
        settled_total = sum(by_id[i].amount for i in result.settled if by_id[i].currency
                            == currency)
        assert 0 <= result.liquidity_used.get(currency, 0) <= settled_total
    # No queue head is left that its payer could fund: release is complete.
    queued = [by_id[i] for i in result.queued]
    for payer, currency in {(p.payer, p.currency) for p in queued}:
        mine = sorted((p for p in queued if (p.payer, p.currency) == (payer, currency)),
                      key=lambda p: (-p.priority, pays.index(p)))
        assert mine[0].amount > result.final_balances[(payer, currency)]


@settings(max_examples=200, deadline=None)
@given(scenarios())
def test_settled_payments_keep_fifo_within_priority(scenario: tuple) -> None:
    # A payment released from the queue or settled in gridlock resolution was at the head of
    # its payer's queue: no earlier payment of equal or higher priority from the same payer
    # can still be queued at the end.
    pays, opening, every = scenario
    result = settle_payments(pays, opening, gridlock_every=every)
    how = dict(zip(result.settled, result.settled_by, strict=True))
    queued = set(result.queued)
    for i, p in enumerate(pays):
        if how.get(p.payment_id) not in (SettledBy.released, SettledBy.gridlock):
            continue
        for earlier in pays[:i]:
            if (earlier.payer, earlier.currency) == (p.payer, p.currency) and \
                    earlier.priority >= p.priority:
                assert earlier.payment_id not in queued, (earlier, p)
