"""Swap lifecycle events as pure functions on :class:`SwapState`.

What lives here: the state of one swap trade (:class:`SwapState`: its current terms, CDM position
and closed state, the rates observed for its periods, fee transfers and an event history), the
payment records the events produce (:class:`CashFlow` per period, :class:`Payment` netted per
party pair, currency and date), and the transforms CDM names: execution, reset, payment
computation, partial and full termination, novation (full or partial), clearing (the bilateral
trade replaced by two trades facing the CCP), index transition, and the correction of a wrong
observation (:func:`apply_correction`: reversal of every payment that used the wrong value and
the payment recomputed with the right one).

Every function is deterministic and pure: dates come in as arguments, nothing reads a clock,
nothing is mutated; each returns new states and payment records for the ledger to apply.
Payment amounts are integer minor units (see :mod:`clearhouse.contracts.schedule` for rounding).

Imports the standard library, ``clearhouse.core`` and the sibling ``cdm`` and ``schedule`` modules.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from clearhouse.contracts.cdm import (
    CdmTradeState,
    Counterparty,
    FloatingRate,
    Party,
    SwapLeg,
    SwapTerms,
    TradeId,
    Transfer,
)
from clearhouse.contracts.schedule import Period, floating_amount, periods
from clearhouse.core.errors import InputError, invariant
from clearhouse.core.money import minor_digits, to_minor

#: CDM position states used here.
EXECUTED = "Executed"
CLOSED = "Closed"
#: CDM closed state of a trade that was terminated, novated away or cleared.
TERMINATED = "Terminated"


@dataclass(frozen=True, slots=True)
class Observation:
    """A rate published for an index on a fixing date (an oracle value).

    Attributes:
        index: floating rate option name, e.g. ``USD-LIBOR-BBA``.
        fixing_date: the fixing date observed.
        rate: the rate as a decimal (0.0125 = 1.25%); for an interpolated stub, the
            interpolated rate.
    """

    index: str
    fixing_date: dt.date
    rate: Decimal

    @property
    def key(self) -> tuple[str, dt.date]:
        """What the observation is of: (index, fixing date)."""
        return self.index, self.fixing_date


@dataclass(frozen=True, slots=True)
class Reset:
    """The observation recorded for one floating period.

    Attributes:
        leg_index: position of the leg in the terms.
        period_index: position of the period in the leg.
        observation: the rate recorded.
    """

    leg_index: int
    period_index: int
    observation: Observation


@dataclass(frozen=True, slots=True)
class EventRecord:
    """One lifecycle event applied to a trade.

    Attributes:
        event_date: date of the event.
        event: CDM event qualifier (``Execution``, ``Reset``, ``PartialTermination``...).
        detail: what changed, for people reading the history.
    """

    event_date: dt.date
    event: str
    detail: str


@dataclass(frozen=True, slots=True)
class SwapState:
    """The current state of one swap trade.

    Attributes:
        terms: the trade's current terms (parties, notionals, index...).
        position_state: CDM position state, ``Executed`` or ``Closed``.
        closed_state: CDM closed state (``Terminated``) once closed, else None.
        resets: observations recorded for floating periods, in recording order.
        transfers: fee transfers the events recorded (CDM transfer history).
        history: the events applied, oldest first.
    """

    terms: SwapTerms
    position_state: str
    closed_state: str | None
    resets: tuple[Reset, ...]
    transfers: tuple[Transfer, ...]
    history: tuple[EventRecord, ...]

    @property
    def trade_id(self) -> str:
        return self.terms.trade_id

    @property
    def is_open(self) -> bool:
        return self.position_state != CLOSED

    @property
    def notionals(self) -> tuple[Decimal, ...]:
        """Current (headline) notional of each leg."""
        return tuple(leg.notional for leg in self.terms.legs)

    @property
    def parties(self) -> tuple[str, ...]:
        """Keys of the parties in the counterparty roles."""
        return tuple(c.party for c in self.terms.counterparties)

    def reset_for(self, leg_index: int, period_index: int) -> Reset | None:
        for item in self.resets:
            if item.leg_index == leg_index and item.period_index == period_index:
                return item
        return None


@dataclass(frozen=True, slots=True)
class CashFlow:
    """The amount of one calculation period, from its payer to its receiver.

    Attributes:
        trade_id: the trade.
        period: the period computed.
        payer: key of the leg's payer.
        receiver: key of the leg's receiver.
        amount_minor: signed minor units; negative when the receiver pays (negative rate).
        rate: the all-in rate applied (fixed rate, or observed rate plus spread).
        observation: the observation used, for floating periods.
    """

    trade_id: str
    period: Period
    payer: str
    receiver: str
    amount_minor: int
    rate: Decimal
    observation: Observation | None


@dataclass(frozen=True, slots=True)
class Payment:
    """A payment instruction between two parties: netted cash flows, a fee, or a reversal.

    Attributes:
        payment_id: deterministic identifier.
        trade_id: the trade.
        kind: ``Interest``, ``Reversal``, or the CDM transfer type of a fee
            (``PartialTermination``, ``Termination``...).
        payment_date: date the payment settles.
        currency: ISO 4217 code.
        payer: key of the paying party.
        receiver: key of the receiving party.
        amount_minor: non-negative minor units (a zero net is kept so that a later correction
            still finds the observations it used).
        cashflows: the period cash flows netted into it (empty for fees).
        supersedes: id of the payment a reversal or corrected payment replaces, else None.
    """

    payment_id: str
    trade_id: str
    kind: str
    payment_date: dt.date
    currency: str
    payer: str
    receiver: str
    amount_minor: int
    cashflows: tuple[CashFlow, ...]
    supersedes: str | None

    @property
    def observations(self) -> tuple[Observation, ...]:
        """Observations the payment depended on."""
        return tuple(cf.observation for cf in self.cashflows if cf.observation is not None)


@dataclass(frozen=True, slots=True)
class Transition:
    """A new state and the payments the event produced.

    Attributes:
        state: the trade after the event.
        payments: payments to make (fees).
    """

    state: SwapState
    payments: tuple[Payment, ...]


@dataclass(frozen=True, slots=True)
class NovationResult:
    """Outcome of a novation.

    Attributes:
        remaining: the original trade, reduced (partial) or closed (full).
        novated: the new trade with the incoming party.
        payments: fee payments.
    """

    remaining: SwapState
    novated: SwapState
    payments: tuple[Payment, ...]


@dataclass(frozen=True, slots=True)
class ClearingResult:
    """Outcome of clearing: the bilateral trade closed, two trades facing the CCP.

    Attributes:
        original: the bilateral trade, closed.
        cleared: the trade ``Party1`` keeps against the CCP, then the CCP's against ``Party2``.
    """

    original: SwapState
    cleared: tuple[SwapState, SwapState]


@dataclass(frozen=True, slots=True)
class Correction:
    """Outcome of correcting an observation.

    Attributes:
        state: the trade with its resets corrected.
        reversals: one reversal per payment that used the wrong value.
        corrected: the payments recomputed with the right value.
    """

    state: SwapState
    reversals: tuple[Payment, ...]
    corrected: tuple[Payment, ...]


# --------------------------------------------------------------------------- creation


def execution(terms: SwapTerms, event_date: dt.date) -> SwapState:
    """A newly executed trade (CDM ``Execution``)."""
    for leg in terms.legs:
        if terms.payer_of(leg) == terms.receiver_of(leg):
            raise InputError(f"trade {terms.trade_id!r}: a leg is paid and received by one party")
    return SwapState(
        terms=terms,
        position_state=EXECUTED,
        closed_state=None,
        resets=(),
        transfers=(),
        history=(EventRecord(event_date, "Execution", f"executed {terms.trade_id}"),),
    )


def state_from_cdm(trade_state: CdmTradeState) -> SwapState:
    """A :class:`SwapState` for a trade state read from CDM (no resets or history)."""
    return SwapState(
        terms=trade_state.terms,
        position_state=trade_state.position_state or EXECUTED,
        closed_state=trade_state.closed_state,
        resets=(),
        transfers=trade_state.transfers,
        history=(),
    )


# --------------------------------------------------------------------------- resets, payments


def reset(state: SwapState, observation: Observation, event_date: dt.date) -> SwapState:
    """Record ``observation`` for every floating period that fixes on it (CDM ``Reset``).

    Recording the same value again changes nothing; a different value for a period already
    reset is refused (that is a correction, see :func:`apply_correction`).
    """
    _require_open(state)
    added: list[Reset] = []
    for leg_index in range(len(state.terms.legs)):
        for period in periods(state.terms, leg_index):
            if (period.floating_index, period.fixing_date) != observation.key:
                continue
            existing = state.reset_for(leg_index, period.index)
            if existing is not None:
                if existing.observation.rate != observation.rate:
                    raise InputError(
                        f"trade {state.trade_id!r} leg {leg_index} period {period.index} is "
                        f"already reset at {existing.observation.rate}; correct it instead"
                    )
                continue
            added.append(Reset(leg_index, period.index, observation))
    if not added:
        if any(r.observation == observation for r in state.resets):
            return state
        raise InputError(
            f"trade {state.trade_id!r} has no period fixing {observation.index} "
            f"on {observation.fixing_date}"
        )
    return dataclasses.replace(
        state,
        resets=state.resets + tuple(added),
        history=state.history
        + (
            EventRecord(
                event_date,
                "Reset",
                f"{observation.index} {observation.fixing_date} = {observation.rate}",
            ),
        ),
    )


def cashflows_due(state: SwapState, payment_date: dt.date) -> list[CashFlow]:
    """Cash flows of every period of every leg paying on ``payment_date``.

    Floating periods need their reset recorded; a missing one is refused.
    """
    terms = state.terms
    result = []
    for leg_index, leg in enumerate(terms.legs):
        for period in periods(terms, leg_index):
            if period.payment_date == payment_date:
                result.append(_cashflow(state, leg, period))
    return result


def payments_due(state: SwapState, payment_date: dt.date) -> list[Payment]:
    """Interest payments on ``payment_date``, netted per party pair and currency.

    A closed trade pays nothing.
    """
    if not state.is_open:
        return []
    return net_cashflows(cashflows_due(state, payment_date), trade_id=state.trade_id)


def net_cashflows(
    cashflows: Iterable[CashFlow],
    *,
    trade_id: str,
    kind: str = "Interest",
    settlement_date: dt.date | None = None,
) -> list[Payment]:
    """Net cash flows into one payment per payment date, currency and party pair.

    ``settlement_date`` overrides the periods' payment dates (used for corrections).
    """
    groups: dict[tuple[dt.date, str, tuple[str, str]], list[CashFlow]] = {}
    for cf in cashflows:
        invariant(cf.payer != cf.receiver, f"cash flow of {cf.trade_id} pays itself")
        pair = (min(cf.payer, cf.receiver), max(cf.payer, cf.receiver))
        day = settlement_date or cf.period.payment_date
        groups.setdefault((day, cf.period.currency, pair), []).append(cf)
    result = []
    for (day, currency, pair), flows in sorted(groups.items()):
        net = sum(cf.amount_minor if cf.payer == pair[0] else -cf.amount_minor for cf in flows)
        payer, receiver = pair if net >= 0 else (pair[1], pair[0])
        result.append(
            Payment(
                payment_id=f"{trade_id}:{day.isoformat()}:{currency}:{pair[0]}|{pair[1]}",
                trade_id=trade_id,
                kind=kind,
                payment_date=day,
                currency=currency,
                payer=payer,
                receiver=receiver,
                amount_minor=abs(net),
                cashflows=tuple(flows),
                supersedes=None,
            )
        )
    return result


def net_by_party(payments: Iterable[Payment]) -> dict[tuple[str, str], int]:
    """Signed total per (party, currency): received minus paid, in minor units."""
    totals: dict[tuple[str, str], int] = {}
    for payment in payments:
        for party, sign in ((payment.receiver, 1), (payment.payer, -1)):
            key = (party, payment.currency)
            totals[key] = totals.get(key, 0) + sign * payment.amount_minor
    return totals


# --------------------------------------------------------------------------- notional changes


def partial_termination(
    state: SwapState, *, decrease: Decimal, event_date: dt.date, fee: Transfer | None = None
) -> Transition:
    """Reduce the notional of every leg by ``decrease`` (CDM ``PartialTermination``).

    The decrease applies to the notional in effect on ``event_date``; an amortising schedule is
    scaled in proportion (each value rounded half up to the minor unit). The new notional
    applies to every period not yet paid; the fee settles the terminated part.
    """
    _require_open(state)
    _require_single_currency(state.terms, "partial termination")
    if decrease <= 0:
        raise InputError(f"partial termination of {state.trade_id!r}: decrease must be positive")
    legs = []
    for leg in state.terms.legs:
        current = leg.notional_on(event_date)
        if decrease >= current:
            raise InputError(
                f"partial termination of {state.trade_id!r}: decrease {decrease} is not below "
                f"the notional {current}; use full_termination"
            )
        legs.append(_scaled_leg(leg, current - decrease, current))
    terms = dataclasses.replace(state.terms, legs=tuple(legs))
    return _with_fee(
        dataclasses.replace(state, terms=terms),
        fee,
        EventRecord(event_date, "PartialTermination", f"notional decreased by {decrease}"),
    )


def full_termination(
    state: SwapState, *, event_date: dt.date, fee: Transfer | None = None
) -> Transition:
    """Terminate the trade (CDM ``Termination``): notional to zero, position closed."""
    _require_open(state)
    terms = dataclasses.replace(state.terms, legs=tuple(_zero_leg(leg) for leg in state.terms.legs))
    closed = dataclasses.replace(state, terms=terms, position_state=CLOSED, closed_state=TERMINATED)
    return _with_fee(closed, fee, EventRecord(event_date, "Termination", "terminated"))


def novation(
    state: SwapState,
    *,
    outgoing: str,
    incoming: Party,
    trade_ids: tuple[TradeId, ...],
    event_date: dt.date,
    amount: Decimal | None = None,
    fee: Transfer | None = None,
) -> NovationResult:
    """Replace party ``outgoing`` by ``incoming`` (CDM ``Novation`` / ``PartialNovation``).

    Without ``amount`` (or with the whole notional) the trade is novated in full: the new trade
    carries the whole notional and the original is closed. With a smaller ``amount`` the
    original keeps the rest: the notional in effect on ``event_date`` is split, an amortising
    schedule in proportion, and every remaining value is the original minus the novated one so
    nothing is created or lost. Resets already recorded carry over to the new trade.
    """
    _require_open(state)
    terms = state.terms
    role = _role_of(terms, outgoing)
    if incoming.key in state.parties:
        raise InputError(
            f"novation of {state.trade_id!r}: {incoming.key!r} is already a counterparty"
        )
    if not trade_ids:
        raise InputError(f"novation of {state.trade_id!r}: the new trade needs an identifier")
    if amount is not None and any(amount != leg.notional_on(event_date) for leg in terms.legs):
        _require_single_currency(terms, "partial novation")
        novated_legs, remaining_legs = [], []
        for leg in terms.legs:
            current = leg.notional_on(event_date)
            if not 0 < amount < current:
                raise InputError(
                    f"partial novation of {state.trade_id!r}: amount {amount} is not between 0 "
                    f"and the notional {current}"
                )
            novated_leg = _scaled_leg(leg, amount, current)
            novated_legs.append(novated_leg)
            remaining_legs.append(_difference_leg(leg, novated_leg))
        novated_terms = dataclasses.replace(terms, legs=tuple(novated_legs))
        remaining = dataclasses.replace(
            state, terms=dataclasses.replace(terms, legs=tuple(remaining_legs))
        )
        event = "PartialNovation"
    else:
        novated_terms = terms
        remaining = dataclasses.replace(
            state,
            terms=dataclasses.replace(terms, legs=tuple(_zero_leg(leg) for leg in terms.legs)),
            position_state=CLOSED,
            closed_state=TERMINATED,
        )
        event = "Novation"
    record = EventRecord(event_date, event, f"{outgoing} replaced by {incoming.key}")
    novated = SwapState(
        terms=_replace_party(novated_terms, role, incoming, trade_ids),
        position_state=EXECUTED,
        closed_state=None,
        resets=state.resets,
        transfers=(),
        history=(record,),
    )
    transition = _with_fee(remaining, fee, record, parties=(*state.parties, incoming.key))
    return NovationResult(remaining=transition.state, novated=novated, payments=transition.payments)


def clearing(
    state: SwapState,
    *,
    ccp: Party,
    party1_trade_ids: tuple[TradeId, ...],
    party2_trade_ids: tuple[TradeId, ...],
    event_date: dt.date,
) -> ClearingResult:
    """Clear a bilateral trade (CDM ``ClearedTrade``): novation of both sides to the CCP.

    The party in role ``Party1`` keeps a trade with the CCP in role ``Party2``
    (``party1_trade_ids``); the CCP takes role ``Party1`` against the party in role ``Party2``
    (``party2_trade_ids``). Both carry the full terms and the resets recorded so far; the
    bilateral trade is closed with zero notional.
    """
    _require_open(state)
    if ccp.key in state.parties:
        raise InputError(f"clearing of {state.trade_id!r}: the CCP is already a counterparty")
    if not party1_trade_ids or not party2_trade_ids:
        raise InputError(f"clearing of {state.trade_id!r}: both new trades need identifiers")
    record = EventRecord(event_date, "ClearedTrade", f"novated to {ccp.key}")
    cleared = tuple(
        SwapState(
            terms=_replace_party(state.terms, role, ccp, ids),
            position_state=EXECUTED,
            closed_state=None,
            resets=state.resets,
            transfers=(),
            history=(record,),
        )
        for role, ids in (("Party2", party1_trade_ids), ("Party1", party2_trade_ids))
    )
    original = dataclasses.replace(
        state,
        terms=dataclasses.replace(
            state.terms, legs=tuple(_zero_leg(leg) for leg in state.terms.legs)
        ),
        position_state=CLOSED,
        closed_state=TERMINATED,
        history=state.history + (record,),
    )
    return ClearingResult(original=original, cleared=(cleared[0], cleared[1]))


def index_transition(
    state: SwapState,
    *,
    floating_rate: FloatingRate,
    spread_adjustment: Decimal,
    event_date: dt.date,
) -> SwapState:
    """Replace the floating index (CDM ``IndexTransition``), adding ``spread_adjustment``.

    Periods already reset keep their observation; later fixings observe the new index.
    """
    _require_open(state)
    legs = []
    for leg in state.terms.legs:
        if leg.floating_rate is None:
            legs.append(leg)
            continue
        legs.append(
            dataclasses.replace(
                leg, floating_rate=floating_rate, spread=leg.spread + spread_adjustment
            )
        )
    if legs == list(state.terms.legs):
        raise InputError(f"index transition of {state.trade_id!r}: the trade has no floating leg")
    record = EventRecord(
        event_date,
        "IndexTransition",
        f"index {floating_rate.index}, spread adjusted by {spread_adjustment}",
    )
    return dataclasses.replace(
        state,
        terms=dataclasses.replace(state.terms, legs=tuple(legs)),
        history=state.history + (record,),
    )


# --------------------------------------------------------------------------- corrections


def apply_correction(
    state: SwapState, payments: Sequence[Payment], corrected: Observation, event_date: dt.date
) -> Correction:
    """Correct an observation: reverse what used the wrong value and pay what the right one gives.

    ``payments`` are the trade's payments in force (not already reversed). Every one that used
    an observation of ``corrected.index`` on ``corrected.fixing_date`` with another rate is
    reversed in full (payer and receiver swapped), and its cash flows are recomputed from their
    own periods with ``corrected.rate`` and netted again, so reversal plus corrected payment
    equals, per party, what the right value would have produced from the start. Both settle on
    the later of the original payment date and ``event_date``. The state's resets take the
    corrected value.
    """
    key = corrected.key
    number = 1 + sum(1 for record in state.history if record.event == "Correction")
    reversals: list[Payment] = []
    replacements: list[Payment] = []
    for payment in payments:
        if payment.trade_id != state.trade_id:
            raise InputError(f"payment {payment.payment_id!r} is not of trade {state.trade_id!r}")
        if not any(obs.key == key and obs.rate != corrected.rate for obs in payment.observations):
            continue
        settle = max(payment.payment_date, event_date)
        reversals.append(
            dataclasses.replace(
                payment,
                payment_id=f"{payment.payment_id}/reversal-{number}",
                kind="Reversal",
                payment_date=settle,
                payer=payment.receiver,
                receiver=payment.payer,
                supersedes=payment.payment_id,
            )
        )
        flows = [_recomputed(cf, corrected) for cf in payment.cashflows]
        netted = net_cashflows(
            flows, trade_id=payment.trade_id, kind=payment.kind, settlement_date=settle
        )
        invariant(len(netted) == 1, f"payment {payment.payment_id} netted into {len(netted)}")
        replacements.append(
            dataclasses.replace(
                netted[0],
                payment_id=f"{payment.payment_id}/correction-{number}",
                supersedes=payment.payment_id,
            )
        )
    resets = tuple(
        dataclasses.replace(item, observation=corrected) if item.observation.key == key else item
        for item in state.resets
    )
    used = any(item.observation.key == key for item in state.resets) or any(
        obs.key == key for payment in payments for obs in payment.observations
    )
    if not used:
        raise InputError(
            f"trade {state.trade_id!r} never used {corrected.index} on {corrected.fixing_date}"
        )
    record = EventRecord(
        event_date,
        "Correction",
        f"{corrected.index} {corrected.fixing_date} = {corrected.rate}; "
        f"{len(reversals)} payment(s) reversed",
    )
    new_state = dataclasses.replace(state, resets=resets, history=state.history + (record,))
    return Correction(state=new_state, reversals=tuple(reversals), corrected=tuple(replacements))


# --------------------------------------------------------------------------- helpers


def _require_open(state: SwapState) -> None:
    if not state.is_open:
        raise InputError(f"trade {state.trade_id!r} is closed ({state.closed_state})")


def _require_single_currency(terms: SwapTerms, what: str) -> None:
    if len({leg.currency for leg in terms.legs}) != 1:
        raise InputError(
            f"{what} of {terms.trade_id!r}: legs in several currencies need per-leg amounts"
        )


def _role_of(terms: SwapTerms, party: str) -> str:
    for counterparty in terms.counterparties:
        if counterparty.party == party:
            return counterparty.role
    raise InputError(f"{party!r} is not a counterparty of trade {terms.trade_id!r}")


def _cashflow(state: SwapState, leg: SwapLeg, period: Period) -> CashFlow:
    terms = state.terms
    observation = None
    if period.fixed_amount_minor is not None and period.fixed_rate is not None:
        amount, rate = period.fixed_amount_minor, period.fixed_rate
    else:
        found = state.reset_for(period.leg_index, period.index)
        if found is None:
            raise InputError(
                f"trade {terms.trade_id!r} leg {period.leg_index} period {period.index}: no reset "
                f"recorded for {period.floating_index} on {period.fixing_date}"
            )
        observation = found.observation
        amount = floating_amount(period, observation.rate)
        rate = observation.rate + period.spread
    return CashFlow(
        trade_id=terms.trade_id,
        period=period,
        payer=terms.payer_of(leg),
        receiver=terms.receiver_of(leg),
        amount_minor=amount,
        rate=rate,
        observation=observation,
    )


def _recomputed(cf: CashFlow, corrected: Observation) -> CashFlow:
    if cf.observation is None or cf.observation.key != corrected.key:
        return cf
    return dataclasses.replace(
        cf,
        amount_minor=floating_amount(cf.period, corrected.rate),
        rate=corrected.rate + cf.period.spread,
        observation=corrected,
    )


def _with_fee(
    state: SwapState,
    fee: Transfer | None,
    record: EventRecord,
    parties: tuple[str, ...] | None = None,
) -> Transition:
    history = state.history + (record,)
    if fee is None:
        return Transition(dataclasses.replace(state, history=history), ())
    allowed = parties if parties is not None else state.parties
    if fee.payer not in allowed or fee.receiver not in allowed or fee.payer == fee.receiver:
        raise InputError(
            f"fee of {state.trade_id!r}: {fee.payer!r} -> {fee.receiver!r} is not between parties"
        )
    if fee.amount <= 0:
        raise InputError(f"fee of {state.trade_id!r} must be positive, got {fee.amount}")
    kind = fee.transfer_type or record.event
    payment = Payment(
        payment_id=f"{state.trade_id}:{kind}:{fee.settlement_date.isoformat()}:{len(history)}",
        trade_id=state.trade_id,
        kind=kind,
        payment_date=fee.settlement_date,
        currency=fee.currency,
        payer=fee.payer,
        receiver=fee.receiver,
        amount_minor=to_minor(fee.amount, fee.currency),
        cashflows=(),
        supersedes=None,
    )
    new_state = dataclasses.replace(state, transfers=state.transfers + (fee,), history=history)
    return Transition(new_state, (payment,))


def _quantize(value: Decimal, currency: str) -> Decimal:
    return value.quantize(Decimal(1).scaleb(-minor_digits(currency)), rounding=ROUND_HALF_UP)


def _scaled_leg(leg: SwapLeg, new_current: Decimal, current: Decimal) -> SwapLeg:
    """``leg`` with the notional in effect set to ``new_current``, the schedule in proportion."""
    if not leg.notional_steps:
        return dataclasses.replace(leg, notional=new_current)
    ratio = new_current / current
    steps = tuple(
        dataclasses.replace(step, value=_quantize(step.value * ratio, leg.currency))
        for step in leg.notional_steps
    )
    return dataclasses.replace(
        leg, notional=_quantize(leg.notional * ratio, leg.currency), notional_steps=steps
    )


def _difference_leg(leg: SwapLeg, part: SwapLeg) -> SwapLeg:
    """``leg`` minus the notional schedule of ``part`` (same step dates)."""
    steps = tuple(
        dataclasses.replace(step, value=step.value - part_step.value)
        for step, part_step in zip(leg.notional_steps, part.notional_steps, strict=True)
    )
    return dataclasses.replace(leg, notional=leg.notional - part.notional, notional_steps=steps)


def _zero_leg(leg: SwapLeg) -> SwapLeg:
    return dataclasses.replace(leg, notional=Decimal(0), notional_steps=())


def _replace_party(
    terms: SwapTerms, role: str, incoming: Party, trade_ids: tuple[TradeId, ...]
) -> SwapTerms:
    """``terms`` with ``incoming`` in counterparty ``role`` and new identifiers.

    The outgoing party's entry in the party list is replaced in place by the incoming party and
    later duplicates of the incoming key are dropped, as CDM's party change does.
    """
    outgoing = terms.party_key(role)
    parties: list[Party] = []
    for party in terms.parties:
        candidate = incoming if party.key == outgoing else party
        if all(existing.key != candidate.key for existing in parties):
            parties.append(candidate)
    if all(existing.key != incoming.key for existing in parties):
        parties.append(incoming)
    counterparties = tuple(
        Counterparty(c.role, incoming.key) if c.role == role else c for c in terms.counterparties
    )
    return dataclasses.replace(
        terms, trade_ids=trade_ids, parties=tuple(parties), counterparties=counterparties
    )
