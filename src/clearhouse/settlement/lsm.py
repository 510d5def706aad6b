"""Cash payments settled gross in real time, with a liquidity-saving mechanism.

Payments between participants' cash accounts (one account per participant and currency) arrive
in order and settle one by one, as in an RTGS system; a payment the payer cannot fund waits in
the payer's queue. Three mechanisms (after Bech and Soramaki, "Gridlock resolution in payment
systems", 2001) let queued payments settle with less liquidity:

* **queue release**: whenever a participant's balance rises, the head of its queue settles while
  it is covered (strict FIFO within priority: a head that cannot be funded blocks the payments
  behind it);
* **bilateral offsetting** on arrival: a payment that cannot settle alone settles together with
  payments queued by its payee to its payer when both sides' net positions are covered;
* **multilateral gridlock resolution**, periodically and at the end: the whole queue is tried at
  once; while some participant would end negative, payments are taken off the tail of its queue
  (lowest priority, latest arrival); what remains settles simultaneously.

:func:`settle_payments` is the in-memory engine; :func:`run_payments_files` reads
``PAYMENTS.csv`` and ``CASH.csv``, reports every bad row with its reason, and returns a
JSON-ready summary. Amounts are exact integers of minor units; conservation per currency and
non-negative balances are checked with :func:`clearhouse.core.errors.invariant` after every run.

The queue is processed payment by payment (it is a queue); nothing here reads the clock or a
random source, so the same input always gives the same output.

Imports only the standard library and clearhouse.core; never the ledger, the state machine or an
interface.
"""

from __future__ import annotations

import bisect
import csv
import re
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from types import MappingProxyType
from typing import Any

from clearhouse.core.errors import InputError, invariant
from clearhouse.core.money import format_minor, minor_digits, to_minor

#: Gridlock resolution runs after every this many arrivals (and always after the last one).
#: Each run costs time proportional to the queue, so a short period on a long file with a
#: persistent queue is quadratic: 100,000 payments with ~10,000 queued took about 3 s at 1000
#: and 30 s at 100.
GRIDLOCK_EVERY_DEFAULT = 1000

_DECIMAL = re.compile(r"-?[0-9]+(\.[0-9]+)?")
_INTEGER = re.compile(r"-?[0-9]+")
_CURRENCY = re.compile(r"[A-Z]{3}")
_PAYMENT_COLUMNS = ("payment_id", "payer", "payee", "currency", "amount")
_OPTIONAL_PAYMENT_COLUMNS = ("priority",)
_CASH_COLUMNS = ("participant_id", "currency", "amount")


class SettledBy(StrEnum):
    """The mechanism that settled a payment."""

    immediate = "immediate"  # on arrival, funded by the payer's balance
    released = "released"  # from the queue, when the payer's balance rose
    offset = "offset"  # bilaterally, against the payee's queued payments to the payer
    gridlock = "gridlock"  # in a multilateral gridlock resolution


class PaymentRejection(StrEnum):
    """Why a row of PAYMENTS.csv was rejected, in the order the checks are made.

    1. fields: ``wrong_field_count`` (more or fewer fields than the header),
       ``missing_payment_id``, ``missing_participant`` (empty payer or payee), ``bad_currency``
       (not three capital letters), ``bad_amount`` (not a plain decimal), ``too_many_decimals``
       (finer than the currency's minor unit), ``non_positive_amount``, ``bad_priority`` (not an
       integer), ``payer_equals_payee``;
    2. look-ups: ``unknown_payer``, ``unknown_payee`` (no row of CASH.csv names them);
    3. idempotency: ``duplicate_id`` (the id appeared on an earlier row, accepted or not).
    """

    wrong_field_count = "wrong_field_count"
    missing_payment_id = "missing_payment_id"
    missing_participant = "missing_participant"
    bad_currency = "bad_currency"
    bad_amount = "bad_amount"
    too_many_decimals = "too_many_decimals"
    non_positive_amount = "non_positive_amount"
    bad_priority = "bad_priority"
    payer_equals_payee = "payer_equals_payee"
    unknown_payer = "unknown_payer"
    unknown_payee = "unknown_payee"
    duplicate_id = "duplicate_id"


@dataclass(frozen=True, slots=True)
class Payment:
    """One cash payment; its arrival order is its position in the submitted list.

    Attributes:
        payment_id: client-chosen id, unique in a run.
        payer: participant paying.
        payee: participant paid.
        currency: ISO 4217 code.
        amount: minor units, > 0.
        priority: higher settles first from the payer's queue; FIFO within a priority.
    """

    payment_id: str
    payer: str
    payee: str
    currency: str
    amount: int
    priority: int = 0


