"""Auto-collateralisation: intraday central-bank credit against eligible securities.

The central bank sets the policy (the ``collateral_policy`` kind): which securities are eligible
and the haircut of each, in basis points. When a member's cash is short at settlement, the book
asks here for credit; the room is the value of the member's eligible securities in that currency,
after haircuts, less the credit it already has outstanding (not overdue). Two kinds of collateral
count: securities on stock (what the member holds, less what it delivers in the same settlement)
and the securities it is receiving in that settlement (self-collateralisation), valued at their
instruction's price. Stock is valued at the price of the security's last accepted trade (value
over quantity, exact); a security not yet traded has no collateral value.

A credit is central-bank money created on the member's account (``central_bank_credit`` > 0). It
is repaid, money retired (``central_bank_credit`` < 0), at the end of the settlement run
``credit_term_days`` runs after it was granted (0: the same business day's run, i.e. intraday).
What the member's cash cannot repay then is reported (``credit_not_repaid``) and kept as an
overdue loan of the central bank: the pledge, until then a floating charge on the member's
eligible securities, becomes a transfer of enough of them (lowest haircut first, then security
order; as far as the member holds them) to the central bank's account. Every later run repays
what it can; once the loan is repaid in full the collateral goes back to the member
(``credit_repaid``). Credits granted to one member in one currency on one day are one credit.
Imports clearhouse.core and clearhouse.settlement only.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

import numpy as np

from clearhouse.core.errors import invariant

if TYPE_CHECKING:
    from clearhouse.settlement.cycle import Accounts

BPS = 10_000


def haircut_bps(text: object) -> int | None:
    """A haircut in percent (decimal text or number) as basis points; None unless 0 <= h < 100 in whole bps."""
    try:
        bps = Decimal(str(text).strip()) * 100
    except InvalidOperation:
        return None
    if not bps.is_finite() or bps != bps.to_integral_value() or not 0 <= bps < BPS:
        return None
    return int(bps)


@dataclass(frozen=True, slots=True)
class Price:
    """The last accepted trade of a security.

    Attributes:
        currency: currency index; value: the trade's cash (minor units); quantity: its units.
    """

    currency: int
    value: int
    quantity: int

    def of(self, quantity: int) -> int:
        """Value of ``quantity`` units, rounded down to the minor unit."""
        return quantity * self.value // self.quantity


@dataclass(frozen=True, slots=True)
class Credit:
    """A central-bank credit to a member.

    Attributes:
        credit_id: sequence number; member, currency: indices; amount: outstanding (minor units);
        granted: total granted; day: day number granted; runs_left: settlement runs until it is due
        (0: repaid at the end of the current run); overdue: not repaid when due;
        collateral: (security, quantity) pairs transferred to the central bank while overdue.
    """

    credit_id: int
    member: int
    currency: int
    amount: int
    granted: int
    day: int
    runs_left: int
    overdue: bool = False
    collateral: tuple[tuple[int, int], ...] = ()

    def to_json(self) -> list[Any]:
        return [self.credit_id, self.member, self.currency, self.amount, self.granted, self.day,
                self.runs_left, self.overdue, [list(c) for c in self.collateral]]


class CollateralBook:
    """The collateral policy, the valuation prices and the open credits.

    Attributes:
        haircut: security index -> haircut in basis points (eligible securities only).
        prices: security index -> its last accepted trade.
        credits: open credits, oldest first.
        next_id: id of the next credit.
    """

    def __init__(self) -> None:
        self.haircut: dict[int, int] = {}
        self.prices: dict[int, Price] = {}
        self.credits: list[Credit] = []
        self.next_id = 0

    def update_prices(self, security: np.ndarray, currency: np.ndarray, value: np.ndarray,
                      quantity: np.ndarray) -> None:
        """Record each security's last trade of a batch (rows in arrival order)."""
        if not len(security):
            return
        rev = security[::-1]
        uniq, first = np.unique(rev, return_index=True)
        last = len(security) - 1 - first
        for s, i in zip(uniq.tolist(), last.tolist(), strict=True):
            self.prices[s] = Price(int(currency[i]), int(value[i]), int(quantity[i]))

    def _after_haircut(self, security: int, value: int) -> int:
        return value * (BPS - self.haircut[security]) // BPS

    def room(self, member: int, currency: int, holdings: np.ndarray, deliveries: dict[int, int],
             receipts: list[tuple[int, int]]) -> int:
        """Credit a member could still get in a currency.

        ``holdings`` is the member's securities row, ``deliveries`` what it delivers per security in
        the same settlement, ``receipts`` (security, value) of what it receives in it.
        """
        value = 0
        for s, h in sorted(self.haircut.items()):
            price = self.prices.get(s)
            if price is None or price.currency != currency or s >= len(holdings):
                continue
            free = int(holdings[s]) - deliveries.get(s, 0)
            if free > 0:
                value += price.of(free) * (BPS - h) // BPS
        value += sum(self._after_haircut(s, v) for s, v in receipts if s in self.haircut)
        used = sum(c.amount for c in self.credits if c.member == member and c.currency == currency and not c.overdue)
        return max(0, value - used)

    def grant(self, member: int, currency: int, amount: int, day: int, term: int, accounts: Accounts) -> dict[str, Any]:
        """Create ``amount`` of central-bank money on the member's account, as a credit."""
        invariant(amount > 0, "a central-bank credit must be positive")
        accounts.central_bank_credit(member, currency, amount)
        for k, c in enumerate(self.credits):
            if (c.member, c.currency, c.day, c.overdue) == (member, currency, day, False):
                self.credits[k] = replace(c, amount=c.amount + amount, granted=c.granted + amount)
                credit_id = c.credit_id
                break
        else:
            credit_id = self.next_id
            self.credits.append(Credit(credit_id, member, currency, amount, amount, day, term))
            self.next_id += 1
        return {"event": "credit_granted", "credit_id": credit_id, "member": accounts.participant_id(member),
                "currency": accounts.currencies[currency], "amount": amount}

    def _seize(self, c: Credit, unpaid: int, accounts: Accounts) -> tuple[tuple[tuple[int, int], ...], int]:
        """Transfer eligible securities worth ``unpaid`` after haircuts to the central bank.

        Returns the (security, quantity) pairs taken and what they leave uncovered.
        """
        cb = accounts.central_bank()
        taken: list[tuple[int, int]] = []
        left = unpaid
        holdings = accounts.sec_bal[c.member]
        for s, h in sorted(self.haircut.items(), key=lambda kv: (kv[1], kv[0])):
            price = self.prices.get(s)
            if left <= 0 or price is None or price.currency != c.currency or h >= BPS or s >= len(holdings):
                continue
            # units whose value after the haircut covers what is left, rounded up
            per = price.value * (BPS - h)
            need = (left * price.quantity * BPS + per - 1) // per if per else 0
            qty = min(int(holdings[s]), need)
            if qty > 0:
                accounts.move_securities(c.member, cb, s, qty)
                taken.append((s, qty))
                left -= price.of(qty) * (BPS - h) // BPS
        return tuple(taken), max(0, left)

    def end_of_run(self, day: int, accounts: Accounts) -> list[dict[str, Any]]:
        """Repay the credits due at the end of a settlement run; see the module docstring."""
        events: list[dict[str, Any]] = []
        keep: list[Credit] = []
        cash = accounts.cash_bal
        cb = accounts.central_bank()
        for c in self.credits:
            if not c.overdue and c.runs_left > 0:
                keep.append(replace(c, runs_left=c.runs_left - 1))
                continue
            pay = min(c.amount, int(cash[c.member, c.currency]))
            if pay > 0:
                accounts.central_bank_credit(c.member, c.currency, -pay)
            left = c.amount - pay
            base = {"credit_id": c.credit_id, "member": accounts.participant_id(c.member),
                    "currency": accounts.currencies[c.currency], "repaid": pay, "outstanding": left}
            if left == 0:
                for s, qty in c.collateral:
                    accounts.move_securities(cb, c.member, s, qty)
                events.append({"event": "credit_repaid", **base, "late": c.overdue})
            elif c.overdue:
                keep.append(replace(c, amount=left))
                events.append({"event": "credit_overdue", **base})
            else:
                taken, uncovered = self._seize(c, left, accounts)
                keep.append(replace(c, amount=left, overdue=True, collateral=taken))
                events.append({"event": "credit_not_repaid", **base, "uncovered": uncovered,
                               "collateral": [[accounts.security_id(s), q] for s, q in taken]})
        self.credits = keep
        return events

    def to_json(self) -> dict[str, Any] | None:
        if not (self.haircut or self.prices or self.credits):
            return None
        return {
            "haircut": sorted([s, h] for s, h in self.haircut.items()),
            "prices": sorted([s, p.currency, p.value, p.quantity] for s, p in self.prices.items()),
            "credits": [c.to_json() for c in self.credits],
            "next_id": self.next_id,
        }
