"""Interest rate swaps as ledger contracts: the ``swap_proposal`` and ``swap`` templates.

What lives here:

* ``swap_proposal`` (:class:`SwapProposal`): a CDM ``TradeState`` (or ``Trade``) proposed by one
  counterparty, its CDM parties mapped to ledger participants; the other counterparty's
  ``accept`` creates the ``swap`` with both as signatories (``reject`` and ``withdraw`` archive it).
* ``swap`` (:class:`Swap`): the trade (:class:`~clearhouse.contracts.events.SwapState`), the
  last payment date already dealt with, and every payment it made (interest, fees, reversals,
  corrected payments). Choices, named as CDM names the events: ``reset`` (either party, naming an
  observation), ``partial_termination`` and ``terminate`` (both parties, optional fee),
  ``novate`` (both parties and the incoming one), ``clear`` (either party and the CCP: two swaps,
  each counterparty against the CCP). A cleared side is never terminated or reduced alone (the
  CCP would be left with an open position): it is offset by a new cleared trade. Closing a trade
  (termination, full novation, clearing) keeps the contract with its CDM position state
  ``Closed``: its payments stand on the ledger and a later correction of a fixing they used must
  still reach them.
* The broadcast handlers of ``swap``: ``lifecycle`` (on each business date: record the resets
  whose observations are published, and pay every payment date reached, netted per party pair
  and currency) and ``observation_corrected`` (reverse every payment in force that used the
  wrong value and pay the corrected amount, see ``events.apply_correction``).
* :func:`schedule_rows`: every period of a swap, for the ``swaps schedule`` view.

Every amount is exact integer minor units from :mod:`clearhouse.contracts.events`; every date
comes from the block's business date. Party keys inside a swap's terms are ledger participant ids.

Imports the standard library and ``clearhouse.core`` and ``clearhouse.contracts`` only.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, ClassVar

from clearhouse.contracts import events
from clearhouse.contracts.cdm import Counterparty, Party, SwapTerms, TradeId, Transfer, parse_trade_state
from clearhouse.contracts.events import Observation, Payment, SwapState
from clearhouse.contracts.framework import (
    LIFECYCLE,
    Args,
    CashFlowInstruction,
    Context,
    ContractError,
    Effect,
    Signal,
    Template,
    any_of,
    canonical,
    choice,
)
from clearhouse.contracts.oracle import OBSERVATION_CORRECTED, OracleObservation
from clearhouse.contracts.schedule import floating_amount, payment_dates, periods
from clearhouse.core.errors import InputError
from clearhouse.core.money import format_minor

#: Roles that may be a swap counterparty by proposal or novation (the CCP becomes one by clearing).
COUNTERPARTY_ROLES = ("member",)


# --------------------------------------------------------------------------- swap_proposal


@dataclass(frozen=True, slots=True)
class SwapProposal(Template):
    """A swap one counterparty proposes to the other (the ``swap_proposal`` template).

    Attributes:
        proposer: the counterparty that proposed it (signatory).
        counterparty: the counterparty that may accept it (observer).
        terms: the swap's terms; party keys are ledger participant ids.
    """

    name: ClassVar[str] = "swap_proposal"
    creatable: ClassVar[bool] = True

    proposer: str
    counterparty: str
    terms: SwapTerms

    def signatories(self) -> frozenset[str]:
        return frozenset({self.proposer})

    def observers(self) -> frozenset[str]:
        return frozenset({self.counterparty})

    @classmethod
    def create(cls, ctx: Context, fields: Args) -> Template:
        """From ``{"cdm": TradeState (object or JSON text), "parties": {CDM party or role: id},
        "business_centers": {reference: [centre codes]}}``; the submitter is the proposer."""
        document, mapping = fields.get("cdm"), fields.get("parties")
        centers = fields.get("business_centers") or {}
        if not isinstance(document, str | Mapping) or not isinstance(mapping, Mapping):
            raise ContractError("a swap proposal needs cdm (a CDM TradeState) and parties (an object)")
        if not isinstance(centers, Mapping) or not all(
            isinstance(codes, list) and all(isinstance(code, str) for code in codes) for codes in centers.values()
        ):
            raise ContractError("business_centers maps a reference name to a list of centre codes")
        trade_state = parse_trade_state(document, business_centers={k: tuple(v) for k, v in centers.items()})
        if trade_state.position_state == events.CLOSED:
            raise ContractError(f"trade {trade_state.terms.trade_id!r} is closed ({trade_state.closed_state})")
        terms = rekey_parties(trade_state.terms, mapping)
        counterparties = [c.party for c in terms.counterparties]
        for party in counterparties:
            ctx.require_role(party, *COUNTERPARTY_ROLES)
        proposers = sorted(ctx.actors.intersection(counterparties))
        if len(proposers) != 1:
            raise ContractError("the proposer must be one of the swap's two counterparties")
        events.execution(terms, ctx.business_date)
        for leg_index in range(len(terms.legs)):
            periods(terms, leg_index)
        (other,) = (party for party in counterparties if party != proposers[0])
        return cls(proposer=proposers[0], counterparty=other, terms=terms)

    @choice(controllers=lambda c: {c.counterparty})
    def accept(self, ctx: Context, args: Args) -> Effect:
        """The counterparty agrees: the swap is executed with both counterparties as signatories."""
        trade = events.execution(self.terms, ctx.business_date)
        swap = Swap(trade=trade, paid_through=ctx.business_date - dt.timedelta(days=1), payments=())
        return Effect(None, created=(swap,))

    @choice(controllers=lambda c: {c.counterparty})
    def reject(self, ctx: Context, args: Args) -> Effect:
        return Effect(None)

    @choice(controllers=lambda c: {c.proposer})
    def withdraw(self, ctx: Context, args: Args) -> Effect:
        return Effect(None)


# --------------------------------------------------------------------------- swap


def _parties(swap: Swap) -> tuple[str, ...]:
    return tuple(sorted(swap.trade.parties))


def _incoming(swap: Swap, args: Args) -> set[str]:
    incoming = args.get("incoming")
    if not isinstance(incoming, str):
        raise ContractError("novate needs incoming (the participant taking over)")
    return {incoming}


def _ccp(swap: Swap, args: Args) -> set[str]:
    ccp = args.get("ccp")
    if not isinstance(ccp, str):
        raise ContractError("clear needs ccp (the central counterparty's participant id)")
    return {ccp}


@dataclass(frozen=True, slots=True)
class Swap(Template):
    """An interest rate swap between two ledger participants (the ``swap`` template).

    Attributes:
        trade: the trade: terms, CDM position state, resets, fee transfers, event history.
        paid_through: the last date whose payments are dealt with: payment dates after it and
            on or before a lifecycle date are paid on that date.
        payments: every payment the contract made, in order: interest, fees, reversals and
            corrected payments (each naming the payment it supersedes).
    """

    name: ClassVar[str] = "swap"

    trade: SwapState
    paid_through: dt.date
    payments: tuple[Payment, ...]

    def signatories(self) -> frozenset[str]:
        return frozenset(self.trade.parties)

    def payments_in_force(self) -> list[Payment]:
        """Payments not reversed (fees, interest, corrected payments)."""
        reversed_ids = {p.supersedes for p in self.payments if p.kind == "Reversal"}
        return [p for p in self.payments if p.kind != "Reversal" and p.payment_id not in reversed_ids]

    def _require_open(self) -> None:
        if not self.trade.is_open:
            raise ContractError(f"trade {self.trade.trade_id!r} is closed ({self.trade.closed_state})")

    def _require_uncleared(self, ctx: Context, what: str) -> None:
        """A cleared trade's economics change on both sides or not at all: the CCP stays flat."""
        if any(ctx.role(party) == "ccp" for party in self.trade.parties):
            raise ContractError(
                f"{what} of one side of a cleared trade would leave the CCP unbalanced; "
                "offset it with a new cleared trade instead"
            )

    def _with(
        self, ctx: Context, trade: SwapState, payments: Sequence[Payment] = ()
    ) -> tuple[Swap, tuple[CashFlowInstruction, ...]]:
        flows = instructions(ctx.contract_id, payments, ctx.business_date)
        return dataclasses.replace(self, trade=trade, payments=self.payments + tuple(payments)), flows

    # ----------------------------------------------------------------- choices

    @choice(controllers=lambda c: any_of(*_parties(c)))
    def reset(self, ctx: Context, args: Args) -> Effect:
        """Record the observation named by ``{"observation": id}`` for the periods fixing on it."""
        self._require_open()
        observation_id = args.get("observation")
        if not isinstance(observation_id, str):
            raise ContractError("reset needs observation (an observation id)")
        found = ctx.lookup(OracleObservation.name, ("id", observation_id))
        if not isinstance(found, OracleObservation):
            raise ContractError(f"no observation {observation_id!r}")
        successor, _ = self._with(ctx, events.reset(self.trade, found.observation, ctx.business_date))
        return Effect(successor)

    @choice(controllers=lambda c: set(_parties(c)))
    def partial_termination(self, ctx: Context, args: Args) -> Effect:
        """Reduce every leg's notional by ``decrease``; an optional ``fee`` settles the part ended."""
        self._require_open()
        self._require_uncleared(ctx, "partial termination")
        decrease = parse_decimal(args.get("decrease"), "decrease")
        fee = parse_fee(args.get("fee"), ctx, "PartialTermination")
        result = events.partial_termination(self.trade, decrease=decrease, event_date=ctx.business_date, fee=fee)
        successor, flows = self._with(ctx, result.state, result.payments)
        return Effect(successor, cash_flows=flows)

    @choice(controllers=lambda c: set(_parties(c)))
    def terminate(self, ctx: Context, args: Args) -> Effect:
        """End the trade (CDM ``Termination``), with an optional ``fee``."""
        self._require_open()
        self._require_uncleared(ctx, "termination")
        fee = parse_fee(args.get("fee"), ctx, "Termination")
        result = events.full_termination(self.trade, event_date=ctx.business_date, fee=fee)
        successor, flows = self._with(ctx, result.state, result.payments)
        return Effect(successor, cash_flows=flows)

    @choice(controllers=lambda c: set(_parties(c)), consent=_incoming)
    def novate(self, ctx: Context, args: Args) -> Effect:
        """``outgoing`` hands its side to ``incoming`` (all of ``amount`` if given, else in full)."""
        self._require_open()
        outgoing = args.get("outgoing")
        if outgoing not in self.trade.parties:
            raise ContractError(f"outgoing {outgoing!r} is not a counterparty of this swap")
        incoming = ctx.require_role(args.get("incoming"), *COUNTERPARTY_ROLES)
        amount = parse_decimal(args["amount"], "amount") if args.get("amount") is not None else None
        if amount is not None:
            self._require_uncleared(ctx, "partial novation")
        fee = parse_fee(args.get("fee"), ctx, "Novation")
        number = 1 + sum(1 for record in self.trade.history if record.event in ("Novation", "PartialNovation"))
        result = events.novation(
            self.trade,
            outgoing=outgoing,
            incoming=Party(incoming, None, ()),
            trade_ids=(TradeId(f"{self.trade.trade_id}/N{number}"),),
            event_date=ctx.business_date,
            amount=amount,
            fee=fee,
        )
        successor, flows = self._with(ctx, result.remaining, result.payments)
        novated = Swap(trade=result.novated, paid_through=self.paid_through, payments=())
        return Effect(successor, created=(novated,), cash_flows=flows)

    @choice(controllers=lambda c: any_of(*_parties(c)), consent=_ccp)
    def clear(self, ctx: Context, args: Args) -> Effect:
        """Novate the trade to the CCP (CDM ``ClearedTrade``): each counterparty now faces the CCP."""
        self._require_open()
        ccp = ctx.require_role(args.get("ccp"), "ccp")
        trade_id = self.trade.trade_id
        party1, party2 = (self.trade.terms.party_key(role) for role in ("Party1", "Party2"))
        result = events.clearing(
            self.trade,
            ccp=Party(ccp, None, ()),
            party1_trade_ids=(TradeId(f"{trade_id}/{ccp}-{party1}"),),
            party2_trade_ids=(TradeId(f"{trade_id}/{ccp}-{party2}"),),
            event_date=ctx.business_date,
        )
        cleared = tuple(Swap(trade=state, paid_through=self.paid_through, payments=()) for state in result.cleared)
        return Effect(dataclasses.replace(self, trade=result.original), created=cleared)

    # ----------------------------------------------------------------- broadcasts

    def receive(self, ctx: Context, signal: Signal) -> Effect | None:
        if signal.name == LIFECYCLE:
            return self._lifecycle(ctx)
        if signal.name == OBSERVATION_CORRECTED and signal.source_template == OracleObservation.name:
            return self._correct(ctx, signal.value)
        return None

    def _lifecycle(self, ctx: Context) -> Effect | None:
        """Resets from published observations, then every payment date up to the business date."""
        if not self.trade.is_open:
            return None
        day = ctx.business_date
        trade = self.trade
        needed: set[tuple[str, dt.date]] = set()
        for leg_index in range(len(trade.terms.legs)):
            for period in periods(trade.terms, leg_index):
                if (
                    period.floating_index is not None
                    and period.fixing_date is not None
                    and period.fixing_date <= day
                    and period.payment_date > self.paid_through
                    and trade.reset_for(leg_index, period.index) is None
                ):
                    needed.add((period.floating_index, period.fixing_date))
        for index, fixing_date in sorted(needed):
            found = ctx.lookup(OracleObservation.name, ("fixing", index, fixing_date))
            if isinstance(found, OracleObservation):
                trade = events.reset(trade, found.observation, day)
        paid: list[Payment] = []
        through = self.paid_through
        refusals: tuple[str, ...] = ()
        for payment_date in payment_dates(trade.terms):
            if not through < payment_date <= day:
                continue
            try:
                paid.extend(events.payments_due(trade, payment_date))
            except InputError as exc:
                refusals = (f"missing_observation: {exc}",)
                break
            through = payment_date
        if trade == self.trade and through == self.paid_through:
            return Effect(self, refusals=refusals) if refusals else None
        successor, flows = self._with(ctx, trade, paid)
        return Effect(dataclasses.replace(successor, paid_through=through), cash_flows=flows, refusals=refusals)

    def _correct(self, ctx: Context, corrected: Observation) -> Effect | None:
        """Reverse and redo every payment in force that used another value of the observation."""
        in_force = self.payments_in_force()
        key = corrected.key
        stale = any(
            obs.key == key and obs.rate != corrected.rate for payment in in_force for obs in payment.observations
        ) or any(r.observation.key == key and r.observation.rate != corrected.rate for r in self.trade.resets)
        if not stale:
            return None
        result = events.apply_correction(self.trade, in_force, corrected, ctx.business_date)
        successor, flows = self._with(ctx, result.state, result.reversals + result.corrected)
        return Effect(successor, cash_flows=flows)