@dataclass(frozen=True, slots=True)
class PaymentsResult:
    """Outcome of a run of payments.

    Attributes:
        settled: ids in settlement order (payments settled together are listed in arrival order,
            an offsetting set with the arriving payment first).
        settled_by: mechanism per entry of ``settled``.
        queued: ids still queued at the end, in arrival order.
        final_balances: balance per (participant, currency) in minor units, every opening
            balance included.
        liquidity_used: per currency, the sum over participants of the largest net debit each
            had to fund from its opening balance at any point of the run (its peak of cash paid
            minus cash received, or 0 if it never paid out more than it had received). Payments
            settled together count only by their net effect, which is how offsetting and
            gridlock resolution save liquidity.
    """

    settled: tuple[str, ...]
    settled_by: tuple[SettledBy, ...]
    queued: tuple[str, ...]
    final_balances: Mapping[tuple[str, str], int]
    liquidity_used: Mapping[str, int]


Key = tuple[str, str]  # (participant, currency)


@dataclass(slots=True)
class _Rtgs:
    """The mutable engine behind :func:`settle_payments`.

    Attributes:
        balances: balance per (participant, currency).
        queues: per (payer, currency), queued payments as sorted (-priority, arrival) keys.
        queued: arrival index -> payment, for every queued payment.
        net_out: cash paid minus cash received so far, per (participant, currency).
        peak_out: the largest ``net_out`` reached, per (participant, currency).
        settled: ids in settlement order.
        settled_by: mechanism per settled id.
    """

    balances: dict[Key, int]
    queues: dict[Key, list[tuple[int, int]]] = field(default_factory=dict)
    queued: dict[int, Payment] = field(default_factory=dict)
    net_out: dict[Key, int] = field(default_factory=dict)
    peak_out: dict[Key, int] = field(default_factory=dict)
    settled: list[str] = field(default_factory=list)
    settled_by: list[SettledBy] = field(default_factory=list)

    def balance(self, key: Key) -> int:
        return self.balances.get(key, 0)

    def queue(self, key: Key) -> list[tuple[int, int]]:
        return self.queues.get(key, [])

    # -- settling ------------------------------------------------------------------------------

    def settle(self, batch: list[Payment], how: SettledBy) -> None:
        """Settle payments simultaneously; only their net effect must be funded."""
        delta: dict[Key, int] = {}
        for p in batch:
            payer, payee = (p.payer, p.currency), (p.payee, p.currency)
            delta[payer] = delta.get(payer, 0) - p.amount
            delta[payee] = delta.get(payee, 0) + p.amount
        for key, d in delta.items():
            invariant(self.balance(key) + d >= 0,
                      f"settlement would overdraw {key}: {self.balance(key)} + {d}")
        for key, d in delta.items():
            self.balances[key] = self.balance(key) + d
            out = self.net_out.get(key, 0) - d
            self.net_out[key] = out
            self.peak_out[key] = max(self.peak_out.get(key, 0), out)
        for p in batch:
            self.settled.append(p.payment_id)
            self.settled_by.append(how)

    def enqueue(self, arrival: int, p: Payment) -> None:
        bisect.insort(self.queues.setdefault((p.payer, p.currency), []), (-p.priority, arrival))
        self.queued[arrival] = p

    def dequeue(self, key: Key, entries: list[tuple[int, int]]) -> list[Payment]:
        """Remove queue entries of ``key`` and return their payments, in the given order."""
        queue = self.queue(key)
        if entries == queue[:len(entries)]:
            del queue[:len(entries)]
        else:
            gone = set(entries)
            self.queues[key] = [e for e in queue if e not in gone]
        return [self.queued.pop(arrival) for _, arrival in entries]

    def release(self, keys: Iterable[Key]) -> None:
        """Settle queue heads that became covered, following the liquidity they pass on."""
        work = deque(sorted(set(keys)))
        waiting = set(work)
        while work:
            key = work.popleft()
            waiting.discard(key)
            queue = self.queue(key)
            while queue and self.queued[queue[0][1]].amount <= self.balance(key):
                (p,) = self.dequeue(key, [queue[0]])
                self.settle([p], SettledBy.released)
                payee = (p.payee, p.currency)
                if payee not in waiting:
                    work.append(payee)
                    waiting.add(payee)
                queue = self.queue(key)

    # -- arrival -------------------------------------------------------------------------------

    def arrive(self, arrival: int, p: Payment) -> None:
        payer, payee = (p.payer, p.currency), (p.payee, p.currency)
        queue = self.queue(payer)
        blocked = bool(queue) and -queue[0][0] >= p.priority
        if not blocked and self.balance(payer) >= p.amount:
            self.settle([p], SettledBy.immediate)
            self.release([payee])
            return
        offsets = self._offsetting(p, blocked)
        if offsets:
            self.settle([p, *self.dequeue(payee, offsets)], SettledBy.offset)
            self.release([payer, payee])
            return
        self.enqueue(arrival, p)

    def _offsetting(self, p: Payment, payer_blocked: bool) -> list[tuple[int, int]]:
        """The longest run of the payee's queued payments to the payer that offsets ``p``.

        Candidates are the payee's queued payments to the payer, in the payee's queue order;
        the first k of them are taken for the largest k such that both sides end >= 0. A side
        with other queued payments ahead of those being settled (the payer when ``p`` itself
        could not go first, the payee when one of its payments to others precedes the k-th
        candidate) may not end lower than it started, so offsetting never spends liquidity that
        an earlier queued payment is waiting for.
        """
        payer, payee = (p.payer, p.currency), (p.payee, p.currency)
        candidates: list[tuple[int, int]] = []
        sums: list[int] = []
        payee_blocked: list[bool] = []
        other_ahead = False
        total = 0
        for entry in self.queue(payee):
            q = self.queued[entry[1]]
            if q.payee != p.payer:
                other_ahead = True
                continue
            total += q.amount
            candidates.append(entry)
            sums.append(total)
            payee_blocked.append(other_ahead)
        for k in range(len(candidates), 0, -1):
            incoming = sums[k - 1]
            payer_net, payee_net = incoming - p.amount, p.amount - incoming
            payer_ok = self.balance(payer) + payer_net >= 0 and (
                not payer_blocked or payer_net >= 0)
            payee_ok = self.balance(payee) + payee_net >= 0 and (
                not payee_blocked[k - 1] or payee_net >= 0)
            if payer_ok and payee_ok:
                return candidates[:k]
        return []

    # -- gridlock resolution -------------------------------------------------------------------

    def resolve_gridlock(self) -> None:
        """Settle the largest set left after trimming queue tails until nobody ends negative.

        Per currency (in code order): start from every queued payment; while some participant's
        balance plus incoming minus outgoing is negative, drop the tail (lowest priority, latest
        arrival) of that participant's remaining queue, participants taken in id order, until
        its position is non-negative. Dropping only from tails keeps what settles a head of
        every queue, so FIFO within priority holds. The remainder settles simultaneously.
        """
        for currency in sorted({c for _, c in self.queues}):
            keys = sorted(k for k in self.queues if k[1] == currency and self.queues[k])
            keep = {k: len(self.queues[k]) for k in keys}
            net: dict[Key, int] = {}
            for k in keys:
                for _, arrival in self.queues[k]:
                    q = self.queued[arrival]
                    net[k] = net.get(k, self.balance(k)) - q.amount
                    pk = (q.payee, currency)
                    net[pk] = net.get(pk, self.balance(pk)) + q.amount
            while short := sorted(k for k, v in net.items() if v < 0):
                for k in short:
                    while net[k] < 0:
                        invariant(keep[k] > 0, f"{k} is short with nothing left to remove")
                        keep[k] -= 1
                        q = self.queued[self.queues[k][keep[k]][1]]
                        net[k] += q.amount
                        net[(q.payee, currency)] -= q.amount
            heads = sorted((e[1], k, e) for k in keys for e in self.queues[k][:keep[k]])
            for k in keys:
                del self.queues[k][:keep[k]]
            batch = [self.queued.pop(arrival) for arrival, _, _ in heads]
            if batch:
                self.settle(batch, SettledBy.gridlock)
                self.release(net)


