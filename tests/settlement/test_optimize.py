"""Tests of the DvP settlement optimiser: worked examples, then properties against brute force.

The reference model enumerates every admissible settled quantity per instruction (0, each valid
partial, the whole) and keeps the feasible combination of highest value: slow and obviously
correct, used only on batches of at most ten instructions.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clearhouse.core.errors import InputError
from clearhouse.settlement.optimize import (
    InstructionSet,
    Method,
    SettlementChoice,
    Status,
    resulting_balances,
    settle_max_value,
)

# --------------------------------------------------------------------------------------------
# Reference model


def admissible_quantities(instr: InstructionSet, i: int, allow_partial: bool) -> list[int]:
    """Every quantity instruction ``i`` may settle at (0 stands for 'does not settle')."""
    q, lot, c = int(instr.quantity[i]), int(instr.lot_size[i]), int(instr.cash[i])
    options = [0]
    if allow_partial and instr.partial_allowed[i] and instr.link[i] < 0:
        for k in range(1, (q - 1) // lot + 1):
            if c * k * lot // q >= instr.min_partial_value:
                options.append(k * lot)
    options.append(q)
    return options


def cash_for(instr: InstructionSet, i: int, s: int, settles: bool) -> int:
    q, c = int(instr.quantity[i]), int(instr.cash[i])
    if not settles:
        return 0
    return c if s == q else c * s // q


def brute_force_optimum(
    instr: InstructionSet, sec: np.ndarray, cash: np.ndarray, credit: np.ndarray,
    allow_partial: bool,
) -> int:
    """Highest settled value over every admissible combination."""
    per = [[(j > 0, s) for j, s in enumerate(admissible_quantities(instr, i, allow_partial))]
           for i in range(instr.n)]
    best = 0
    for combo in itertools.product(*per):
        settles = np.array([on for on, _ in combo])
        links = instr.link[settles]
        off_links = set(instr.link[~settles].tolist())
        if any(int(x) >= 0 and int(x) in off_links for x in links):
            continue
        s = np.array([q if on else 0 for on, q in combo], dtype=np.int64)
        v = np.array([cash_for(instr, i, int(s[i]), bool(settles[i])) for i in range(instr.n)],
                     dtype=np.int64)
        sb, cb = resulting_balances(instr, sec, cash, s, v)
        if (sb >= 0).all() and (cb >= -credit).all():
            best = max(best, int(v.sum()))
    return best


def check_feasible(
    instr: InstructionSet, sec: np.ndarray, cash: np.ndarray, credit: np.ndarray,
    choice: SettlementChoice, allow_partial: bool,
) -> None:
    """Every promise of a choice, checked from the outside in exact integers."""
    sb, cb = resulting_balances(instr, sec, cash, choice.settled_quantity, choice.settled_cash)
    assert (sb >= 0).all(), f"securities below zero:\n{sb}"
    assert (cb >= -credit).all(), f"cash beyond credit:\n{cb}\ncredit:\n{credit}"
    assert sb.sum(axis=0).tolist() == sec.sum(axis=0).tolist(), "securities not conserved"
    assert cb.sum(axis=0).tolist() == cash.sum(axis=0).tolist(), "cash not conserved"
    assert choice.settled_value == int(choice.settled_cash.sum())
    assert choice.settled_value <= choice.upper_bound <= choice.lp_bound
    for i in range(instr.n):
        s, v = int(choice.settled_quantity[i]), int(choice.settled_cash[i])
        if not choice.settled[i]:
            assert s == 0 and v == 0
            continue
        assert s in admissible_quantities(instr, i, allow_partial)[1:], (i, s)
        assert v == cash_for(instr, i, s, True)
    for group in set(instr.link.tolist()) - {-1}:
        members = choice.settled[instr.link == group]
        assert members.all() or not members.any(), f"link group {group} split"


# --------------------------------------------------------------------------------------------
# Worked examples


def zeros(accounts: int, columns: int) -> np.ndarray:
    return np.zeros((accounts, columns), dtype=np.int64)


def test_three_party_cycle_settles_together() -> None:
    # A delivers 10 X to B, B to C, C back to A; nobody holds any X and nobody has cash,
    # yet each pays 100 and receives 100: the whole cycle settles, no part of it alone could.
    instr = InstructionSet.create(
        deliverer=[0, 1, 2], receiver=[1, 2, 0], security=[0, 0, 0],
        quantity=[10, 10, 10], currency=[0, 0, 0], cash=[100, 100, 100],
    )
    for exact_max_n in (0, 100):
        choice = settle_max_value(instr, zeros(3, 1), zeros(3, 1), exact_max_n=exact_max_n)
        assert choice.settled.tolist() == [True, True, True]
        assert choice.settled_value == 300 == choice.lp_bound


def test_chain_settles_only_as_a_whole() -> None:
    # A holds 5 X and sells them to B for 50; B sells them on to C for 60; C sells them to D
    # for 70. B and C own nothing and have no cash: each leg is funded by the one after it.
    instr = InstructionSet.create(
        deliverer=[0, 1, 2], receiver=[1, 2, 3], security=[0, 0, 0],
        quantity=[5, 5, 5], currency=[0, 0, 0], cash=[50, 60, 70],
    )
    sec = np.array([[5], [0], [0], [0]], dtype=np.int64)
    cash = np.array([[0], [0], [0], [70]], dtype=np.int64)
    for exact_max_n in (0, 100):
        choice = settle_max_value(instr, sec, cash, exact_max_n=exact_max_n)
        assert choice.settled.tolist() == [True, True, True]
        assert choice.settled_value == 180
    # D has only 69: the last leg fails, and with it B's and C's funding; nothing settles.
    cash[3, 0] = 69
    for exact_max_n in (0, 100):
        choice = settle_max_value(instr, sec, cash, exact_max_n=exact_max_n)
        assert choice.settled.tolist() == [False, False, False]
        assert choice.lp_bound < 180


def test_linked_instructions_settle_all_or_none() -> None:
    # Two legs of one trade are linked; the second cannot settle, so neither does. The third,
    # independent instruction settles.
    instr = InstructionSet.create(
        deliverer=[0, 0, 1], receiver=[1, 1, 0], security=[0, 1, 0],
        quantity=[1, 1, 1], currency=[0, 0, 0], cash=[10, 10, 5], link=[7, 7, -1],
    )
    sec = np.array([[1, 0], [1, 0]], dtype=np.int64)
    cash = np.array([[5], [100]], dtype=np.int64)
    for exact_max_n in (0, 100):
        choice = settle_max_value(instr, sec, cash, exact_max_n=exact_max_n)
        assert choice.settled.tolist() == [False, False, True]


def test_credit_limit_lets_cash_go_negative_up_to_the_limit() -> None:
    instr = InstructionSet.create(
        deliverer=[0], receiver=[1], security=[0], quantity=[1], currency=[0], cash=[100],
    )
    sec = np.array([[1], [0]], dtype=np.int64)
    cash = np.array([[0], [40]], dtype=np.int64)
    assert not settle_max_value(instr, sec, cash).settled[0]
    credit = np.array([[0], [60]], dtype=np.int64)
    assert settle_max_value(instr, sec, cash, credit).settled[0]


def test_partial_settlement_in_whole_lots_with_cash_rounded_down() -> None:
    # 1000 units in lots of 100 for 999.99 (99999 minor units); the deliverer holds 750 units.
    # Seven lots (700 units) settle, paying floor(99999 * 700 / 1000) = 69999.
    instr = InstructionSet.create(
        deliverer=[0], receiver=[1], security=[0], quantity=[1000], currency=[0],
        cash=[99_999], partial_allowed=[True], lot_size=[100],
    )
    sec = np.array([[750], [0]], dtype=np.int64)
    cash = np.array([[0], [10**6]], dtype=np.int64)
    for exact_max_n in (0, 100):
        choice = settle_max_value(instr, sec, cash, allow_partial=True, exact_max_n=exact_max_n)
        assert choice.settled_quantity.tolist() == [700]
        assert choice.settled_cash.tolist() == [69_999]
    # Without partial settlement nothing settles.
    assert settle_max_value(instr, sec, cash).settled_quantity.tolist() == [0]


def test_partial_below_minimum_value_does_not_settle() -> None:
    instr = InstructionSet.create(
        deliverer=[0], receiver=[1], security=[0], quantity=[1000], currency=[0],
        cash=[100_000], partial_allowed=[True], lot_size=[100], min_partial_value=50_000,
    )
    sec = np.array([[450], [0]], dtype=np.int64)  # 4 lots = 40_000 < 50_000
    cash = np.array([[0], [10**6]], dtype=np.int64)
    for exact_max_n in (0, 100):
        choice = settle_max_value(instr, sec, cash, allow_partial=True, exact_max_n=exact_max_n)
        assert choice.settled_quantity.tolist() == [0]
    sec[0, 0] = 500  # 5 lots = 50_000: exactly the minimum
    for exact_max_n in (0, 100):
        choice = settle_max_value(instr, sec, cash, allow_partial=True, exact_max_n=exact_max_n)
        assert choice.settled_quantity.tolist() == [500]


def test_cash_shortage_shrinks_a_partial_to_what_the_payer_can_fund() -> None:
    # The receiver has 333 of the 1000 cash: three lots of 100 units cost floor(1000*300/1000).
    instr = InstructionSet.create(
        deliverer=[0], receiver=[1], security=[0], quantity=[1000], currency=[0],
        cash=[1000], partial_allowed=[True], lot_size=[100],
    )
    sec = np.array([[1000], [0]], dtype=np.int64)
    cash = np.array([[0], [333]], dtype=np.int64)
    for exact_max_n in (0, 100):
        choice = settle_max_value(instr, sec, cash, allow_partial=True, exact_max_n=exact_max_n)
        assert choice.settled_quantity.tolist() == [300]
        assert choice.settled_cash.tolist() == [300]


def test_greedy_prefers_value_and_reports_method() -> None:
    # One seller holds 1 X and two buyers want it: the higher-paying one settles.
    instr = InstructionSet.create(
        deliverer=[0, 0], receiver=[1, 2], security=[0, 0], quantity=[1, 1],
        currency=[0, 0], cash=[10, 20],
    )
    sec = np.array([[1], [0], [0]], dtype=np.int64)
    cash = np.array([[0], [100], [100]], dtype=np.int64)
    greedy = settle_max_value(instr, sec, cash, exact_max_n=0, compute_lp_bound=False)
    assert greedy.method is Method.greedy and greedy.status is Status.heuristic
    assert greedy.settled.tolist() == [False, True]
    exact = settle_max_value(instr, sec, cash)
    assert exact.status is Status.optimal
    assert exact.settled.tolist() == [False, True]


def test_solvers_write_nothing_to_stdout(capfd: pytest.CaptureFixture[str]) -> None:
    # Standard output carries the command line's JSON; the solver banner must not land there.
    instr = InstructionSet.create(
        deliverer=[0, 1], receiver=[1, 0], security=[0, 0], quantity=[1, 1],
        currency=[0, 0], cash=[5, 7],
    )
    settle_max_value(instr, zeros(2, 1), zeros(2, 1))
    assert capfd.readouterr().out == ""


def test_same_batch_same_answer() -> None:
    rng = np.random.default_rng(7)
    n = 2_000
    instr = InstructionSet.create(
        deliverer=rng.integers(0, 50, n), receiver=rng.integers(0, 50, n),
        security=rng.integers(0, 10, n), quantity=rng.integers(1, 1_000, n),
        currency=rng.integers(0, 2, n), cash=rng.integers(1, 10**6, n),
        link=np.where(rng.random(n) < 0.1, rng.integers(0, 100, n), -1),
        partial_allowed=rng.random(n) < 0.5, lot_size=rng.integers(1, 50, n),
    )
    sec = rng.integers(0, 5_000, (50, 10))
    cash = rng.integers(0, 5 * 10**6, (50, 2))
    first = settle_max_value(instr, sec, cash, exact_max_n=0, allow_partial=True,
                             compute_lp_bound=False)
    again = settle_max_value(instr, sec, cash, exact_max_n=0, allow_partial=True,
                             compute_lp_bound=False)
    assert np.array_equal(first.settled_quantity, again.settled_quantity)
    assert np.array_equal(first.settled_cash, again.settled_cash)
    check_feasible(instr, sec, cash, zeros(50, 2), first, allow_partial=True)


def test_empty_batch() -> None:
    choice = settle_max_value(InstructionSet.create(
        deliverer=[], receiver=[], security=[], quantity=[], currency=[], cash=[],
    ), zeros(1, 1), zeros(1, 1))
    assert choice.settled_value == 0 == choice.lp_bound


@pytest.mark.parametrize(
    ("field", "value"),
    [("deliverer", [5]), ("quantity", [-1]), ("cash", [-1]), ("lot_size", [0]), ("link", [-2])],
)
def test_malformed_batches_are_refused(field: str, value: list[int]) -> None:
    fields: dict[str, list[int]] = {
        "deliverer": [0], "receiver": [1], "security": [0], "quantity": [1], "currency": [0],
        "cash": [1], "link": [-1], "lot_size": [1],
    }
    fields[field] = value
    instr = InstructionSet.create(**fields)  # type: ignore[arg-type]
    with pytest.raises(InputError):
        settle_max_value(instr, zeros(2, 1), zeros(2, 1))


def test_opening_balance_below_floor_is_refused() -> None:
    instr = InstructionSet.create(
        deliverer=[0], receiver=[1], security=[0], quantity=[1], currency=[0], cash=[1],
    )
    with pytest.raises(InputError):
        settle_max_value(instr, zeros(2, 1), np.array([[0], [-1]], dtype=np.int64))


# --------------------------------------------------------------------------------------------
# Properties


@st.composite
def batches(draw: st.DrawFn, max_n: int = 10, partial: bool = False) -> tuple:
    n_acc = draw(st.integers(2, 4))
    n_sec = draw(st.integers(1, 2))
    n_ccy = draw(st.integers(1, 2))
    n = draw(st.integers(1, max_n))
    acc = st.integers(0, n_acc - 1)
    deliverer = draw(st.lists(acc, min_size=n, max_size=n))
    receiver = [
        (d + 1 + draw(st.integers(0, n_acc - 2))) % n_acc for d in deliverer
    ]
    lots = draw(st.lists(st.integers(1, 3), min_size=n, max_size=n))
    quantity = [lot * draw(st.integers(1, 3)) + draw(st.integers(0, 1)) for lot in lots]
    instr = InstructionSet.create(
        deliverer=deliverer,
        receiver=receiver,
        security=draw(st.lists(st.integers(0, n_sec - 1), min_size=n, max_size=n)),
        quantity=quantity if partial else draw(
            st.lists(st.integers(0, 6), min_size=n, max_size=n)),
        currency=draw(st.lists(st.integers(0, n_ccy - 1), min_size=n, max_size=n)),
        cash=draw(st.lists(st.integers(0, 60), min_size=n, max_size=n)),
        link=draw(st.lists(st.sampled_from([-1, -1, -1, 0, 1]), min_size=n, max_size=n)),
        partial_allowed=draw(st.lists(st.booleans(), min_size=n, max_size=n)),
        lot_size=lots,
        min_partial_value=draw(st.integers(0, 20)),
    )
    sec = np.array(draw(st.lists(st.lists(st.integers(0, 6), min_size=n_sec, max_size=n_sec),
                                 min_size=n_acc, max_size=n_acc)), dtype=np.int64)
    credit = np.array(draw(st.lists(st.lists(st.integers(0, 15), min_size=n_ccy,
                                             max_size=n_ccy), min_size=n_acc, max_size=n_acc)),
                      dtype=np.int64)
    cash = np.array(draw(st.lists(st.lists(st.integers(0, 60), min_size=n_ccy, max_size=n_ccy),
                                  min_size=n_acc, max_size=n_acc)), dtype=np.int64) - credit
    return instr, sec, cash, credit


PROPERTY_SETTINGS = settings(
    max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow],
)


@PROPERTY_SETTINGS
@given(batches())
def test_exact_path_matches_brute_force_and_stays_feasible(batch: tuple) -> None:
    instr, sec, cash, credit = batch
    choice = settle_max_value(instr, sec, cash, credit)
    check_feasible(instr, sec, cash, credit, choice, allow_partial=False)
    assert choice.settled_value == brute_force_optimum(instr, sec, cash, credit, False)
    assert choice.settled_value <= choice.lp_bound


@PROPERTY_SETTINGS
@given(batches())
def test_heuristics_are_feasible_and_below_the_optimum(batch: tuple) -> None:
    instr, sec, cash, credit = batch
    optimum = brute_force_optimum(instr, sec, cash, credit, False)
    greedy = settle_max_value(instr, sec, cash, credit, exact_max_n=0, compute_lp_bound=False)
    check_feasible(instr, sec, cash, credit, greedy, allow_partial=False)
    assert greedy.method is Method.greedy and not greedy.lp_optimal
    assert greedy.settled_value <= optimum
    assert greedy.lp_bound == int(instr.cash.sum())
    guided = settle_max_value(instr, sec, cash, credit, exact_max_n=0)
    check_feasible(instr, sec, cash, credit, guided, allow_partial=False)
    assert guided.method in (Method.greedy, Method.lp_rounding)
    assert greedy.settled_value <= guided.settled_value <= optimum <= guided.lp_bound


@PROPERTY_SETTINGS
@given(batches(max_n=6, partial=True))
def test_partial_settlement_respects_lots_minimum_and_optimum(batch: tuple) -> None:
    instr, sec, cash, credit = batch
    optimum = brute_force_optimum(instr, sec, cash, credit, True)
    for exact_max_n in (0, 100):
        choice = settle_max_value(instr, sec, cash, credit, allow_partial=True,
                                  exact_max_n=exact_max_n)
        check_feasible(instr, sec, cash, credit, choice, allow_partial=True)
        assert choice.settled_value <= optimum
        if exact_max_n:
            assert choice.status is Status.optimal
            assert choice.settled_value == optimum


@settings(max_examples=10, deadline=None)
@given(st.integers(0, 2**32 - 1), st.booleans())
def test_larger_random_batches_greedy_against_milp(seed: int, allow_partial: bool) -> None:
    # Partial settlement makes the integer program much harder (the rounded-down cash is an
    # integer column), so those batches are smaller.
    rng = np.random.default_rng(seed)
    n, n_acc, n_sec = (40, 10, 3) if allow_partial else (150, 20, 4)
    instr = InstructionSet.create(
        deliverer=rng.integers(0, n_acc, n),
        receiver=rng.integers(0, n_acc, n),
        security=rng.integers(0, n_sec, n),
        quantity=rng.integers(1, 100, n),
        currency=rng.integers(0, 2, n),
        cash=rng.integers(1, 10_000, n),
        link=np.where(rng.random(n) < 0.2, rng.integers(0, 20, n), -1),
        partial_allowed=rng.random(n) < 0.5,
        lot_size=rng.integers(1, 10, n),
    )
    sec = rng.integers(0, 150, (n_acc, n_sec))
    cash = rng.integers(0, 30_000, (n_acc, 2))
    credit = zeros(n_acc, 2)
    greedy = settle_max_value(instr, sec, cash, exact_max_n=0, allow_partial=allow_partial,
                              compute_lp_bound=False)
    exact = settle_max_value(instr, sec, cash, allow_partial=allow_partial)
    check_feasible(instr, sec, cash, credit, greedy, allow_partial=allow_partial)
    check_feasible(instr, sec, cash, credit, exact, allow_partial=allow_partial)
    assert exact.status is Status.optimal
    assert greedy.settled_value <= exact.settled_value == exact.upper_bound <= exact.lp_bound