# --------------------------------------------------------------------------- helpers


def instructions(
    contract_id: str, payments: Iterable[Payment], business_date: dt.date
) -> tuple[CashFlowInstruction, ...]:
    """Cash flow instructions of payments (zero nets are kept as records, not paid).

    A payment whose date has passed settles on the business date.
    """
    return tuple(
        CashFlowInstruction(
            payer=p.payer,
            receiver=p.receiver,
            currency=p.currency,
            settlement_date=max(p.payment_date, business_date),
            amount_minor=p.amount_minor,
            reference=f"{contract_id}/{p.payment_id}",
        )
        for p in payments
        if p.amount_minor
    )


def rekey_parties(terms: SwapTerms, mapping: Mapping[str, Any]) -> SwapTerms:
    """``terms`` with CDM party keys replaced by ledger participant ids.

    ``mapping`` maps a CDM party key (``party1``) or a counterparty role (``Party1``) to a
    participant id; both counterparties must be mapped, other parties may be.
    """
    rename: dict[str, str] = {}
    for counterparty in terms.counterparties:
        target = mapping.get(counterparty.party, mapping.get(counterparty.role))
        if not isinstance(target, str) or not target:
            raise ContractError(f"no ledger participant given for {counterparty.role} ({counterparty.party!r})")
        rename[counterparty.party] = target
    for party in terms.parties:
        target = mapping.get(party.key)
        if party.key not in rename and isinstance(target, str) and target:
            rename[party.key] = target
    mapped = [rename[c.party] for c in terms.counterparties]
    if len(set(mapped)) != len(mapped):
        raise ContractError("the two counterparties map to one participant")
    unmapped = {p.key for p in terms.parties if p.key not in rename}
    if unmapped.intersection(rename.values()):
        raise ContractError(f"participant id(s) {sorted(unmapped.intersection(rename.values()))} clash with CDM keys")

    def key(value: str | None) -> str | None:
        return None if value is None else rename.get(value, value)

    return dataclasses.replace(
        terms,
        parties=tuple(dataclasses.replace(p, key=rename.get(p.key, p.key)) for p in terms.parties),
        counterparties=tuple(Counterparty(c.role, rename[c.party]) for c in terms.counterparties),
        party_roles=tuple(
            dataclasses.replace(r, party=rename.get(r.party, r.party), owner=key(r.owner)) for r in terms.party_roles
        ),
        trade_ids=tuple(dataclasses.replace(t, issuer_party=key(t.issuer_party)) for t in terms.trade_ids),
    )