def settle_payments(
    payments: list[Payment],
    balances: Mapping[Key, int],
    *,
    gridlock_every: int = GRIDLOCK_EVERY_DEFAULT,
) -> PaymentsResult:
    """Run payments through the queue, offsetting and gridlock resolution, in arrival order.

    On arrival a payment settles at once if its payer has nothing of equal or higher priority
    queued and the balance covers it; otherwise it tries bilateral offsetting against the
    payee's queued payments to the payer; otherwise it joins the payer's queue (ordered by
    priority, then arrival). Whenever a balance rises, covered queue heads are released.
    After every ``gridlock_every`` arrivals (0: never in between) and after the last one,
    multilateral gridlock resolution settles what it can of the queue.

    Args:
        payments: in arrival order; ids unique, amounts > 0, payer different from payee.
        balances: opening balance per (participant, currency), minor units, each >= 0; a missing
            key is a zero balance.
        gridlock_every: arrivals between gridlock resolutions.

    Returns:
        Settled and queued ids, final balances and the liquidity used.

    Raises:
        InputError: a duplicate id, a non-positive amount, a payer paying itself, a negative
            opening balance or a negative ``gridlock_every``.
    """
    _check_inputs(payments, balances, gridlock_every)
    engine = _Rtgs(balances=dict(balances))
    for arrival, p in enumerate(payments):
        engine.arrive(arrival, p)
        if gridlock_every and (arrival + 1) % gridlock_every == 0:
            engine.resolve_gridlock()
    engine.resolve_gridlock()
    queued = tuple(engine.queued[a].payment_id for a in sorted(engine.queued))
    _check_outcome(payments, balances, engine, queued)
    used: dict[str, int] = {}
    for (_, currency), peak in sorted(engine.peak_out.items()):
        used[currency] = used.get(currency, 0) + max(peak, 0)
    return PaymentsResult(
        settled=tuple(engine.settled),
        settled_by=tuple(engine.settled_by),
        queued=queued,
        final_balances=MappingProxyType(dict(sorted(engine.balances.items()))),
        liquidity_used=MappingProxyType(used),
    )


