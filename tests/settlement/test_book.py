"""The settlement book on its own: configuration, its kinds, trade-by-trade order, lending and
recalls, central-bank credit, the optimiser on net instructions against brute force."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clearhouse.core.errors import InputError
from clearhouse.core.hashing import canonical_json, sha256
from clearhouse.settlement.cycle import (
    AcceptedTrades,
    CycleInstructions,
    SettlementBook,
    SettlementConfig,
)
from clearhouse.settlement.dvp import REASONS
from clearhouse.settlement.gross import GrossInstructions, apply_transfers
from clearhouse.settlement.lending import loan_fee

DAY = 20_514  # 2026-03-02


class Ledger:
    """An in-memory Accounts: participants with roles, securities with currencies and lots."""

    def __init__(self, people: dict[str, str], securities: dict[str, tuple[str, int]]) -> None:
        self.ids = list(people)
        self.roles = list(people.values())
        self.sids = list(securities)
        self.currencies = sorted({c for c, _ in securities.values()})
        self.lots = [lot for _, lot in securities.values()]
        self.sec_ccy = [self.currencies.index(c) for c, _ in securities.values()]
        self.sec_bal = np.zeros((len(people), len(securities)), dtype=np.int64)
        self.cash_bal = np.zeros((len(people), len(self.currencies)), dtype=np.int64)
        self.created = 0

    def move_securities(self, source: int, target: int, security: int, quantity: int) -> None:
        self.sec_bal[source, security] -= quantity
        self.sec_bal[target, security] += quantity

    def move_cash(self, source: int, target: int, currency: int, amount_minor: int) -> None:
        self.cash_bal[source, currency] -= amount_minor
        self.cash_bal[target, currency] += amount_minor

    def central_bank_credit(self, account: int, currency: int, amount_minor: int) -> None:
        self.cash_bal[account, currency] += amount_minor
        self.created += amount_minor

    def participant_index(self, participant_id: str) -> int | None:
        return self.ids.index(participant_id) if participant_id in self.ids else None

    def participant_id(self, index: int) -> str:
        return self.ids[index]

    def participant_role(self, index: int) -> str:
        return self.roles[index]

    def security_index(self, security_id: str) -> int | None:
        return self.sids.index(security_id) if security_id in self.sids else None

    def security_id(self, index: int) -> str:
        return self.sids[index]

    def currency_index(self, currency: str) -> int | None:
        return self.currencies.index(currency) if currency in self.currencies else None

    def lot_size(self, security: int) -> int:
        return self.lots[security]

    def central_bank(self) -> int:
        return self.roles.index("central_bank")

    def p(self, pid: str) -> int:
        return self.ids.index(pid)


PEOPLE = {"CCP": "ccp", "CB": "central_bank", "A": "member", "B": "member", "C": "member", "L": "member"}


def ledger() -> Ledger:
    return Ledger(PEOPLE, {"X": ("AUD", 1), "Y": ("AUD", 10)})


def trades(lg: Ledger, rows: list[tuple[str, str, str, int, int, int]],
           partial: bool | list[bool] = False) -> AcceptedTrades:
    """(buyer, seller, security, quantity, value, settlement day) rows; partial for all or per row."""
    col = list(zip(*rows, strict=True))
    sec = np.array([lg.security_index(s) for s in col[2]], dtype=np.int64)
    return AcceptedTrades(
        buyer=np.array([lg.p(b) for b in col[0]], dtype=np.int64),
        seller=np.array([lg.p(s) for s in col[1]], dtype=np.int64),
        security=sec, currency=np.array([lg.sec_ccy[s] for s in sec], dtype=np.int64),
        quantity=np.array(col[3], dtype=np.int64), value=np.array(col[4], dtype=np.int64),
        settlement_day=np.array(col[5], dtype=np.int64),
        partial_allowed=np.array(partial if isinstance(partial, list) else [partial] * len(rows), dtype=bool),
    )


def payload(name: str, items: list[dict]) -> bytes:
    return json.dumps({name: items}).encode()


# ---------------------------------------------------------------- configuration

def test_config_round_trips_and_an_empty_default_book_digests_as_before() -> None:
    assert SettlementConfig.from_json(None) == SettlementConfig()
    assert SettlementConfig().to_json() == {"dvp_model": 3}
    rich = {"dvp_model": 2, "optimise": True, "partial": True, "min_partial_value": 500,
            "partial_windows": ["batch", "2026-03-02"], "cancel_after_days": 5, "buy_in_after_days": 3,
            "lending": True, "auto_collateral": True, "credit_term_days": 1, "mip_node_limit": 50}
    config = SettlementConfig.from_json(rich)
    assert config.to_json() == rich and SettlementConfig.from_json(config.to_json()) == config
    assert SettlementBook().digest() == sha256(b"clearhouse/settlement-book/v1", canonical_json({"dvp_model": 3}))


@pytest.mark.parametrize("raw", [
    {"dvp_model": 4}, {"dvp_model": "1"}, {"optimise": 1}, {"cancel_after_days": -1}, {"lending": "yes"},
    {"partial_windows": ["lunch"]}, {"partial_windows": "batch"}, {"speed": 1}, [],
])
def test_bad_config_is_refused(raw) -> None:
    with pytest.raises(InputError):
        SettlementConfig.from_json(raw)


def test_partial_windows_restrict_cycles_and_days() -> None:
    def on(windows: list[str], cycle: str, day: int) -> bool:
        return SettlementConfig.from_json({"partial": True, "partial_windows": windows}).partial_in(cycle, day)

    assert on([], "realtime", DAY) and on([], "batch", DAY + 1)
    assert on(["batch"], "batch", DAY) and not on(["batch"], "realtime", DAY)
    assert on(["2026-03-02"], "realtime", DAY) and not on(["2026-03-02"], "batch", DAY + 1)
    assert on(["batch", "2026-03-03"], "batch", DAY + 1) and not on(["batch", "2026-03-03"], "batch", DAY)
    assert not SettlementConfig().partial_in("batch", DAY)


# ---------------------------------------------------------------- the book's kinds

def test_book_kinds_check_roles_and_items() -> None:
    lg, book = ledger(), SettlementBook()
    offers = payload("offers", [{"security": "X", "quantity": 100, "fee_bps": 25},
                                {"security": "Q", "quantity": 1, "fee_bps": 1},
                                {"security": "X", "quantity": -1, "fee_bps": 1},
                                {"security": "Y", "quantity": 5, "fee_bps": 10_001}])
    assert book.apply("lend_offer", lg.p("CB"), offers, DAY, lg).status == "not_authorised"
    out = book.apply("lend_offer", lg.p("L"), offers, DAY, lg)
    assert (out.status, out.summary) == ("accepted", {"offers": 1, "rejected": 3})
    assert out.rejections == [("offer#1", "unknown_security"), ("offer#2", "invalid_quantity"),
                              ("offer#3", "invalid_fee")]
    assert book.lending.offers == {(lg.p("L"), 0): (100, 25)}
    policy = payload("securities", [{"security": "X", "haircut_pct": "12.5"}, {"security": "Y", "haircut_pct": "100"},
                                    {"security": "Y", "haircut_pct": "0.001"}])
    assert book.apply("collateral_policy", lg.p("A"), policy, DAY, lg).status == "not_authorised"
    out = book.apply("collateral_policy", lg.p("CB"), policy, DAY, lg)
    assert out.rejections == [("haircut#1", "invalid_haircut"), ("haircut#2", "invalid_haircut")]
    assert book.collateral.haircut == {0: 1250}
    assert book.apply("recall", lg.p("CCP"), payload("securities", [{"security": "X"}]), DAY, lg).status \
        == "not_authorised"
    with pytest.raises(InputError):
        book.apply("lend_offer", lg.p("L"), b"{not json", DAY, lg)
    with pytest.raises(InputError):
        book.apply("recall", lg.p("L"), payload("items", []), DAY, lg)
    assert book.apply("contract", lg.p("L"), b"{}", DAY, lg).status == "unknown_kind"
    assert book.digest() != SettlementBook().digest()


# ---------------------------------------------------------------- trade by trade

def test_model_1_settles_in_arrival_order_on_the_balances_left_by_earlier_trades() -> None:
    # A holds 100 X. A -> B then B -> C settles both; B -> C first fails (B has nothing yet),
    # A -> B then settles, and B -> C waits for the settlement run, where it settles.
    for rows, settled_now in (
        ([("B", "A", "X", 100, 1000, DAY), ("C", "B", "X", 100, 1000, DAY)], 2),
        ([("C", "B", "X", 100, 1000, DAY), ("B", "A", "X", 100, 1000, DAY)], 1),
    ):
        lg = ledger()
        lg.sec_bal[lg.p("A"), 0] = 100
        lg.cash_bal[[lg.p("B"), lg.p("C")], 0] = 1000
        book = SettlementBook(SettlementConfig(dvp_model=1))
        (event,) = book.on_accepted(trades(lg, rows), DAY, lg)
        assert (event["event"], event["settled"], event["failed"]) == ("realtime", settled_now, 2 - settled_now)
        assert book.takes_trades(trades(lg, rows), DAY)
        record = book.settle_own(DAY, lg.sec_bal, lg.cash_bal, lg)
        assert record is not None and record.settled.all() and len(record.member) == 4
        assert lg.sec_bal[lg.p("C"), 0] == 100 and len(book.gross) == 0


def test_gross_moves_are_applied_as_conserving_summed_transfers() -> None:
    rng = np.random.default_rng(3)
    lg = ledger()
    n = 40
    seller, buyer = rng.integers(2, 6, n), rng.integers(2, 6, n)
    keep = seller != buyer
    g = GrossInstructions.empty().concat(GrossInstructions(
        np.arange(n)[keep], seller[keep], buyer[keep], rng.integers(0, 2, n)[keep], np.zeros(n, np.int64)[keep],
        rng.integers(1, 100, n)[keep], rng.integers(1, 1000, n)[keep], np.full(n, DAY)[keep],
        np.full(n, DAY)[keep], np.zeros(n, bool)[keep], np.zeros(n, np.int64)[keep], np.zeros(n, np.int64)[keep],
        np.zeros(n, bool)[keep]))
    expect_sec, expect_cash = lg.sec_bal.copy(), lg.cash_bal.copy()
    np.add.at(expect_sec, (g.buyer, g.security), g.quantity)
    np.add.at(expect_sec, (g.seller, g.security), -g.quantity)
    np.add.at(expect_cash, (g.seller, g.currency), g.cash)
    np.add.at(expect_cash, (g.buyer, g.currency), -g.cash)
    calls = []
    real = lg.move_securities
    lg.move_securities = lambda *a: (calls.append(a), real(*a))  # type: ignore[method-assign]
    apply_transfers(g, g.quantity, g.cash, lg)
    assert np.array_equal(lg.sec_bal, expect_sec) and np.array_equal(lg.cash_bal, expect_cash)
    assert len(calls) < len(g)  # summed per account, not one call per trade


# ---------------------------------------------------------------- lending

def test_loan_fee_is_a_yearly_rate_per_day_rounded_up() -> None:
    assert loan_fee(5_000_000, 200, 3) == 822  # 821.9...
    assert loan_fee(5_000_000, 200, 0) == loan_fee(5_000_000, 200, 1) == 274
    assert loan_fee(0, 200, 10) == 0 and loan_fee(365_000, 10_000, 1) == 1000


def test_recalled_loan_is_returned_from_what_the_borrower_holds_or_flagged_for_buy_in() -> None:
    lg = ledger()
    lg.sec_bal[lg.p("L"), 0] = 300
    lg.sec_bal[lg.p("C"), 0] = 50
    lg.cash_bal[lg.p("B"), 0] = 10_000
    book = SettlementBook(SettlementConfig(dvp_model=2, lending=True, buy_in_after_days=2))
    book.apply("lend_offer", lg.p("L"), payload("offers", [{"security": "X", "quantity": 300, "fee_bps": 0}]), DAY, lg)
    sale = trades(lg, [("B", "A", "X", 200, 2000, DAY), ("B", "C", "X", 100, 1000, DAY)])
    book.on_accepted(sale, DAY, lg)
    book.takes_trades(sale, DAY)
    book.settle_own(DAY, lg.sec_bal, lg.cash_bal, lg)
    # A borrowed 200, C the 50 it lacked (L has 100 left of its 300 offer)
    loans = sorted((lg.participant_id(x.borrower), x.quantity) for x in book.lending.loans)
    assert loans == [("A", 200), ("C", 50)]
    assert lg.sec_bal[lg.p("B"), 0] == 300 and lg.sec_bal[lg.p("L"), 0] == 50
    assert book.lending.available(lg.p("A"), 0, lg.sec_bal) == 50
    book.apply("recall", lg.p("L"), payload("securities", [{"security": "X"}]), DAY + 1, lg)
    assert book.lending.offers == {}
    lg.sec_bal[lg.p("B"), 0] -= 50  # C gets 50 X back from elsewhere: a conserving move
    lg.sec_bal[lg.p("C"), 0] += 50
    book.settle_own(DAY + 1, lg.sec_bal, lg.cash_bal, lg)
    assert [lg.participant_id(x.borrower) for x in book.lending.loans] == ["A"]
    book.settle_own(DAY + 2, lg.sec_bal, lg.cash_bal, lg)
    events = [e for e in book.history if e["event"] in ("loan_returned", "recall_failed", "buy_in")]
    assert [(e["event"], e["borrower"], e.get("runs")) for e in events] == [
        ("recall_failed", "A", 1), ("loan_returned", "C", None), ("recall_failed", "A", 2), ("buy_in", "A", 2)]
    assert book.lending.loans[0].buy_in


# ---------------------------------------------------------------- central-bank credit

def test_credit_term_and_overdue_credit_repaid_later_gives_the_collateral_back() -> None:
    lg = ledger()
    book = SettlementBook(SettlementConfig(auto_collateral=True, credit_term_days=1))
    book.apply("collateral_policy", lg.p("CB"), payload("securities", [{"security": "X", "haircut_pct": 50}]), DAY, lg)
    book.collateral.update_prices(np.array([0]), np.array([0]), np.array([1000]), np.array([10]))  # 100 a unit
    lg.sec_bal[lg.p("A"), 0] = 40  # worth 4,000 minor, 2,000 after the haircut
    assert book.credit_room(lg.p("A"), 0, [], lg) == 2000
    assert book.credit_room(lg.p("A"), 0, [(0, 1000)], lg) == 2500  # plus what it is buying
    book.credit(lg.p("A"), 0, 1500, DAY, lg)
    assert lg.cash_bal[lg.p("A"), 0] == 1500 and book.credit_room(lg.p("A"), 0, [], lg) == 500
    lg.cash_bal[lg.p("A"), 0] = 0
    lg.cash_bal[lg.p("B"), 0] = 1500  # spent: conserving
    book.settle_own(DAY, lg.sec_bal, lg.cash_bal, lg)  # term 1: not due yet
    assert book.collateral.credits[0].amount == 1500
    book.settle_own(DAY + 1, lg.sec_bal, lg.cash_bal, lg)  # due, nothing to repay with
    (credit,) = book.collateral.credits
    assert credit.overdue and credit.collateral == ((0, 30),)  # 1,500 / (100 x 50%) = 30 units
    assert lg.sec_bal[lg.p("CB"), 0] == 30 and lg.sec_bal[lg.p("A"), 0] == 10
    lg.move_cash(lg.p("B"), lg.p("A"), 0, 1500)
    book.settle_own(DAY + 2, lg.sec_bal, lg.cash_bal, lg)
    assert book.collateral.credits == [] and lg.sec_bal[lg.p("A"), 0] == 40 and lg.created == 0
    assert [e["event"] for e in book.history] == ["credit_granted", "credit_not_repaid", "credit_repaid"]


# ---------------------------------------------------------------- partial settlement of net instructions

@pytest.mark.parametrize(("allowed", "settled"), [([True, True], 730), ([True, False], 0)])
def test_a_net_instruction_settles_in_part_only_when_every_trade_in_it_allows(allowed, settled) -> None:
    # A sells B 600 Y and 400 Y (lot 10) for today, holding 735: net A -1,000 Y, B +1,000 Y; in
    # part, 730 settle (whole lots).
    lg = ledger()
    lg.sec_bal[lg.p("A"), 1] = 735
    lg.cash_bal[lg.p("B"), 0] = 20_000
    book = SettlementBook(SettlementConfig(partial=True))
    book.on_accepted(trades(lg, [("B", "A", "Y", 600, 6000, DAY), ("B", "A", "Y", 400, 4000, DAY)], allowed), DAY, lg)
    instr = CycleInstructions(np.array([lg.p("A"), lg.p("B")]), np.array([1, 1]), np.zeros(2, np.int64),
                              np.array([-1000, 1000]), np.array([10_000, -10_000]), np.full(2, DAY), np.arange(2))
    result = book.settle(DAY, instr, lg.sec_bal.copy(), lg.cash_bal.copy(), lg.p("CCP"), lg)
    assert result.settled_quantity.tolist() == [-settled, settled]
    assert result.settled_cash.tolist() == [settled * 10, -settled * 10]
    assert [str(REASONS[r]) for r in result.reason] == ["insufficient_securities", "linked_instruction_failed"]
    # what stays open keeps its eligibility for the next run
    k = book.partial_keys
    assert (k.day.tolist(), k.ok.tolist()) == ([DAY, DAY], [all(allowed)] * 2)


# ---------------------------------------------------------------- the optimiser on net instructions

net_instruction = st.tuples(st.integers(2, 4), st.integers(0, 1), st.integers(-3, 3), st.integers(-3, 3))


@settings(max_examples=60, deadline=None)
@given(rows=st.lists(net_instruction, min_size=1, max_size=6, unique_by=lambda r: (r[0], r[1])),
       sec=st.lists(st.integers(0, 3), min_size=10, max_size=10),
       cash=st.lists(st.integers(0, 3), min_size=5, max_size=5), optimise=st.booleans())
def test_net_batch_by_the_optimiser_equals_brute_force(rows, sec, cash, optimise) -> None:
    rows = [r for r in rows if r[2] or r[3]]
    if not rows:
        return
    lg = Ledger({"CCP": "ccp", "CB": "central_bank", "A": "member", "B": "member", "C": "member"},
                {"X": ("AUD", 1), "Y": ("AUD", 1)})
    lg.sec_bal[:] = np.array(sec).reshape(5, 2) * 10
    lg.cash_bal[:, 0] = np.array(cash) * 100
    member, security, qty, money = (np.array(c, dtype=np.int64) for c in zip(*rows, strict=True))
    qty, money = qty * 10, money * 100
    n = len(rows)
    instr = CycleInstructions(member, security, np.zeros(n, np.int64), qty, money, np.full(n, DAY),
                              np.arange(n, dtype=np.int64))
    book = SettlementBook(SettlementConfig(optimise=optimise, partial=not optimise))
    result = book.settle(DAY, instr, lg.sec_bal.copy(), lg.cash_bal.copy(), 0, lg)
    sq, sc = result.settled_quantity, result.settled_cash
    # what the machine checks: never more than, nor against, the instruction
    assert ((sq == 0) | (np.sign(sq) == np.sign(qty))).all() and (np.abs(sq) <= np.abs(qty)).all()
    assert ((sc == 0) | (np.sign(sc) == np.sign(money))).all() and (np.abs(sc) <= np.abs(money)).all()
    assert ((result.reason == 0) == ((sq == qty) & (sc == money))).all()
    assert all(REASONS[r] is not None for r in result.reason[(sq != qty) | (sc != money)])

    def after(take: np.ndarray, tq: np.ndarray, tc: np.ndarray) -> bool:
        s, c = lg.sec_bal.copy(), lg.cash_bal.copy()
        np.add.at(s, (member[take], security[take]), tq[take])
        np.add.at(s[0], security[take], -tq[take])
        np.add.at(c[:, 0], member[take], tc[take])
        c[0, 0] -= tc[take].sum()
        return bool((s >= 0).all() and (c >= 0).all())

    assert after(np.ones(n, bool), sq, sc)
    best = max(int(np.abs(money[list(subset)]).sum()) for k in range(n + 1)
               for subset in itertools.combinations(range(n), k) if after(np.isin(np.arange(n), subset), qty, money))
    value = int(np.abs(sc).sum())
    assert value <= best
    if optimise:
        assert value == best
        (figures,) = result.events
        assert figures["event"] == "optimiser" and figures["settled_value"] <= figures["lp_bound"]