def parse_decimal(value: Any, what: str) -> Decimal:
    """A positive decimal argument (string or JSON number)."""
    if isinstance(value, bool) or not isinstance(value, str | int | Decimal):
        raise ContractError(f"{what} must be a decimal number, got {value!r}")
    try:
        result = Decimal(value)
    except ArithmeticError:
        raise ContractError(f"{what} must be a decimal number, got {value!r}") from None
    if not result.is_finite() or result <= 0:
        raise ContractError(f"{what} must be positive, got {value!r}")
    return result


def parse_fee(value: Any, ctx: Context, transfer_type: str) -> Transfer | None:
    """A fee ``{"amount", "currency", "payer", "receiver", "settlement_date"?}`` (date default: today)."""
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise ContractError("fee must be an object with amount, currency, payer and receiver")
    currency = value.get("currency")
    if not (isinstance(currency, str) and len(currency) == 3 and currency.isalpha() and currency.isupper()):
        raise ContractError(f"fee currency {currency!r} is not an ISO 4217 code")
    payer, receiver = value.get("payer"), value.get("receiver")
    if not isinstance(payer, str) or not isinstance(receiver, str):
        raise ContractError("fee needs payer and receiver participant ids")
    try:
        settles = dt.date.fromisoformat(str(value.get("settlement_date", ctx.business_date.isoformat())))
    except ValueError:
        raise ContractError(f"fee settlement_date {value.get('settlement_date')!r} is not a date") from None
    if settles < ctx.business_date:
        raise ContractError(f"fee settlement_date {settles} is before the business date {ctx.business_date}")
    return Transfer(parse_decimal(value.get("amount"), "fee amount"), currency, payer, receiver, settles, transfer_type)