def _check_inputs(payments: list[Payment], balances: Mapping[Key, int], every: int) -> None:
    seen: set[str] = set()
    for p in payments:
        if p.payment_id in seen:
            raise InputError(f"duplicate payment id {p.payment_id!r}")
        seen.add(p.payment_id)
        if p.amount <= 0:
            raise InputError(f"payment {p.payment_id!r} has non-positive amount {p.amount}")
        if p.payer == p.payee:
            raise InputError(f"payment {p.payment_id!r} pays its own payer {p.payer!r}")
    for key, amount in balances.items():
        if amount < 0:
            raise InputError(f"opening balance of {key} is negative: {amount}")
    if every < 0:
        raise InputError(f"gridlock_every must be >= 0, got {every}")


def _check_outcome(
    payments: list[Payment], balances: Mapping[Key, int], engine: _Rtgs, queued: tuple[str, ...]
) -> None:
    """Conservation per currency, no overdraft, and every payment accounted for exactly once."""
    before: dict[str, int] = {}
    after: dict[str, int] = {}
    for (_, currency), amount in balances.items():
        before[currency] = before.get(currency, 0) + amount
    for (_, currency), amount in engine.balances.items():
        after[currency] = after.get(currency, 0) + amount
        invariant(amount >= 0, f"a balance in {currency} ended negative: {amount}")
    for currency in before.keys() | after.keys():
        invariant(before.get(currency, 0) == after.get(currency, 0),
                  f"{currency} not conserved: {before.get(currency, 0)} -> "
                  f"{after.get(currency, 0)}")
    invariant(sorted([*engine.settled, *queued]) == sorted(p.payment_id for p in payments),
              "a payment was lost or settled twice")


# --------------------------------------------------------------------------------------------
# Files


def read_cash_csv(path: Path) -> dict[Key, int]:
    """Opening balances from ``participant_id,currency,amount`` (decimal amounts).

    A file that cannot be read as a whole (wrong header, a bad or negative amount, a duplicate
    participant and currency) raises :class:`InputError` naming the line.
    """
    balances: dict[Key, int] = {}
    with path.open(newline="", encoding="utf-8-sig") as fh:
        rows = csv.reader(fh)
        header = next(rows, None)
        if header is None or [h.strip() for h in header] != list(_CASH_COLUMNS):
            raise InputError(f"{path}: header must be {','.join(_CASH_COLUMNS)}")
        for line, row in enumerate(rows, start=2):
            if not row:
                continue
            if len(row) != len(_CASH_COLUMNS):
                raise InputError(f"{path}:{line}: expected {len(_CASH_COLUMNS)} fields")
            participant, currency, amount_text = (f.strip() for f in row)
            if not participant or not _CURRENCY.fullmatch(currency):
                raise InputError(f"{path}:{line}: bad participant or currency")
            if not _DECIMAL.fullmatch(amount_text):
                raise InputError(f"{path}:{line}: bad amount {amount_text!r}")
            amount = to_minor(amount_text, currency)
            if amount < 0:
                raise InputError(f"{path}:{line}: negative opening balance")
            if (participant, currency) in balances:
                raise InputError(f"{path}:{line}: duplicate {participant} {currency}")
            balances[(participant, currency)] = amount
    return balances


