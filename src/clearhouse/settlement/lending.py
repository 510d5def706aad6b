"""Securities lending: lender offers, automatic borrows at settlement, returns with a fee, recalls.

A member offers inventory with the ``lend_offer`` kind: per security, the quantity it makes
available in all (what is on loan included) and a fee in basis points a year. When a deliverer
is short at settlement and lending is on, the book borrows the whole shortfall (or nothing) from
the offers, cheapest fee first, then lender order; a lender lends at most its offer less what it
already has on loan, and never more than it holds beyond what it delivers itself in the same
settlement. Each lender's part is a :class:`Loan` with its terms; the securities move lender ->
borrower through the ``Accounts``.

At the end of every settlement run, open loans (oldest first) are returned when the borrower
holds the quantity beyond what it still has to deliver in that security and can pay the fee; the
securities go back and the fee moves borrower -> lender in the security's currency:
``fee = ceil(value x fee_bps x days / (10,000 x 365))`` with ``value`` the loan's value when taken
(price of the security's last accepted trade; 0 when it has none) and ``days`` the calendar days
on loan, at least one. A ``recall`` withdraws the lender's offer in a security and recalls its
open loans there: a recalled loan is returned from whatever the borrower holds, even securities
it would need for its own deliveries; every run that ends with it unreturned reports
``recall_failed``, and after ``buy_in_after_days`` such runs it is flagged for buy-in.
Imports clearhouse.core and clearhouse.settlement only.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from clearhouse.settlement.cycle import Accounts

DAY_BASIS = 365
FEE_BPS_MAX = 10_000


def loan_fee(value: int, fee_bps: int, days: int) -> int:
    """Fee of a loan: ``value`` at ``fee_bps`` a year for ``days`` (at least one), rounded up."""
    den = 10_000 * DAY_BASIS
    return (value * fee_bps * max(1, days) + den - 1) // den


@dataclass(frozen=True, slots=True)
class Loan:
    """An open securities loan.

    Attributes:
        loan_id: sequence number; lender, borrower, security, currency: indices; quantity: units
        lent; value: their value when lent (minor units); fee_bps: yearly fee; day: day number
        lent; recalled: day number of the recall (-1: not recalled); recall_fails: runs ended
        unreturned since the recall; buy_in: flagged for buy-in.
    """

    loan_id: int
    lender: int
    borrower: int
    security: int
    currency: int
    quantity: int
    value: int
    fee_bps: int
    day: int
    recalled: int = -1
    recall_fails: int = 0
    buy_in: bool = False

    def to_json(self) -> list[Any]:
        return [self.loan_id, self.lender, self.borrower, self.security, self.currency, self.quantity, self.value,
                self.fee_bps, self.day, self.recalled, self.recall_fails, self.buy_in]

    def describe(self, accounts: Accounts) -> dict[str, Any]:
        return {"loan_id": self.loan_id, "lender": accounts.participant_id(self.lender),
                "borrower": accounts.participant_id(self.borrower), "security": accounts.security_id(self.security),
                "currency": accounts.currencies[self.currency], "quantity": self.quantity, "value": self.value,
                "fee_bps": self.fee_bps}


class LendingBook:
    """Lender offers and open loans.

    Attributes:
        offers: (lender, security) -> (quantity offered in all, fee_bps).
        loans: open loans, oldest first.
        next_id: id of the next loan.
    """

    def __init__(self) -> None:
        self.offers: dict[tuple[int, int], tuple[int, int]] = {}
        self.loans: list[Loan] = []
        self.next_id = 0

    def offer(self, lender: int, security: int, quantity: int, fee_bps: int) -> None:
        """Set (replace) a lender's offer in a security; quantity 0 withdraws it."""
        if quantity:
            self.offers[(lender, security)] = (quantity, fee_bps)
        else:
            self.offers.pop((lender, security), None)

    def recall(self, lender: int, security: int, day: int) -> int:
        """Withdraw the offer and recall the open loans of a lender in a security; returns loans recalled."""
        self.offers.pop((lender, security), None)
        n = 0
        for k, loan in enumerate(self.loans):
            if loan.lender == lender and loan.security == security and loan.recalled < 0:
                self.loans[k] = replace(loan, recalled=day)
                n += 1
        return n

    def _on_loan(self, lender: int, security: int) -> int:
        return sum(loan.quantity for loan in self.loans if loan.lender == lender and loan.security == security)

    def _sources(self, borrower: int, security: int, sec: np.ndarray,
                 reserved: dict[tuple[int, int], int]) -> list[tuple[int, int, int]]:
        """(lender, quantity available, fee_bps), cheapest first."""
        found = []
        for (lender, s), (qty, fee) in self.offers.items():
            if s != security or lender == borrower:
                continue
            free = min(qty - self._on_loan(lender, s), int(sec[lender, s]) - reserved.get((lender, s), 0))
            if free > 0:
                found.append((fee, lender, free))
        return [(lender, free, fee) for fee, lender, free in sorted(found)]

    def available(self, borrower: int, security: int, sec: np.ndarray,
                  reserved: dict[tuple[int, int], int] | None = None) -> int:
        """What the offers could lend a borrower in a security now."""
        return sum(free for _, free, _ in self._sources(borrower, security, sec, reserved or {}))

    def borrow(self, borrower: int, security: int, quantity: int, currency: int, value: int, day: int,
               accounts: Accounts, reserved: dict[tuple[int, int], int] | None = None) -> list[dict[str, Any]]:
        """Borrow exactly ``quantity`` (worth ``value``) from the offers, or nothing; returns the loan events."""
        sources = self._sources(borrower, security, accounts.sec_bal, reserved or {})
        if sum(free for _, free, _ in sources) < quantity:
            return []
        events = []
        left = quantity
        for lender, free, fee in sources:
            take = min(free, left)
            if take <= 0:
                break
            accounts.move_securities(lender, borrower, security, take)
            loan = Loan(self.next_id, lender, borrower, security, currency, take, value * take // quantity, fee, day)
            self.loans.append(loan)
            self.next_id += 1
            left -= take
            events.append({"event": "loan", **loan.describe(accounts)})
        return events

    def end_of_run(self, day: int, accounts: Accounts, needs: dict[tuple[int, int], int],
                   buy_in_after: int) -> list[dict[str, Any]]:
        """Return what can be returned, report recalled loans still out; see the module docstring."""
        events: list[dict[str, Any]] = []
        keep: list[Loan] = []
        sec, cash = accounts.sec_bal, accounts.cash_bal
        for loan in self.loans:
            b, s = loan.borrower, loan.security
            free = int(sec[b, s]) - (0 if loan.recalled >= 0 else needs.get((b, s), 0))
            fee = loan_fee(loan.value, loan.fee_bps, day - loan.day)
            if free >= loan.quantity and int(cash[b, loan.currency]) >= fee:
                accounts.move_securities(b, loan.lender, s, loan.quantity)
                if fee:
                    accounts.move_cash(b, loan.lender, loan.currency, fee)
                events.append({"event": "loan_returned", **loan.describe(accounts), "fee": fee,
                               "days": max(1, day - loan.day), "recalled": loan.recalled >= 0})
                continue
            if loan.recalled >= 0:
                fails = loan.recall_fails + 1
                flag = loan.buy_in or (buy_in_after > 0 and fails >= buy_in_after)
                events.append({"event": "recall_failed", **loan.describe(accounts), "runs": fails})
                if flag and not loan.buy_in:
                    events.append({"event": "buy_in", "cause": "recall", **loan.describe(accounts), "runs": fails})
                loan = replace(loan, recall_fails=fails, buy_in=flag)
            keep.append(loan)
        self.loans = keep
        return events

    def to_json(self) -> dict[str, Any] | None:
        if not (self.offers or self.loans):
            return None
        return {
            "offers": sorted([lender, s, q, f] for (lender, s), (q, f) in self.offers.items()),
            "loans": [loan.to_json() for loan in self.loans],
            "next_id": self.next_id,
        }
