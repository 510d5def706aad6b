"""One settlement cycle, and the settlement state that outlives it (the settlement book).

The state machine hands the cycle its instructions (the due positions rolled into one per member
and security) and the balances; the book decides what settles and returns, per instruction, the
quantity and cash that move (a part, where partial settlement applies) and why the rest did not.
It may also move balances itself through the :class:`Accounts` it is given (a securities loan, a
central-bank credit), always in pairs that conserve every security and currency. Its own state
(configuration, lender offers, open loans, credit) is digested into the state root.
Imports clearhouse.core and clearhouse.settlement only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from clearhouse.core.hashing import canonical_json, sha256
from clearhouse.settlement.dvp import settle_batch


class Accounts(Protocol):
    """Balance moves the book may make; every one conserves its asset."""

    def move_securities(self, source: int, target: int, security: int, quantity: int) -> None: ...

    def move_cash(self, source: int, target: int, currency: int, amount_minor: int) -> None: ...

    def central_bank_credit(self, account: int, currency: int, amount_minor: int) -> None:
        """Create (amount > 0) or retire (amount < 0) central-bank money on an account."""
        ...


@dataclass(frozen=True, slots=True)
class CycleInstructions:
    """A cycle's instructions against the CCP, one per (member, security); all int64 arrays.

    Attributes:
        member, security, currency: indices; quantity (> 0 the member receives), cash (minor
        units, > 0 the member receives); first_due: day number the oldest part fell due;
        priority: rank, 0 = most senior (oldest first, then member, then security).
    """

    member: np.ndarray
    security: np.ndarray
    currency: np.ndarray
    quantity: np.ndarray
    cash: np.ndarray
    first_due: np.ndarray
    priority: np.ndarray

    def __len__(self) -> int:
        return len(self.member)


@dataclass(frozen=True, slots=True)
class CycleResult:
    """What moved in a cycle, per instruction.

    Attributes:
        settled_quantity, settled_cash: the part that settled (same signs as the instruction;
            equal to it when settled in full, zero when failed).
        reason: index into ``settlement.dvp.REASONS`` for an instruction not settled in full.
        rounds: decision rounds taken.
        events: JSON-able records of anything else the cycle did (loans, credit), for receipts.
    """

    settled_quantity: np.ndarray
    settled_cash: np.ndarray
    reason: np.ndarray
    rounds: int
    events: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class SettlementConfig:
    """How the ledger settles; fixed at genesis so every node settles alike.

    Attributes:
        dvp_model: 3 = net batch against the CCP (the default).
    """

    dvp_model: int = 3

    @classmethod
    def from_json(cls, raw: dict[str, Any] | None) -> SettlementConfig:
        raw = raw or {}
        return cls(dvp_model=int(raw.get("dvp_model", 3)))

    def to_json(self) -> dict[str, Any]:
        return {"dvp_model": self.dvp_model}


class SettlementBook:
    """The settlement rules in force and the settlement state beyond balances."""

    def __init__(self, config: SettlementConfig | None = None) -> None:
        self.config = config or SettlementConfig()

    def settle(
        self,
        day: int,
        instructions: CycleInstructions,
        securities: np.ndarray,
        cash: np.ndarray,
        ccp: int,
        accounts: Accounts,
    ) -> CycleResult:
        """Decide the cycle (net DvP batch by deselection, ``settlement.dvp``)."""
        i = instructions
        outcome = settle_batch(i.member, i.security, i.quantity, i.cash, i.currency, i.priority,
                               securities, cash, ccp)
        ok = outcome.settled
        return CycleResult(
            settled_quantity=np.where(ok, i.quantity, 0),
            settled_cash=np.where(ok, i.cash, 0),
            reason=outcome.reason,
            rounds=outcome.rounds,
        )

    def digest(self) -> bytes:
        return sha256(b"clearhouse/settlement-book/v1", canonical_json(self.config.to_json()))