def read_payments_csv(
    path: Path, participants: set[str]
) -> tuple[list[Payment], list[dict[str, Any]]]:
    """Payments from ``payment_id,payer,payee,currency,amount[,priority]`` and the rejected rows.

    Every bad row is returned with its line number, id (as written, possibly empty) and the
    first :class:`PaymentRejection` that applies; nothing is dropped silently. A header that
    lacks a required column or names an unknown one raises :class:`InputError`.
    """
    payments: list[Payment] = []
    rejected: list[dict[str, Any]] = []
    seen: set[str] = set()
    with path.open(newline="", encoding="utf-8-sig") as fh:
        rows = csv.reader(fh)
        header = [h.strip() for h in next(rows, [])]
        allowed = set(_PAYMENT_COLUMNS) | set(_OPTIONAL_PAYMENT_COLUMNS)
        if (set(_PAYMENT_COLUMNS) - set(header) or set(header) - allowed
                or len(set(header)) != len(header)):
            raise InputError(
                f"{path}: header must be {','.join(_PAYMENT_COLUMNS)}[,priority], got {header}")
        for line, row in enumerate(rows, start=2):
            if not row:
                continue
            fields = dict(zip(header, (f.strip() for f in row), strict=False))
            payment_id = fields.get("payment_id", "")
            outcome = _parse_payment(fields, len(row) == len(header), participants)
            if isinstance(outcome, Payment) and payment_id in seen:
                outcome = PaymentRejection.duplicate_id
            if payment_id:
                seen.add(payment_id)
            if isinstance(outcome, Payment):
                payments.append(outcome)
            else:
                rejected.append({"row": line, "payment_id": payment_id, "reason": str(outcome)})
    return payments, rejected


def _parse_payment(
    fields: dict[str, str], field_count_ok: bool, participants: set[str]
) -> Payment | PaymentRejection:
    """One row checked in the documented order of :class:`PaymentRejection`."""
    if not field_count_ok:
        return PaymentRejection.wrong_field_count
    payment_id, payer, payee = fields["payment_id"], fields["payer"], fields["payee"]
    currency, amount_text = fields["currency"], fields["amount"]
    if not payment_id:
        return PaymentRejection.missing_payment_id
    if not payer or not payee:
        return PaymentRejection.missing_participant
    if not _CURRENCY.fullmatch(currency):
        return PaymentRejection.bad_currency
    if not _DECIMAL.fullmatch(amount_text):
        return PaymentRejection.bad_amount
    fraction = amount_text.partition(".")[2]
    if len(fraction.rstrip("0")) > minor_digits(currency):
        return PaymentRejection.too_many_decimals
    amount = to_minor(amount_text, currency)
    if amount <= 0:
        return PaymentRejection.non_positive_amount
    priority_text = fields.get("priority", "")
    if priority_text and not _INTEGER.fullmatch(priority_text):
        return PaymentRejection.bad_priority
    if payer == payee:
        return PaymentRejection.payer_equals_payee
    if payer not in participants:
        return PaymentRejection.unknown_payer
    if payee not in participants:
        return PaymentRejection.unknown_payee
    return Payment(payment_id=payment_id, payer=payer, payee=payee, currency=currency,
                   amount=amount, priority=int(priority_text or 0))


def run_payments_files(
    payments_csv: Path, balances_csv: Path, *, gridlock_every: int = GRIDLOCK_EVERY_DEFAULT
) -> dict[str, Any]:
    """Settle the payments of ``payments_csv`` against the balances of ``balances_csv``.

    Participants are those named in ``balances_csv`` (list a zero balance to admit one with no
    cash); a payment in a currency a participant has no row for starts that balance at zero.

    Returns a JSON-ready dict:

    * ``settled``: payment ids in settlement order;
    * ``queued``: ids still queued at the end (arrival order);
    * ``final_balances``: ``[{participant_id, currency, amount}]`` sorted by participant then
      currency, amounts as decimal strings;
    * ``liquidity_used``: ``{currency: decimal string}``, as defined in :class:`PaymentsResult`;
    * ``rejected``: ``[{row, payment_id, reason}]`` for every bad row, reasons from
      :class:`PaymentRejection`.

    Raises:
        InputError: a file that cannot be read as a whole.
    """
    balances = read_cash_csv(balances_csv)
    participants = {participant for participant, _ in balances}
    payments, rejected = read_payments_csv(payments_csv, participants)
    result = settle_payments(payments, balances, gridlock_every=gridlock_every)
    return {
        "settled": list(result.settled),
        "queued": list(result.queued),
        "final_balances": [
            {"participant_id": participant, "currency": currency,
             "amount": format_minor(amount, currency)}
            for (participant, currency), amount in result.final_balances.items()
        ],
        "liquidity_used": {
            currency: format_minor(amount, currency)
            for currency, amount in result.liquidity_used.items()
        },
        "rejected": rejected,
    }
