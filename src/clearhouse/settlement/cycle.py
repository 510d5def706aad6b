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

    def participant_index(self, participant_id: str) -> int | None: ...

    def participant_id(self, index: int) -> str: ...

    def participant_role(self, index: int) -> str: ...

    def security_index(self, security_id: str) -> int | None: ...

    def security_id(self, index: int) -> str: ...

    def currency_index(self, currency: str) -> int | None: ...

    def lot_size(self, security: int) -> int: ...

    def central_bank(self) -> int:
        """Index of the central bank's account."""
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


@dataclass(frozen=True, slots=True)
class AcceptedTrades:
    """Trades accepted in one batch, the columns settlement needs (int64 unless said).

    Attributes:
        buyer, seller, security, currency: indices; quantity; value (minor units);
        settlement_day: day number; partial_allowed: bool.
    """

    buyer: np.ndarray
    seller: np.ndarray
    security: np.ndarray
    currency: np.ndarray
    quantity: np.ndarray
    value: np.ndarray
    settlement_day: np.ndarray
    partial_allowed: np.ndarray

    def __len__(self) -> int:
        return len(self.quantity)


@dataclass(frozen=True, slots=True)
class BookOutcome:
    """The book's answer to a submission of one of its own kinds.

    Attributes: status ('accepted' or a SubmissionStatus value), reason, summary (JSON-able),
    rejections ((item id, reason) pairs for refused items of an accepted submission).
    """

    status: str
    reason: str
    summary: dict[str, Any]
    rejections: list[tuple[str, str]]


@dataclass(frozen=True, slots=True)
class PartyRecord:
    """Outcomes of instructions the book settles itself (not CCP positions), one row per party
    concerned, in the form reports read (same fields as the machine's cycle records).

    Attributes: day; member, security, quantity (> 0 receive), cash (> 0 receive), first_due,
    settled (bool, in full), reason (index into dvp.REASONS), settled_quantity, settled_cash.
    """

    day: int
    member: np.ndarray
    security: np.ndarray
    quantity: np.ndarray
    cash: np.ndarray
    first_due: np.ndarray
    settled: np.ndarray
    reason: np.ndarray
    settled_quantity: np.ndarray
    settled_cash: np.ndarray


#: kinds of submission the book applies itself
BOOK_KINDS: tuple[str, ...] = ()


class SettlementBook:
    """The settlement rules in force and the settlement state beyond balances.

    The state machine calls, in block order: :meth:`apply` for the book's own kinds
    (``BOOK_KINDS``), :meth:`on_accepted` after each trade batch, :meth:`takes_trades` at each
    cut-off (True: the book keeps the day's trades as its own gross instructions instead of the
    machine netting them against the CCP), and at each settlement run :meth:`settle` for the net
    positions against the CCP, then :meth:`settle_own` for whatever the book holds itself.
    """

    def __init__(self, config: SettlementConfig | None = None) -> None:
        self.config = config or SettlementConfig()

    def apply(
        self, kind: str, submitter: int, payload: bytes, day: int, accounts: Accounts
    ) -> BookOutcome:
        """A submission of one of ``BOOK_KINDS`` (none under the default rules)."""
        return BookOutcome("unknown_kind", f"the settlement book does not apply {kind!r}", {}, [])

    def on_accepted(self, trades: AcceptedTrades, day: int, accounts: Accounts) -> list[dict[str, Any]]:
        """Called after each batch's trades are accepted; returns events (none by default)."""
        return []

    def takes_trades(self, trades: AcceptedTrades, day: int) -> bool:
        """At cut-off: True when the book keeps these trades itself (gross models)."""
        return False

    def settle_own(self, day: int, securities: np.ndarray, cash: np.ndarray, accounts: Accounts) -> PartyRecord | None:
        """Settle what the book holds itself (nothing under the default rules)."""
        return None

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