def schedule_rows(swap: Swap, observation_id: Callable[[str, dt.date], str | None]) -> list[dict[str, Any]]:
    """Every calculation period of both legs, with its amounts once known.

    Periods already paid show what was paid (the cash flow in force, with its period as it was
    then); the others show the current terms and any reset recorded.
    """
    paid = {
        (cf.period.leg_index, cf.period.index): (payment, cf)
        for payment in swap.payments_in_force()
        for cf in payment.cashflows
    }
    terms = swap.trade.terms
    rows: list[dict[str, Any]] = []
    for leg_index, leg in enumerate(terms.legs):
        for current in periods(terms, leg_index):
            payment, cf = paid.get((leg_index, current.index), (None, None))
            period = cf.period if cf is not None else current
            observation = cf.observation if cf is not None else None
            if observation is None and cf is None and period.floating_index is not None:
                reset = swap.trade.reset_for(leg_index, period.index)
                observation = reset.observation if reset is not None else None
            amount: int | None = None
            if cf is not None and period.floating_index is not None:
                amount = cf.amount_minor
            elif observation is not None:
                amount = floating_amount(period, observation.rate)
            fraction = period.day_count_fraction
            rows.append(
                {
                    "leg": leg_index,
                    "period": period.index,
                    "payer": terms.payer_of(leg),
                    "receiver": terms.receiver_of(leg),
                    "currency": period.currency,
                    "unadjusted_start": period.unadjusted_start.isoformat(),
                    "unadjusted_end": period.unadjusted_end.isoformat(),
                    "start": period.adjusted_start.isoformat(),
                    "end": period.adjusted_end.isoformat(),
                    "payment_date": period.payment_date.isoformat(),
                    "fixing_date": period.fixing_date.isoformat() if period.fixing_date else None,
                    "day_count": leg.day_count,
                    "day_count_fraction": canonical(fraction),
                    "day_count_fraction_decimal": f"{Decimal(fraction.numerator) / Decimal(fraction.denominator):.10f}",
                    "notional": str(period.notional),
                    "fixed_rate": str(period.fixed_rate) if period.fixed_rate is not None else None,
                    "fixed_amount": (
                        format_minor(period.fixed_amount_minor, period.currency)
                        if period.fixed_amount_minor is not None
                        else None
                    ),
                    "floating_index": period.floating_index,
                    "spread": str(period.spread) if period.floating_index is not None else None,
                    "floating_rate": str(observation.rate) if observation is not None else None,
                    "observation_id": observation_id(*observation.key) if observation is not None else None,
                    "floating_amount": (
                        format_minor(amount, period.currency) if amount is not None else None
                    ),
                    "stub": period.stub,
                    "paid": payment is not None,
                    "payment_id": payment.payment_id if payment is not None else None,
                }
            )
    return rows


#: The templates of swaps and oracle observations.
TEMPLATES: tuple[type[Template], ...] = (SwapProposal, Swap, OracleObservation)
