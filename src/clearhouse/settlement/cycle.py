"""One settlement cycle, and the settlement state that outlives it (the settlement book).

The state machine hands the cycle its instructions (the due positions rolled into one per member
and security) and the balances; the book decides what settles and returns, per instruction, the
quantity and cash that move (a part, where partial settlement applies) and why the rest did not.
It may also move balances itself through the :class:`Accounts` it is given (a securities loan, a
central-bank credit, the gross instructions of DvP models 1 and 2), always in moves that conserve
every security and currency. Its own state (configuration, gross instructions, lender offers,
open loans, credit, fail ages) is digested into the state root.

The regimes (``SettlementConfig.dvp_model``):

* **model 3** (default): net batch against the CCP at each settlement run, by deselection
  (``settlement.dvp``), or by the optimiser when ``optimise`` or partial settlement applies;
* **model 2**: every accepted trade is kept as a gross instruction at cut-off (nothing netted);
  at each settlement run the due ones settle as one batch, securities moving per instruction and
  cash checked net per member and currency (``settlement.gross.decide_gross_batch``, or the
  optimiser);
* **model 1**: every accepted trade is kept as a gross instruction on arrival; those due that day
  settle at once, trade by trade in arrival order, one batch submission at a time; at each
  settlement run the open ones due are retried trade by trade, oldest first-due first, then in
  arrival order.

Unsettled instructions are retried at every later run (recycling). Securities lending
(``settlement.lending``) and auto-collateralisation (``settlement.collateral``) act before a
decision; loans are returned and credit repaid at the end of each run (in :meth:`settle_own`).
Imports clearhouse.core and clearhouse.settlement only.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field, fields, replace
from typing import Any, Protocol

import numpy as np

from clearhouse.core.calendar import day_number, from_day_number
from clearhouse.core.errors import InputError
from clearhouse.core.exact import exact_bincount
from clearhouse.core.hashing import canonical_json, digest_arrays, sha256
from clearhouse.settlement.collateral import CollateralBook, haircut_bps
from clearhouse.settlement.dvp import REASONS, settle_batch
from clearhouse.settlement.gross import (
    CASH,
    LINK,
    SEC,
    Decision,
    GrossInstructions,
    apply_transfers,
    choice_event,
    decide_gross_batch,
    gross_instruction_set,
    gross_reasons,
    optimise,
    settle_in_order,
)
from clearhouse.settlement.lending import FEE_BPS_MAX, LendingBook
from clearhouse.settlement.optimize import InstructionSet


class Accounts(Protocol):
    """Balance moves the book may make (every one conserves its asset), and what it may read."""

    @property
    def sec_bal(self) -> np.ndarray:
        """Securities balances, participants x securities; read only (move through the methods)."""
        ...

    @property
    def cash_bal(self) -> np.ndarray:
        """Cash balances in minor units, participants x currencies; read only."""
        ...

    @property
    def currencies(self) -> list[str]:
        """Currency codes by index."""
        ...

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


#: cycle names a partial-settlement window may list
WINDOW_NAMES = ("realtime", "batch")


@dataclass(frozen=True, slots=True)
class SettlementConfig:
    """How the ledger settles; fixed at genesis (``cfg["settlement"]``) so every node settles alike.

    Attributes:
        dvp_model: 1 gross trade by trade in real time, 2 gross securities with net cash in a
            batch per settlement run, 3 net batch against the CCP (the default).
        optimise: decide batches (the net batch, model 2's gross batch) with the optimiser (most
            value settled) instead of deselection; the optimality gap against the LP bound is
            reported in the receipt (event ``optimiser``).
        exact_max_n: largest batch (optimiser rows) given to the integer program; larger ones get
            the optimiser's heuristic and LP rounding.
        lp_bound_max_n: largest batch whose LP relaxation is solved (to its optimum) for the bound
            the gap is reported against; beyond it the bound is the batch's total value.
        mip_node_limit: branch-and-bound nodes the integer program may explore. This, not a wall
            clock, bounds the solver, so every node reaches the same choice.
        partial: instructions that allow it (trades with ``partial_allowed``; a net instruction
            when every trade in it allowed it) may settle in part, in whole lots, worth at least
            ``min_partial_value``; the rest stays open.
        min_partial_value: smallest cash value (minor units) of a partial settlement.
        partial_windows: where partial settlement applies: cycle names (``realtime``: model 1's
            settlement on arrival; ``batch``: the settlement runs) and/or business days (ISO
            dates). Names restrict the cycles and dates the days; an empty side means all.
        cancel_after_days: a gross instruction (models 1, 2) that has failed at this many
            settlement runs (one per business day) is cancelled; 0: never. Net positions against
            the CCP are never cancelled (they are flagged for buy-in instead).
        buy_in_after_days: a delivery that has failed for lack of securities at this many runs,
            or a recalled loan left unreturned at this many, is flagged for buy-in; 0: never.
        lending: cover delivery shortfalls by automatic borrows from lender offers.
        auto_collateral: cover cash shortfalls by central-bank credit against eligible securities.
        credit_term_days: a credit is repaid at the end of the settlement run this many runs after
            the one of its day (0: the same business day's run: intraday credit).
    """

    dvp_model: int = 3
    optimise: bool = False
    exact_max_n: int = 2_000
    lp_bound_max_n: int = 200_000
    mip_node_limit: int = 1_000
    partial: bool = False
    min_partial_value: int = 0
    partial_windows: tuple[str, ...] = ()
    cancel_after_days: int = 0
    buy_in_after_days: int = 0
    lending: bool = False
    auto_collateral: bool = False
    credit_term_days: int = 0

    @classmethod
    def from_json(cls, raw: dict[str, Any] | None) -> SettlementConfig:
        """Read and check the genesis settlement object; unknown or ill-typed options raise InputError."""
        raw = {} if raw is None else raw
        if not isinstance(raw, dict):
            raise InputError("the settlement configuration must be an object")
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(raw) - set(known))
        if unknown:
            raise InputError(f"unknown settlement option(s): {', '.join(unknown)}")
        values: dict[str, Any] = {}
        for name, value in raw.items():
            default = known[name].default
            if name == "partial_windows":
                values[name] = _windows(value)
            elif isinstance(default, bool):
                if not isinstance(value, bool):
                    raise InputError(f"settlement option {name} must be true or false")
                values[name] = value
            else:
                if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 10**15:
                    raise InputError(f"settlement option {name} must be a whole number >= 0")
                values[name] = value
        config = cls(**values)
        if config.dvp_model not in (1, 2, 3):
            raise InputError("dvp_model must be 1, 2 or 3")
        return config

    def to_json(self) -> dict[str, Any]:
        """``dvp_model`` and every option that differs from its default."""
        out: dict[str, Any] = {"dvp_model": self.dvp_model}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name != "dvp_model" and value != f.default:
                out[f.name] = list(value) if isinstance(value, tuple) else value
        return out

    def partial_in(self, cycle: str, day: int) -> bool:
        """Whether partial settlement applies in a cycle ('realtime' or 'batch') on a day."""
        if not self.partial:
            return False
        names = [w for w in self.partial_windows if w in WINDOW_NAMES]
        days = [day_number(dt.date.fromisoformat(w)) for w in self.partial_windows if w not in WINDOW_NAMES]
        return (not names or cycle in names) and (not days or day in days)


def _windows(value: object) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(w, str) for w in value):
        raise InputError("partial_windows must be a list of cycle names or ISO dates")
    for w in value:
        if w not in WINDOW_NAMES:
            try:
                dt.date.fromisoformat(w)
            except ValueError:
                raise InputError(f"partial window {w!r} is neither {' nor '.join(WINDOW_NAMES)} nor a date") from None
    return tuple(value)


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
    """One settlement cycle's outcomes, one row per party concerned, as reports read them: the
    machine's net batch against the CCP (one row per member and security) and the instructions the
    book settles itself (a row for each party of a gross instruction).

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

    def arrays(self) -> list[np.ndarray]:
        return [getattr(self, f.name) for f in fields(self)[1:]]


def party_rows(day: int, g: GrossInstructions, d: Decision) -> PartyRecord:
    """Two rows per gross instruction, the seller's then the buyer's.

    The party that made an instruction fail gets the reason (the seller for securities, the buyer
    for cash); its counterparty gets ``linked_instruction_failed``.
    """
    sq, sc = d.settled_quantity, d.settled_cash
    full = (sq == g.quantity) & (sc == g.cash)
    seller_reason = np.where(d.reason == CASH, LINK, d.reason)
    buyer_reason = np.where(d.reason == SEC, LINK, d.reason)
    return PartyRecord(
        day, np.concatenate([g.seller, g.buyer]), np.concatenate([g.security, g.security]),
        np.concatenate([-g.quantity, g.quantity]), np.concatenate([g.cash, -g.cash]),
        np.concatenate([g.first_due, g.first_due]), np.concatenate([full, full]),
        np.concatenate([seller_reason, buyer_reason]).astype(np.int8),
        np.concatenate([-sq, sq]), np.concatenate([sc, -sc]),
    )


def _joined(records: list[PartyRecord], day: int) -> PartyRecord | None:
    records = [r for r in records if len(r.member)]
    if not records:
        return None
    return PartyRecord(day, *(np.concatenate(cols) for cols in zip(*(r.arrays() for r in records), strict=True)))


@dataclass(frozen=True, slots=True)
class PartialKeys:
    """Model 3 with partial settlement: whether every trade of a member in a security for a
    settlement day allowed partial settlement.

    Attributes: member, security, day (int64); ok (bool).
    """

    member: np.ndarray
    security: np.ndarray
    day: np.ndarray
    ok: np.ndarray

    @classmethod
    def empty(cls) -> PartialKeys:
        z = np.zeros(0, dtype=np.int64)
        return cls(z, z.copy(), z.copy(), np.zeros(0, dtype=bool))

    def merged(self, member: np.ndarray, security: np.ndarray, day: np.ndarray, ok: np.ndarray) -> PartialKeys:
        """These keys and the new ones, one row per key, ``ok`` only where every row allowed it."""
        rows = np.stack([np.concatenate([self.day, day]), np.concatenate([self.member, member]),
                         np.concatenate([self.security, security])], axis=1).astype(np.int64)
        if not len(rows):
            return self
        uniq, inv = np.unique(rows, axis=0, return_inverse=True)
        all_ok = np.ones(len(uniq), dtype=bool)
        np.logical_and.at(all_ok, inv.ravel(), np.concatenate([self.ok, ok]))
        return PartialKeys(uniq[:, 1].copy(), uniq[:, 2].copy(), uniq[:, 0].copy(), all_ok)


@dataclass(frozen=True, slots=True)
class NetFails:
    """Model 3 with buy-ins: the net instructions failing after the last run.

    Attributes: member, security, first_due, runs (settlement runs failed); flagged (bool).
    """

    member: np.ndarray
    security: np.ndarray
    first_due: np.ndarray
    runs: np.ndarray
    flagged: np.ndarray

    @classmethod
    def empty(cls) -> NetFails:
        z = np.zeros(0, dtype=np.int64)
        return cls(z, z.copy(), z.copy(), z.copy(), np.zeros(0, dtype=bool))


def _json_items(payload: bytes, name: str) -> list[dict[str, Any]]:
    try:
        body = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise InputError(f"payload is not JSON: {exc}") from exc
    items = body.get(name) if isinstance(body, dict) else None
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise InputError(f"payload needs a list of objects under {name!r}")
    if len(items) > ITEMS_MAX:
        raise InputError(f"more than {ITEMS_MAX} items")
    return items


def _whole(value: object, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= high


LEND_OFFER, RECALL, COLLATERAL_POLICY = "lend_offer", "recall", "collateral_policy"
#: kinds of submission the book applies itself
BOOK_KINDS: tuple[str, ...] = (LEND_OFFER, RECALL, COLLATERAL_POLICY)
#: who may submit each of the book's kinds
BOOK_ROLES = {LEND_OFFER: "member", RECALL: "member", COLLATERAL_POLICY: "central_bank"}
ITEMS_MAX = 100_000
QUANTITY_MAX = 10**15


class SettlementBook:
    """The settlement rules in force and the settlement state beyond balances.

    The state machine calls, in block order: :meth:`apply` for the book's own kinds
    (``BOOK_KINDS``), :meth:`on_accepted` after each trade batch, :meth:`takes_trades` at each
    cut-off (True: the book keeps the day's trades as its own gross instructions instead of the
    machine netting them against the CCP), and at each settlement run :meth:`settle` for the net
    positions against the CCP, then :meth:`settle_own` for whatever the book holds itself and the
    end of the run (loan returns, credit repayment).

    Attributes:
        config: the rules. gross: open gross instructions (models 1, 2); next_seq: next arrival
        number. realtime: model 1's settlements on arrival since the last run, reported with the
        run. partial_keys, net_fails: model 3 partial eligibility and fail ages. lending,
        collateral: offers and loans; policy, prices and credit. history: every event, in order
        (derived from the log like the machine's history, so not part of the state root).
    """

    def __init__(self, config: SettlementConfig | None = None) -> None:
        self.config = config or SettlementConfig()
        self.gross = GrossInstructions.empty()
        self.next_seq = 0
        self.realtime: PartyRecord | None = None
        self.partial_keys = PartialKeys.empty()
        self.net_fails = NetFails.empty()
        self.lending = LendingBook()
        self.collateral = CollateralBook()
        self.history: list[dict[str, Any]] = []
        self._events: list[dict[str, Any]] = []
        self._needs: dict[tuple[int, int], int] = {}

    # ---------------------------------------------------------------- events

    def _emit(self, day: int, *events: dict[str, Any]) -> None:
        for e in events:
            e = {**e, "date": from_day_number(day).isoformat()}
            self._events.append(e)
            self.history.append(e)

    def _take_events(self) -> list[dict[str, Any]]:
        events, self._events = self._events, []
        return events

    def take_events(self) -> list[dict[str, Any]]:
        """The events since the last hand-over, for the receipt of the submission under way."""
        return self._take_events()

    # ---------------------------------------------------------------- the book's own kinds

    def apply(
        self, kind: str, submitter: int, payload: bytes, day: int, accounts: Accounts
    ) -> BookOutcome:
        """A submission of one of ``BOOK_KINDS``: a lender's offers, its recall, the collateral policy."""
        if kind not in BOOK_KINDS:
            return BookOutcome("unknown_kind", f"the settlement book does not apply {kind!r}", {}, [])
        role = accounts.participant_role(submitter)
        if role != BOOK_ROLES[kind]:
            return BookOutcome("not_authorised", f"a {role} may not submit {kind}", {}, [])
        if kind == LEND_OFFER:
            return self._offers(submitter, _json_items(payload, "offers"), accounts)
        if kind == RECALL:
            return self._recall(submitter, _json_items(payload, "securities"), day, accounts)
        return self._policy(_json_items(payload, "securities"), accounts)

    def _offers(self, lender: int, items: list[dict[str, Any]], accounts: Accounts) -> BookOutcome:
        rejected: list[tuple[str, str]] = []
        for n, item in enumerate(items):
            s = accounts.security_index(str(item.get("security", "")))
            qty, fee = item.get("quantity"), item.get("fee_bps")
            reason = ("unknown_security" if s is None else "invalid_quantity" if not _whole(qty, QUANTITY_MAX)
                      else "invalid_fee" if not _whole(fee, FEE_BPS_MAX) else "")
            if reason:
                rejected.append((f"offer#{n}", reason))
                continue
            self.lending.offer(lender, int(s), int(qty), int(fee))  # type: ignore[arg-type]
        return BookOutcome("accepted", "", {"offers": len(items) - len(rejected), "rejected": len(rejected)}, rejected)

    def _recall(self, lender: int, items: list[dict[str, Any]], day: int, accounts: Accounts) -> BookOutcome:
        rejected: list[tuple[str, str]] = []
        loans = 0
        for n, item in enumerate(items):
            s = accounts.security_index(str(item.get("security", "")))
            if s is None:
                rejected.append((f"recall#{n}", "unknown_security"))
                continue
            recalled = self.lending.recall(lender, s, day)
            loans += recalled
            self._emit(day, {"event": "recall", "lender": accounts.participant_id(lender),
                             "security": accounts.security_id(s), "loans": recalled})
        self._take_events()  # kept in the history; the receipt carries the summary
        return BookOutcome("accepted", "", {"recalled_loans": loans, "rejected": len(rejected)}, rejected)

    def _policy(self, items: list[dict[str, Any]], accounts: Accounts) -> BookOutcome:
        rejected: list[tuple[str, str]] = []
        policy: dict[int, int] = {}
        for n, item in enumerate(items):
            s = accounts.security_index(str(item.get("security", "")))
            bps = haircut_bps(item.get("haircut_pct"))
            reason = "unknown_security" if s is None else "invalid_haircut" if bps is None else ""
            if reason:
                rejected.append((f"haircut#{n}", reason))
                continue
            policy[int(s)] = int(bps)  # type: ignore[arg-type]
        self.collateral.haircut = policy
        return BookOutcome("accepted", "", {"eligible": len(policy), "rejected": len(rejected)}, rejected)

    # ---------------------------------------------------------------- trades

    def on_accepted(self, trades: AcceptedTrades, day: int, accounts: Accounts) -> list[dict[str, Any]]:
        """After each trade batch: prices and partial eligibility; model 1 settles the day's due trades."""
        t = trades
        if self.config.lending or self.config.auto_collateral:
            self.collateral.update_prices(t.security, t.currency, t.value, t.quantity)
        if self.config.dvp_model == 3 and self.config.partial:
            self.partial_keys = self.partial_keys.merged(
                np.concatenate([t.buyer, t.seller]), np.concatenate([t.security, t.security]),
                np.concatenate([t.settlement_day, t.settlement_day]),
                np.concatenate([t.partial_allowed, t.partial_allowed]).astype(bool))
        if self.config.dvp_model != 1:
            return []
        new = GrossInstructions.of_trades(t, self.next_seq)
        self.next_seq += len(new)
        due = np.flatnonzero(new.due <= day)
        if len(due):
            part = new.select(due)
            d = settle_in_order(part, day, accounts, self, partial=self.config.partial_in("realtime", day),
                                min_value=self.config.min_partial_value)
            sq, sc = d.settled_quantity, d.settled_cash
            done = np.flatnonzero(sq > 0)
            moved = replace(part.select(done), quantity=sq[done], cash=sc[done])
            settled_now = party_rows(day, moved, Decision(sq[done], sc[done], np.zeros(len(done), dtype=np.int8)))
            self.realtime = _joined([settled_now] if self.realtime is None else [self.realtime, settled_now], day)
            self._partial_events("realtime", day, part, d, accounts)
            full = (sq == part.quantity).sum()
            self._emit(day, {"event": "realtime", "due": len(part), "settled": int(full),
                             "partially_settled": int(len(done) - full), "failed": int(len(part) - len(done))})
            new = new.select(np.flatnonzero(new.due > day)).concat(part.after(sq, sc))
        self.gross = self.gross.concat(new)
        return self._take_events()

    def takes_trades(self, trades: AcceptedTrades, day: int) -> bool:
        """At cut-off: models 1 and 2 keep the trades as gross instructions (model 1 took them on arrival)."""
        if self.config.dvp_model == 2:
            new = GrossInstructions.of_trades(trades, self.next_seq)
            self.next_seq += len(new)
            self.gross = self.gross.concat(new)
        return self.config.dvp_model != 3

    # ---------------------------------------------------------------- help when resources are short

    def _price_value(self, security: int, quantity: int) -> int:
        price = self.collateral.prices.get(security)
        return 0 if price is None else price.of(quantity)

    def can_borrow(self, borrower: int, security: int, quantity: int, accounts: Accounts) -> bool:
        return self.config.lending and self.lending.available(borrower, security, accounts.sec_bal) >= quantity

    def borrow(self, borrower: int, security: int, quantity: int, currency: int, day: int, accounts: Accounts,
               reserved: dict[tuple[int, int], int] | None = None) -> None:
        self._emit(day, *self.lending.borrow(borrower, security, quantity, currency,
                                             self._price_value(security, quantity), day, accounts, reserved))

    def credit_room(self, member: int, currency: int, receipts: list[tuple[int, int]], accounts: Accounts) -> int:
        if not self.config.auto_collateral:
            return 0
        return self.collateral.room(member, currency, accounts.sec_bal[member], {}, receipts)

    def credit(self, member: int, currency: int, amount: int, day: int, accounts: Accounts) -> None:
        self._emit(day, self.collateral.grant(member, currency, amount, day, self.config.credit_term_days, accounts))

    def _cover(self, day: int, accounts: Accounts, deliverer: np.ndarray, receiver: np.ndarray, security: np.ndarray,
               currency: np.ndarray, quantity: np.ndarray, cash: np.ndarray, members: np.ndarray) -> None:
        """Borrow delivery shortfalls and get credit for cash shortfalls before a batch is decided.

        The batch is given as flows deliverer -> receiver (securities ``quantity``, cash ``cash``
        back), only ``members`` getting help. Shortfalls assume every instruction settles: per
        (account, security) deliveries less receipts less holding; per (account, currency)
        payments less proceeds less cash. Loops run over short accounts, not instructions.
        """
        sec, csh = accounts.sec_bal, accounts.cash_bal
        n_sec, n_ccy = sec.shape[1], csh.shape[1]
        out = exact_bincount(deliverer * n_sec + security, quantity, sec.size)
        net = exact_bincount(receiver * n_sec + security, quantity, sec.size) - out
        if self.config.lending:
            ccy_of = np.zeros(n_sec, dtype=np.int64)
            ccy_of[security] = currency
            short = np.flatnonzero((sec.ravel() + net < 0) & np.isin(np.arange(sec.size) // n_sec, members))
            lenders = np.array(sorted({lender for lender, _ in self.lending.offers}), dtype=np.int64)
            owing = np.flatnonzero((out > 0) & np.isin(np.arange(sec.size) // n_sec, lenders))
            reserved = {divmod(k, n_sec): int(out[k]) for k in owing.tolist()}
            for k in short.tolist():
                a, s = divmod(k, n_sec)
                self.borrow(a, s, -int(sec[a, s] + net[k]), int(ccy_of[s]), day, accounts, reserved)
        if self.config.auto_collateral:
            pay_key, get_key = receiver * n_ccy + currency, deliverer * n_ccy + currency
            cash_net = exact_bincount(get_key, cash, csh.size) - exact_bincount(pay_key, cash, csh.size)
            needy = np.flatnonzero((csh.ravel() + cash_net < 0) & np.isin(np.arange(csh.size) // n_ccy, members))
            if not len(needy):
                return
            # what each account receives (valued at its instructions' cash) and delivers, per security
            bought = exact_bincount(receiver * n_sec + security, np.where(quantity > 0, cash, 0), sec.size)
            for k in needy.tolist():
                m, c = divmod(k, n_ccy)
                row = slice(m * n_sec, (m + 1) * n_sec)
                receipts = [(s, int(bought[row][s])) for s in np.flatnonzero(bought[row]).tolist()]
                deliveries = {s: int(out[row][s]) for s in np.flatnonzero(out[row]).tolist()}
                room = self.collateral.room(m, c, sec[m], deliveries, receipts)
                amount = min(-int(csh[m, c] + cash_net[k]), room)
                if amount > 0:
                    self.credit(m, c, amount, day, accounts)

    # ---------------------------------------------------------------- the net batch against the CCP

    def settle(
        self,
        day: int,
        instructions: CycleInstructions,
        securities: np.ndarray,
        cash: np.ndarray,
        ccp: int,
        accounts: Accounts,
    ) -> CycleResult:
        """Decide the net batch: deselection (``settlement.dvp``) or the optimiser; help first."""
        i = instructions
        self._needs = {}
        cfg = self.config
        partial_on = cfg.partial_in("batch", day)
        if len(i) and (cfg.lending or cfg.auto_collateral):
            rows = self._net_rows(i, ccp, np.zeros(len(i), dtype=bool), 0, accounts)
            self._cover(day, accounts, rows.deliverer, rows.receiver, rows.security, rows.currency, rows.quantity,
                        rows.cash, np.unique(i.member))
        if len(i) and (cfg.optimise or partial_on):
            eligible = self._partial_eligible(i, day) if partial_on else np.zeros(len(i), dtype=bool)
            rows = self._net_rows(i, ccp, eligible, cfg.min_partial_value, accounts)
            choice = optimise(rows, securities, cash, exact=cfg.optimise, allow_partial=partial_on,
                              exact_max_n=cfg.exact_max_n, lp_max_n=cfg.lp_bound_max_n,
                              node_limit=cfg.mip_node_limit)
            sq, sc = self._net_settled(i, choice.settled_quantity, choice.settled_cash)
            reason = self._net_reasons(i, sq, sc, securities, cash)
            rounds = 1
            if cfg.optimise:
                self._emit(day, choice_event(choice, "net", len(i)))
        else:
            outcome = settle_batch(i.member, i.security, i.quantity, i.cash, i.currency, i.priority,
                                   securities, cash, ccp)
            sq = np.where(outcome.settled, i.quantity, 0)
            sc = np.where(outcome.settled, i.cash, 0)
            reason, rounds = outcome.reason, outcome.rounds
        self._after_net(day, i, sq, sc, reason, accounts)
        return CycleResult(settled_quantity=sq, settled_cash=sc, reason=reason, rounds=rounds,
                           events=self._take_events())

    @staticmethod
    def _net_rows(i: CycleInstructions, ccp: int, eligible: np.ndarray, min_value: int,
                  accounts: Accounts) -> InstructionSet:
        """Net instructions as optimiser rows: the first ``len(i)`` carry the securities (or the cash
        of a cash-only instruction); where cash goes the same way as the securities it gets its own
        row, linked to the first (all or none)."""
        q, c, m, n = i.quantity, i.cash, i.member, len(i)
        same_way = ((q < 0) & (c < 0)) | ((q > 0) & (c > 0))
        member_delivers = (q < 0) | ((q == 0) & (c > 0))
        extra = np.flatnonzero(same_way)
        pays = c[extra] < 0
        lots = np.array([accounts.lot_size(s) for s in range(accounts.sec_bal.shape[1])], dtype=np.int64)
        link = np.where(same_way, np.arange(n), -1)
        cat = np.concatenate
        return InstructionSet(
            deliverer=cat([np.where(member_delivers, m, ccp), np.where(pays, ccp, m[extra])]).astype(np.int64),
            receiver=cat([np.where(member_delivers, ccp, m), np.where(pays, m[extra], ccp)]).astype(np.int64),
            security=cat([i.security, i.security[extra]]),
            quantity=cat([np.abs(q), np.zeros(len(extra), dtype=np.int64)]),
            currency=cat([i.currency, i.currency[extra]]),
            cash=cat([np.where(same_way, 0, np.abs(c)), np.abs(c[extra])]),
            link=cat([link, link[extra]]).astype(np.int64),
            partial_allowed=cat([eligible & ~same_way & (q != 0), np.zeros(len(extra), dtype=bool)]),
            lot_size=cat([lots[i.security], lots[i.security[extra]]]),
            min_partial_value=min_value,
        )

    @staticmethod
    def _net_settled(i: CycleInstructions, rows_q: np.ndarray, rows_c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        n = len(i)
        same_way = ((i.quantity < 0) & (i.cash < 0)) | ((i.quantity > 0) & (i.cash > 0))
        cash_rows = rows_c[:n].copy()
        cash_rows[same_way] = rows_c[n:]
        return np.sign(i.quantity) * rows_q[:n], np.sign(i.cash) * cash_rows

    @staticmethod
    def _net_reasons(i: CycleInstructions, sq: np.ndarray, sc: np.ndarray, sec: np.ndarray,
                     cash: np.ndarray) -> np.ndarray:
        """The member's own shortfall after the batch (securities, then cash), else the CCP's link."""
        n_ccy = cash.shape[1]
        key = i.member * n_ccy + i.currency
        after_sec = sec[i.member, i.security] + sq
        after_cash = cash.ravel()[key] + exact_bincount(key, sc, cash.size)[key]
        rest_q, rest_c = i.quantity - sq, i.cash - sc
        reason = np.where((rest_q < 0) & (after_sec < -rest_q), SEC,
                          np.where((rest_c < 0) & (after_cash < -rest_c), CASH, LINK))
        return np.where((rest_q == 0) & (rest_c == 0), 0, reason).astype(np.int8)

    def _partial_eligible(self, i: CycleInstructions, day: int) -> np.ndarray:
        """A net instruction may settle in part when every trade in it allowed partial settlement."""
        k = self.partial_keys
        due = k.day <= day
        pairs = np.concatenate([np.stack([k.member[due], k.security[due]], axis=1),
                                np.stack([i.member, i.security], axis=1)]).astype(np.int64)
        uniq, inv = np.unique(pairs, axis=0, return_inverse=True)
        inv = inv.ravel()
        n_keys = int(due.sum())
        all_ok = np.ones(len(uniq), dtype=bool)
        np.logical_and.at(all_ok, inv[:n_keys], k.ok[due])
        present = np.zeros(len(uniq), dtype=bool)
        present[inv[:n_keys]] = True
        return (all_ok & present)[inv[n_keys:]]

    def _after_net(self, day: int, i: CycleInstructions, sq: np.ndarray, sc: np.ndarray, reason: np.ndarray,
                   accounts: Accounts) -> None:
        """Partial events, partial eligibility carried, deliveries still owed, fail ages and buy-ins."""
        cfg = self.config
        open_ = (sq != i.quantity) | (sc != i.cash)
        part = np.flatnonzero(open_ & (sq != 0))
        for k in part.tolist():
            self._emit(day, {"event": "partial", "cycle": "net", "member": accounts.participant_id(int(i.member[k])),
                             "security": accounts.security_id(int(i.security[k])), "quantity": int(i.quantity[k]),
                             "settled_quantity": int(sq[k]), "cash": int(i.cash[k]), "settled_cash": int(sc[k])})
        if cfg.partial:
            eligible = self._partial_eligible(i, day)
            pk = self.partial_keys
            keep = pk.day > day
            self.partial_keys = PartialKeys(pk.member[keep], pk.security[keep], pk.day[keep], pk.ok[keep]).merged(
                i.member[open_], i.security[open_], np.full(int(open_.sum()), day, dtype=np.int64), eligible[open_])
        if cfg.lending:
            owed = open_ & (i.quantity - sq < 0)
            self._needs = {(int(m), int(s)): int(sq_ - q) for m, s, q, sq_ in
                           zip(i.member[owed], i.security[owed], i.quantity[owed], sq[owed], strict=True)}
        if cfg.buy_in_after_days:
            self._net_fail_ages(day, i, sq, sc, reason, open_, accounts)

    def _net_fail_ages(self, day: int, i: CycleInstructions, sq: np.ndarray, sc: np.ndarray, reason: np.ndarray,
                       open_: np.ndarray, accounts: Accounts) -> None:
        """Count the runs each open net instruction (member, security, first due) has failed; flag buy-ins."""
        old = self.net_fails
        f = np.flatnonzero(open_)
        rows = np.concatenate([np.stack([old.member, old.security, old.first_due], axis=1),
                               np.stack([i.member[f], i.security[f], i.first_due[f]], axis=1)]).astype(np.int64)
        uniq, inv = np.unique(rows, axis=0, return_inverse=True) if len(rows) else (rows, np.zeros(0, np.int64))
        inv = inv.ravel()
        runs_of = np.zeros(len(uniq), dtype=np.int64)
        flag_of = np.zeros(len(uniq), dtype=bool)
        runs_of[inv[:len(old.member)]] = old.runs
        flag_of[inv[:len(old.member)]] = old.flagged
        new = inv[len(old.member):]
        runs, flagged = runs_of[new] + 1, flag_of[new]
        rest_q = i.quantity[f] - sq[f]
        flag_now = ~flagged & (runs >= self.config.buy_in_after_days) & (rest_q < 0) & (reason[f] == SEC)
        for k in np.flatnonzero(flag_now).tolist():
            j = int(f[k])
            self._emit(day, {"event": "buy_in", "cause": "fail", "member": accounts.participant_id(int(i.member[j])),
                             "security": accounts.security_id(int(i.security[j])), "quantity": int(rest_q[k]),
                             "cash": int(i.cash[j] - sc[j]), "runs": int(runs[k]),
                             "first_due": from_day_number(int(i.first_due[j])).isoformat()})
        self.net_fails = NetFails(i.member[f], i.security[f], i.first_due[f], runs, flagged | flag_now)

    # ---------------------------------------------------------------- the book's own instructions

    def settle_own(self, day: int, securities: np.ndarray, cash: np.ndarray, accounts: Accounts) -> PartyRecord | None:
        """Settle the gross instructions due (models 1, 2), then end the run: repay credit, return loans.

        Events of this step (loan returns, credit repaid or not, cancellations, buy-in flags) are
        kept in :attr:`history` and handed to the machine by :meth:`take_events` for the
        settlement run's receipt.
        """
        records = [self.realtime] if self.realtime is not None else []
        self.realtime = None
        g = self.gross
        due = np.flatnonzero(g.due <= day)
        if len(due):
            part = g.select(due)
            part = part.select(np.lexsort((part.seq, part.first_due)))
            if self.config.dvp_model == 1:
                d = settle_in_order(part, day, accounts, self, partial=self.config.partial_in("batch", day),
                                    min_value=self.config.min_partial_value)
            else:
                d = self._gross_batch(part, day, accounts)
            records.append(party_rows(day, part, d))
            self._partial_events("batch", day, part, d, accounts)
            rest = self._lifecycle(day, part, d, accounts)
            self.gross = g.select(np.flatnonzero(g.due > day)).concat(rest)
            owed = self.gross.select(np.flatnonzero(self.gross.due <= day))
            if len(owed):
                n_sec = accounts.sec_bal.shape[1]
                keys, total = np.unique(owed.seller * n_sec + owed.security, return_inverse=True)
                sums = exact_bincount(total.ravel(), owed.quantity, len(keys))
                for k, q in zip(keys.tolist(), sums.tolist(), strict=True):
                    pair = divmod(k, n_sec)
                    self._needs[pair] = self._needs.get(pair, 0) + q
        self._emit(day, *self.collateral.end_of_run(day, accounts))
        self._emit(day, *self.lending.end_of_run(day, accounts, self._needs, self.config.buy_in_after_days))
        self._needs = {}
        return _joined(records, day)

    def _gross_batch(self, g: GrossInstructions, day: int, accounts: Accounts) -> Decision:
        """Model 2: help, decide (deselection or optimiser), move the settled parts."""
        cfg = self.config
        if cfg.lending or cfg.auto_collateral:
            self._cover(day, accounts, g.seller, g.buyer, g.security, g.currency, g.quantity, g.cash,
                        np.unique(np.concatenate([g.seller, g.buyer])))
        sec, cash = accounts.sec_bal, accounts.cash_bal
        partial_on = cfg.partial_in("batch", day)
        if cfg.optimise or partial_on:
            choice = optimise(gross_instruction_set(g, accounts, cfg.min_partial_value), sec, cash,
                              exact=cfg.optimise, allow_partial=partial_on, exact_max_n=cfg.exact_max_n,
                              lp_max_n=cfg.lp_bound_max_n, node_limit=cfg.mip_node_limit)
            if cfg.optimise:
                self._emit(day, choice_event(choice, "gross", len(g)))
            sq, sc = choice.settled_quantity, choice.settled_cash
            d = Decision(sq, sc, gross_reasons(g, sq, sc, sec, cash))
        else:
            d = decide_gross_batch(g, np.arange(len(g)), sec, cash)
        apply_transfers(g, d.settled_quantity, d.settled_cash, accounts)
        return d

    def _partial_events(self, cycle: str, day: int, g: GrossInstructions, d: Decision, accounts: Accounts) -> None:
        sq = d.settled_quantity
        for k in np.flatnonzero((sq > 0) & (sq < g.quantity)).tolist():
            self._emit(day, {"event": "partial", "cycle": cycle, "seller": accounts.participant_id(int(g.seller[k])),
                             "buyer": accounts.participant_id(int(g.buyer[k])),
                             "security": accounts.security_id(int(g.security[k])), "quantity": int(g.quantity[k]),
                             "settled_quantity": int(sq[k]), "cash": int(g.cash[k]),
                             "settled_cash": int(d.settled_cash[k])})

    def _lifecycle(self, day: int, g: GrossInstructions, d: Decision, accounts: Accounts) -> GrossInstructions:
        """What remains after a run: fail ages and reasons, buy-in flags, cancellations."""
        cfg = self.config
        failed = (d.settled_quantity != g.quantity) | (d.settled_cash != g.cash)
        runs = g.failed_runs + failed
        flag_now = (cfg.buy_in_after_days > 0) & failed & ~g.flagged & (runs >= cfg.buy_in_after_days) \
            & (d.reason == SEC)
        cancel = (cfg.cancel_after_days > 0) & failed & (runs >= cfg.cancel_after_days)
        rest = replace(g, quantity=g.quantity - d.settled_quantity, cash=g.cash - d.settled_cash,
                       failed_runs=runs, reason=np.where(failed, d.reason, g.reason).astype(np.int64),
                       flagged=g.flagged | flag_now)
        for k in np.flatnonzero(flag_now | cancel).tolist():
            about = {"seller": accounts.participant_id(int(g.seller[k])),
                     "buyer": accounts.participant_id(int(g.buyer[k])),
                     "security": accounts.security_id(int(g.security[k])), "quantity": int(rest.quantity[k]),
                     "cash": int(rest.cash[k]), "first_due": from_day_number(int(g.first_due[k])).isoformat(),
                     "runs": int(runs[k]), "reason": str(REASONS[int(d.reason[k])])}
            if flag_now[k]:
                self._emit(day, {"event": "buy_in", "cause": "fail", **about})
            if cancel[k]:
                self._emit(day, {"event": "cancelled", **about})
        return rest.select(np.flatnonzero((rest.quantity > 0) & ~cancel))

    # ---------------------------------------------------------------- state root

    def _state(self) -> dict[str, Any]:
        state: dict[str, Any] = {}
        if len(self.gross) or self.next_seq:
            state["gross"] = [self.gross.digest().hex(), self.next_seq]
        if self.realtime is not None:
            state["realtime"] = digest_arrays(*(a.astype(np.int64) for a in self.realtime.arrays())).hex()
        k = self.partial_keys
        if len(k.member):
            state["partial"] = digest_arrays(k.member, k.security, k.day, k.ok.astype(np.int64)).hex()
        f = self.net_fails
        if len(f.member):
            state["fails"] = digest_arrays(f.member, f.security, f.first_due, f.runs, f.flagged.astype(np.int64)).hex()
        for name, part in (("lending", self.lending.to_json()), ("collateral", self.collateral.to_json())):
            if part is not None:
                state[name] = part
        return state

    def digest(self) -> bytes:
        """The configuration and, once there is any, the book's state (an empty book digests as before)."""
        parts = [b"clearhouse/settlement-book/v1", canonical_json(self.config.to_json())]
        state = self._state()
        if state:
            parts.append(canonical_json(state))
        return sha256(*parts)
