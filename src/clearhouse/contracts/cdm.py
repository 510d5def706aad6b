"""CDM JSON intake for interest rate swaps: clearhouse's own frozen records of a swap's terms.

What lives here: the records a swap contract needs (:class:`SwapTerms`, two :class:`SwapLeg`,
parties, trade identifiers, transfers) and the parsers that read them from FINOS Common Domain
Model JSON: a ``TradeState``, a bare ``Trade``, an execution instruction, and the
``before``/``after`` trade states and primitive instructions of a ``BusinessEvent`` (also when
wrapped in a ``WorkflowStep``). The JSON is read directly; CDM references (``@ref``,
``@ref:scoped``, ``@ref:external``) are resolved against the keys of the same trade.

CDM keeps business centres that an FpML document defined elsewhere as unresolved external
references (``primaryBusinessCenters``). The caller resolves them with ``business_centers``
(reference name to centre codes); one left unresolved is kept by name, and the schedule code
refuses to build dates from it.

Any construct that would change the cash flows and is not modelled (compounding, rate or spread
schedules, caps and floors, principal exchanges, stub amounts, relative effective dates, more
than one trade lot, ...) raises :class:`InputError` naming it, rather than being ignored.

Imports only the standard library and ``clearhouse.core``.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from clearhouse.core.errors import InputError

#: Reference name to business-centre codes, for CDM's unresolved external references.
BusinessCenterRefs = Mapping[str, Sequence[str]]

_INTEREST_RATE_PAYOUT = "cdm.product.asset.InterestRatePayout"
_FIXED_RATE_SPEC = "cdm.product.asset.FixedRateSpecification"
_FLOATING_RATE_SPEC = "cdm.product.asset.FloatingRateSpecification"

_PAYOUT_KEYS = frozenset(
    {
        "@type",
        "@key",
        "payerReceiver",
        "priceQuantity",
        "rateSpecification",
        "dayCountFraction",
        "calculationPeriodDates",
        "paymentDates",
        "resetDates",
        "stubPeriod",
        "cashflowRepresentation",
    }
)
_CALC_DATES_KEYS = frozenset(
    {
        "@key",
        "@key:external",
        "effectiveDate",
        "terminationDate",
        "calculationPeriodDatesAdjustments",
        "firstPeriodStartDate",
        "firstRegularPeriodStartDate",
        "lastRegularPeriodEndDate",
        "calculationPeriodFrequency",
    }
)
_PAYMENT_DATES_KEYS = frozenset(
    {
        "@key",
        "@key:external",
        "calculationPeriodDatesReference",
        "paymentFrequency",
        "firstPaymentDate",
        "payRelativeTo",
        "paymentDatesAdjustments",
        "paymentDaysOffset",
    }
)
_RESET_DATES_KEYS = frozenset(
    {
        "@key",
        "@key:external",
        "calculationPeriodDatesReference",
        "resetRelativeTo",
        "fixingDates",
        "resetFrequency",
        "resetDatesAdjustments",
    }
)
_OFFSET_KEYS = frozenset(
    {
        "@key",
        "@key:external",
        "periodMultiplier",
        "period",
        "dayType",
        "businessDayConvention",
        "businessCenters",
        "dateRelativeTo",
    }
)
_QUANTITY_KEYS = frozenset({"@key", "@key:scoped", "value", "datedValue", "unit"})
_RATE_PRICE_KEYS = frozenset(
    {
        "@key",
        "@key:scoped",
        "value",
        "unit",
        "perUnitOf",
        "priceType",
        "arithmeticOperator",
    }
)
_FLOATING_SPEC_KEYS = frozenset({"@type", "@key", "rateOption", "spreadSchedule"})
_FIXED_SPEC_KEYS = frozenset({"@type", "@key", "rateSchedule"})
_STUB_KEYS = frozenset({"floatingRate", "stubRate"})
_PRIMITIVE_KEYS = frozenset(
    {
        "execution",
        "quantityChange",
        "partyChange",
        "transfer",
        "split",
        "indexTransition",
    }
)


# --------------------------------------------------------------------------- records


@dataclass(frozen=True, slots=True)
class Tenor:
    """A period such as 6M, 1Y or -2D, as CDM writes frequencies and offsets.

    Attributes:
        multiplier: signed count of units.
        period: unit code: ``D`` day, ``W`` week, ``M`` month, ``Y`` year, ``T`` whole term.
    """

    multiplier: int
    period: str

    def __str__(self) -> str:
        return f"{self.multiplier}{self.period}"


@dataclass(frozen=True, slots=True)
class DateAdjustments:
    """How a date is moved onto a business day.

    Attributes:
        convention: CDM business-day convention (``NONE``, ``FOLLOWING``, ``MODFOLLOWING``,
            ``PRECEDING``, ``MODPRECEDING``, ``NEAREST``).
        business_centers: centre codes (``GBLO``, ``USNY``, ``EUTA``...) whose joint holidays
            apply; empty when the document names none or names an unresolved reference.
        centers_reference: name of the business-centres reference the document used, if any.
    """

    convention: str
    business_centers: tuple[str, ...] = ()
    centers_reference: str | None = None

    @property
    def unresolved(self) -> bool:
        """True when the centres come from a reference nobody resolved."""
        return self.centers_reference is not None and not self.business_centers


@dataclass(frozen=True, slots=True)
class Offset:
    """A date offset relative to another date (fixing lag, payment lag).

    Attributes:
        tenor: signed offset, e.g. ``-2D``.
        day_type: ``Business`` or ``Calendar`` days (None when not given).
        adjustments: convention and centres of the offset.
    """

    tenor: Tenor
    day_type: str | None
    adjustments: DateAdjustments


@dataclass(frozen=True, slots=True)
class NotionalStep:
    """One step of an amortising notional schedule.

    Attributes:
        date: unadjusted date from which the value applies (periods starting on or after it).
        value: notional amount in the leg currency.
    """

    date: dt.date
    value: Decimal


@dataclass(frozen=True, slots=True)
class FloatingRate:
    """A floating rate index and its designated maturity.

    Attributes:
        index: ISDA floating rate option name, e.g. ``EUR-LIBOR-BBA``.
        tenor: index tenor (designated maturity), when given.
    """

    index: str
    tenor: Tenor | None


@dataclass(frozen=True, slots=True)
class Stub:
    """What applies to an initial or final stub period.

    Attributes:
        rate: an all-in rate fixed for the stub (``stubRate``), if any.
        floating_rates: the index tenors interpolated for the stub, if any.
    """

    rate: Decimal | None
    floating_rates: tuple[FloatingRate, ...]


@dataclass(frozen=True, slots=True)
class ResetTerms:
    """Reset and fixing rules of a floating leg.

    Attributes:
        relative_to: ``CalculationPeriodStartDate`` (in advance) or ``CalculationPeriodEndDate``
            (in arrears).
        frequency: reset frequency; equal to the calculation-period frequency.
        adjustments: adjustment of reset dates.
        fixing_offset: offset of the fixing date from the reset date.
    """

    relative_to: str
    frequency: Tenor
    adjustments: DateAdjustments
    fixing_offset: Offset


@dataclass(frozen=True, slots=True)
class SwapLeg:
    """One interest rate stream (CDM ``InterestRatePayout``) of a swap.

    Attributes:
        payer: counterparty role paying this leg (``Party1`` or ``Party2``).
        receiver: counterparty role receiving it.
        currency: ISO 4217 code of notional and amounts.
        notional: initial notional amount.
        notional_steps: amortisation steps after the initial value, by date.
        fixed_rate: the fixed rate as a decimal (0.06 = 6%), for a fixed leg.
        floating_rate: the index, for a floating leg.
        spread: spread added to the floating rate (0 for a fixed leg).
        day_count: CDM day count fraction name (``ACT/360``, ``30E/360``...).
        effective_date: unadjusted effective date.
        effective_adjustments: adjustment of the effective date.
        termination_date: unadjusted termination date.
        termination_adjustments: adjustment of the termination date.
        first_period_start_date: unadjusted start of the first period when before the
            effective date.
        first_period_start_adjustments: adjustment of that date.
        first_regular_period_start_date: end of an initial stub, if any.
        last_regular_period_end_date: start of a final stub, if any.
        calculation_frequency: calculation period frequency.
        roll_convention: CDM roll convention (day of month ``1``..``30``, ``EOM``...).
        calculation_adjustments: adjustment of calculation period dates.
        payment_frequency: payment frequency (a multiple of the calculation frequency).
        pay_relative_to: ``CalculationPeriodEndDate`` or ``CalculationPeriodStartDate``.
        payment_adjustments: adjustment of payment dates.
        first_payment_date: unadjusted first payment date, when given.
        payment_days_offset: payment lag after the relative date, when given.
        reset: reset and fixing rules (floating legs only).
        initial_stub: stub terms of an initial stub, when given.
        final_stub: stub terms of a final stub, when given.
    """

    payer: str
    receiver: str
    currency: str
    notional: Decimal
    notional_steps: tuple[NotionalStep, ...]
    fixed_rate: Decimal | None
    floating_rate: FloatingRate | None
    spread: Decimal
    day_count: str
    effective_date: dt.date
    effective_adjustments: DateAdjustments
    termination_date: dt.date
    termination_adjustments: DateAdjustments
    first_period_start_date: dt.date | None
    first_period_start_adjustments: DateAdjustments | None
    first_regular_period_start_date: dt.date | None
    last_regular_period_end_date: dt.date | None
    calculation_frequency: Tenor
    roll_convention: str | None
    calculation_adjustments: DateAdjustments
    payment_frequency: Tenor
    pay_relative_to: str
    payment_adjustments: DateAdjustments
    first_payment_date: dt.date | None
    payment_days_offset: Offset | None
    reset: ResetTerms | None
    initial_stub: Stub | None
    final_stub: Stub | None

    @property
    def is_fixed(self) -> bool:
        return self.fixed_rate is not None

    def notional_on(self, day: dt.date) -> Decimal:
        """Notional in effect for a period starting (unadjusted) on ``day``."""
        value = self.notional
        for step in self.notional_steps:
            if step.date <= day:
                value = step.value
        return value


@dataclass(frozen=True, slots=True)
class Party:
    """A party to a trade.

    Attributes:
        key: the document's key for the party (``party1``, ``clearing-svc``...).
        name: display name, when given.
        identifiers: party identifiers (LEI, BIC...), in document order.
    """

    key: str
    name: str | None
    identifiers: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Counterparty:
    """Binds a counterparty role of the product to a party.

    Attributes:
        role: ``Party1`` or ``Party2``.
        party: key of the party playing the role.
    """

    role: str
    party: str


@dataclass(frozen=True, slots=True)
class PartyRole:
    """A further role a party has on the trade (clearing organisation, broker...).

    Attributes:
        party: key of the party.
        role: CDM party role name.
        owner: key of the party on whose behalf the role is recorded, when given.
    """

    party: str
    role: str
    owner: str | None


@dataclass(frozen=True, slots=True)
class TradeId:
    """A trade identifier.

    Attributes:
        identifier: the identifier value.
        issuer_party: key of the issuing party, when given by reference.
        issuer: issuer code, when given as a value.
        scheme: identifier scheme URI, when given.
        id_type: CDM identifier type (``UniqueTransactionIdentifier``...), when given.
        version: identifier version, when given.
    """

    identifier: str
    issuer_party: str | None = None
    issuer: str | None = None
    scheme: str | None = None
    id_type: str | None = None
    version: int | None = None


@dataclass(frozen=True, slots=True)
class SwapTerms:
    """The economic and party terms of a two-leg interest rate swap.

    Attributes:
        trade_ids: trade identifiers, in document order.
        trade_date: trade date.
        parties: parties named on the trade, in document order.
        counterparties: which party plays ``Party1`` and ``Party2``.
        party_roles: further roles (clearing organisation, broker...).
        legs: the two legs; payer and receiver are counterparty roles.
        product_qualifier: ISDA taxonomy name, e.g. ``InterestRate_IRSwap_FixedFloat``.
    """

    trade_ids: tuple[TradeId, ...]
    trade_date: dt.date
    parties: tuple[Party, ...]
    counterparties: tuple[Counterparty, ...]
    party_roles: tuple[PartyRole, ...]
    legs: tuple[SwapLeg, ...]
    product_qualifier: str | None

    @property
    def trade_id(self) -> str:
        """The first identifier, used to name payments."""
        return self.trade_ids[0].identifier if self.trade_ids else ""

    @property
    def effective_date(self) -> dt.date:
        """Earliest unadjusted effective date of the legs."""
        return min(leg.effective_date for leg in self.legs)

    @property
    def termination_date(self) -> dt.date:
        """Latest unadjusted termination date of the legs."""
        return max(leg.termination_date for leg in self.legs)

    def party_key(self, role: str) -> str:
        """Key of the party playing a counterparty role."""
        for counterparty in self.counterparties:
            if counterparty.role == role:
                return counterparty.party
        raise InputError(f"trade {self.trade_id!r} has no counterparty in role {role!r}")

    def party(self, key: str) -> Party:
        for party in self.parties:
            if party.key == key:
                return party
        raise InputError(f"trade {self.trade_id!r} names no party {key!r}")

    def payer_of(self, leg: SwapLeg) -> str:
        """Key of the party paying ``leg``."""
        return self.party_key(leg.payer)

    def receiver_of(self, leg: SwapLeg) -> str:
        """Key of the party receiving ``leg``."""
        return self.party_key(leg.receiver)


@dataclass(frozen=True, slots=True)
class Transfer:
    """A cash transfer named by an event (termination or novation fee).

    Attributes:
        amount: amount in ``currency``.
        currency: ISO 4217 code.
        payer: key of the paying party.
        receiver: key of the receiving party.
        settlement_date: date the transfer settles.
        transfer_type: CDM transfer type (``PartialTermination``, ``Termination``...).
    """

    amount: Decimal
    currency: str
    payer: str
    receiver: str
    settlement_date: dt.date
    transfer_type: str | None


@dataclass(frozen=True, slots=True)
class CdmTradeState:
    """A CDM ``TradeState``: the trade's terms and its position state.

    Attributes:
        terms: the swap's terms.
        position_state: CDM position state (``Executed``, ``Closed``), when given.
        closed_state: CDM closed state (``Terminated``, ``Novated``...), when given.
        transfers: the transfer history recorded on the state.
    """

    terms: SwapTerms
    position_state: str | None
    closed_state: str | None
    transfers: tuple[Transfer, ...]


@dataclass(frozen=True, slots=True)
class QuantityAmount:
    """One amount of a quantity change.

    Attributes:
        value: amount.
        currency: ISO 4217 code.
    """

    value: Decimal
    currency: str


@dataclass(frozen=True, slots=True)
class QuantityChange:
    """A CDM quantity change instruction.

    Attributes:
        direction: ``Increase``, ``Decrease`` or ``Replace``.
        amounts: the amounts changed (or the new amounts, for ``Replace``).
    """

    direction: str
    amounts: tuple[QuantityAmount, ...]


@dataclass(frozen=True, slots=True)
class PartyChange:
    """A CDM party change instruction: a new party takes a counterparty role.

    Attributes:
        role: the counterparty role taken over.
        party: the incoming party.
        trade_ids: identifiers of the trade that results.
    """

    role: str
    party: Party
    trade_ids: tuple[TradeId, ...]


@dataclass(frozen=True, slots=True)
class IndexTransitionInstruction:
    """A CDM index transition instruction: the floating index is replaced.

    Attributes:
        floating_rate: the new index.
        spread_adjustment: added to the existing spread.
        effective_date: date from which the new index applies.
    """

    floating_rate: FloatingRate
    spread_adjustment: Decimal
    effective_date: dt.date


@dataclass(frozen=True, slots=True)
class PrimitiveInstruction:
    """The primitive instructions of one CDM instruction (any combination may be present).

    Attributes:
        execution: terms of a newly executed trade.
        quantity_change: a notional change.
        party_change: a counterparty replaced.
        transfers: cash transfers.
        split: the branches of a split, each a primitive instruction.
        index_transition: a floating index replacement.
    """

    execution: SwapTerms | None = None
    quantity_change: QuantityChange | None = None
    party_change: PartyChange | None = None
    transfers: tuple[Transfer, ...] = ()
    split: tuple[PrimitiveInstruction, ...] = ()
    index_transition: IndexTransitionInstruction | None = None


@dataclass(frozen=True, slots=True)
class CdmInstruction:
    """One instruction of a business event: what to do, and to which trade state.

    Attributes:
        primitive: the primitive instructions.
        before: the trade state acted on (None for an execution).
    """

    primitive: PrimitiveInstruction
    before: CdmTradeState | None


@dataclass(frozen=True, slots=True)
class CdmBusinessEvent:
    """A CDM business event (function input or output).

    Attributes:
        intent: event intent (``Clearing``, ``Novation``...), when given.
        event_qualifier: qualification of the resulting event, when given (outputs).
        event_date: event date.
        effective_date: effective date, when given.
        instructions: the instructions.
        after: the resulting trade states (outputs only).
    """

    intent: str | None
    event_qualifier: str | None
    event_date: dt.date | None
    effective_date: dt.date | None
    instructions: tuple[CdmInstruction, ...]
    after: tuple[CdmTradeState, ...]


# --------------------------------------------------------------------------- public parsers


def load_json(source: str | bytes) -> dict[str, Any]:
    """Parse JSON text with every non-integer number read as an exact ``Decimal``."""
    try:
        document = json.loads(source, parse_float=Decimal)
    except ValueError as exc:
        raise InputError(f"not JSON: {exc}") from exc
    if not isinstance(document, dict):
        raise InputError("a CDM document is a JSON object")
    return document


def _document_trade(
    document: Mapping[str, Any] | str | bytes, refusal: str
) -> tuple[Mapping[str, Any], Mapping[str, Any]]:
    """The document as a mapping, and the trade in it (the document itself when it is a bare trade)."""
    data = load_json(document) if isinstance(document, str | bytes) else document
    trade = data.get("trade", data)
    if not isinstance(trade, Mapping) or "product" not in trade:
        raise InputError(refusal)
    return data, trade


def parse_trade_state(
    document: Mapping[str, Any] | str | bytes, *, business_centers: BusinessCenterRefs | None = None
) -> CdmTradeState:
    """Read a CDM ``TradeState`` (or a bare ``Trade``) into a :class:`CdmTradeState`."""
    data, trade = _document_trade(document, "not a CDM TradeState or Trade: no trade.product")
    with _reading("trade state"):
        terms = _TradeReader(trade, business_centers or {}).terms()
        state = data.get("state") or {}
        closed = state.get("closedState") or {}
        transfers = tuple(
            _transfer(item.get("transfer", item), "transferHistory")
            for item in data.get("transferHistory") or ()
        )
    return CdmTradeState(
        terms=terms,
        position_state=state.get("positionState"),
        closed_state=closed.get("state"),
        transfers=transfers,
    )


def parse_swap_terms(
    document: Mapping[str, Any] | str | bytes, *, business_centers: BusinessCenterRefs | None = None
) -> SwapTerms:
    """Read the swap terms of a ``TradeState``, a ``Trade`` or an execution instruction."""
    _, trade = _document_trade(document, "not a CDM TradeState, Trade or execution instruction: no product")
    with _reading("trade"):
        return _TradeReader(trade, business_centers or {}).terms()


def parse_business_event(
    document: Mapping[str, Any] | str | bytes, *, business_centers: BusinessCenterRefs | None = None
) -> CdmBusinessEvent:
    """Read a CDM business event: a function input, a ``BusinessEvent`` or a ``WorkflowStep``."""
    data = load_json(document) if isinstance(document, str | bytes) else document
    event = data.get("businessEvent", data)
    if "instruction" not in event:
        raise InputError("not a CDM business event: no instruction")
    refs = business_centers or {}
    with _reading("business event"):
        instructions = tuple(
            CdmInstruction(
                primitive=_primitive(item.get("primitiveInstruction") or {}, refs),
                before=(
                    parse_trade_state(item["before"], business_centers=refs)
                    if item.get("before")
                    else None
                ),
            )
            for item in event["instruction"]
        )
        after = tuple(
            parse_trade_state(state, business_centers=refs) for state in event.get("after") or ()
        )
    return CdmBusinessEvent(
        intent=event.get("intent"),
        event_qualifier=event.get("eventQualifier"),
        event_date=_date(event["eventDate"], "eventDate") if event.get("eventDate") else None,
        effective_date=(
            _date(event["effectiveDate"], "effectiveDate") if event.get("effectiveDate") else None
        ),
        instructions=instructions,
        after=after,
    )


# --------------------------------------------------------------------------- instructions


def _primitive(data: Mapping[str, Any], refs: BusinessCenterRefs) -> PrimitiveInstruction:
    unknown = set(data) - _PRIMITIVE_KEYS
    if unknown:
        raise InputError(f"unsupported CDM primitive instruction(s): {sorted(unknown)}")
    execution = data.get("execution")
    quantity_change = data.get("quantityChange")
    party_change = data.get("partyChange")
    transfer = data.get("transfer")
    split = data.get("split")
    index_transition = data.get("indexTransition")
    return PrimitiveInstruction(
        execution=_TradeReader(execution, refs).terms() if execution else None,
        quantity_change=_quantity_change(quantity_change) if quantity_change else None,
        party_change=_party_change(party_change) if party_change else None,
        transfers=tuple(
            _transfer(state.get("transfer", state), "transfer")
            for state in (transfer or {}).get("transferState") or ()
        ),
        split=tuple(_primitive(branch, refs) for branch in (split or {}).get("breakdown") or ()),
        index_transition=_index_transition(index_transition) if index_transition else None,
    )


def _quantity_change(data: Mapping[str, Any]) -> QuantityChange:
    amounts = []
    for change in data.get("change") or ():
        quantity = change.get("quantity", change)
        amounts.append(
            QuantityAmount(_decimal(quantity["value"], "quantityChange"), _unit(quantity))
        )
    return QuantityChange(direction=str(data.get("direction")), amounts=tuple(amounts))


def _party_change(data: Mapping[str, Any]) -> PartyChange:
    counterparty = data["counterparty"]
    return PartyChange(
        role=counterparty["role"],
        party=_party(counterparty["partyReference"]),
        trade_ids=_trade_ids(data.get("tradeId") or ()),
    )


def _index_transition(data: Mapping[str, Any]) -> IndexTransitionInstruction:
    price_quantities: Sequence[Any] = data.get("priceQuantity") or []
    if len(price_quantities) != 1:
        raise InputError("an index transition needs exactly one priceQuantity")
    price_quantity = price_quantities[0]
    prices = price_quantity.get("price") or ()
    adjustment = sum((_signed_price(price, "indexTransition") for price in prices), Decimal(0))
    return IndexTransitionInstruction(
        floating_rate=_floating_rate_index(price_quantity.get("observable"), "indexTransition"),
        spread_adjustment=adjustment,
        effective_date=_date(data["effectiveDate"], "indexTransition.effectiveDate"),
    )


def _transfer(data: Mapping[str, Any], where: str) -> Transfer:
    quantity = data["quantity"]
    payer_receiver = data["payerReceiver"]
    return Transfer(
        amount=_decimal(quantity["value"], where),
        currency=_unit(quantity),
        payer=_party_ref(payer_receiver["payerPartyReference"]),
        receiver=_party_ref(payer_receiver["receiverPartyReference"]),
        settlement_date=_date(data["settlementDate"], f"{where}.settlementDate"),
        transfer_type=data.get("transferType"),
    )


# --------------------------------------------------------------------------- trade reader


class _TradeReader:
    """Reads one trade (or execution instruction) with its reference indexes."""

    def __init__(self, trade: Mapping[str, Any], refs: BusinessCenterRefs) -> None:
        self.trade = trade
        self.refs = refs
        self.keys: dict[tuple[str, str], Mapping[str, Any]] = {}
        for node in _walk(trade):
            for kind in ("@key", "@key:scoped", "@key:external"):
                if kind in node:
                    self.keys.setdefault((kind, str(node[kind])), node)
        lots = trade.get("tradeLot")
        if lots is not None:
            if len(lots) != 1:
                raise InputError(f"{len(lots)} trade lots: only single-lot trades are supported")
            self.price_quantities = list(lots[0].get("priceQuantity") or ())
        else:
            self.price_quantities = list(trade.get("priceQuantity") or ())

    def deref(self, node: Mapping[str, Any], where: str) -> Mapping[str, Any]:
        for ref, key in (
            ("@ref:scoped", "@key:scoped"),
            ("@ref", "@key"),
            ("@ref:external", "@key:external"),
        ):
            if ref in node:
                target = self.keys.get((key, str(node[ref])))
                if target is None:
                    raise InputError(f"{where}: reference {node[ref]!r} does not resolve")
                return target
        return node

    def terms(self) -> SwapTerms:
        trade = self.trade
        parties = tuple(_party(p) for p in trade.get("party", trade.get("parties")) or ())
        counterparties = tuple(
            Counterparty(role=c["role"], party=_party_ref(c["partyReference"]))
            for c in trade.get("counterparty") or ()
        )
        roles = {c.role for c in counterparties}
        party_roles = tuple(
            PartyRole(
                party=_party_ref(r["partyReference"]),
                role=r["role"],
                owner=_party_ref(r["ownershipPartyReference"])
                if r.get("ownershipPartyReference")
                else None,
            )
            for r in trade.get("partyRole", trade.get("partyRoles")) or ()
        )
        product = trade["product"]
        economic_terms = product.get("economicTerms") or {}
        payouts = economic_terms.get("payout")
        if not isinstance(payouts, list):
            raise InputError("economicTerms.payout must be a list of InterestRatePayout")
        if len(payouts) != 2:
            raise InputError(
                f"a swap needs two InterestRatePayout legs, found {len(payouts)} payouts"
            )
        legs = tuple(self.leg(payout, i, roles) for i, payout in enumerate(payouts))
        trade_date = trade.get("tradeDate")
        if trade_date is None:
            raise InputError("trade has no tradeDate")
        return SwapTerms(
            trade_ids=_trade_ids(trade.get("tradeIdentifier") or ()),
            trade_date=_date(trade_date, "tradeDate"),
            parties=parties,
            counterparties=counterparties,
            party_roles=party_roles,
            legs=legs,
            product_qualifier=_product_qualifier(product),
        )

    def leg(self, payout: Mapping[str, Any], index: int, roles: set[str]) -> SwapLeg:
        where = f"payout[{index}]"
        if payout.get("@type") != _INTEREST_RATE_PAYOUT:
            raise InputError(
                f"{where}: only InterestRatePayout legs are supported, got {payout.get('@type')!r}"
            )
        _check_keys(payout, _PAYOUT_KEYS, where)
        cashflows = payout.get("cashflowRepresentation")
        if cashflows and cashflows.get("cashflowsMatchParameters") is False:
            raise InputError(
                f"{where}: cash flows that do not match the parameters are not supported"
            )
        payer = payout["payerReceiver"]["payer"]
        receiver = payout["payerReceiver"]["receiver"]
        for role in (payer, receiver):
            if role not in roles:
                raise InputError(
                    f"{where}: payer/receiver role {role!r} is not a counterparty role"
                )

        quantity_ref = (payout.get("priceQuantity") or {}).get("quantitySchedule")
        if quantity_ref is None:
            raise InputError(f"{where}: no priceQuantity.quantitySchedule")
        quantity = self.deref(quantity_ref, f"{where}.quantitySchedule")
        _check_keys(quantity, _QUANTITY_KEYS, f"{where}.quantity")
        notional = _decimal(quantity["value"], f"{where}.quantity")
        steps = tuple(
            NotionalStep(
                _date(step["date"], f"{where}.datedValue"),
                _decimal(step["value"], f"{where}.datedValue"),
            )
            for step in quantity.get("datedValue") or ()
        )
        if list(steps) != sorted(steps, key=lambda s: s.date):
            raise InputError(f"{where}: notional steps are not in date order")
        currency = _unit(quantity)

        spec = payout["rateSpecification"]
        fixed_rate: Decimal | None = None
        floating_rate: FloatingRate | None = None
        spread = Decimal(0)
        if spec.get("@type") == _FIXED_RATE_SPEC:
            _check_keys(spec, _FIXED_SPEC_KEYS, f"{where}.rateSpecification")
            fixed_rate = self.rate_price(spec["rateSchedule"], f"{where}.rateSchedule")
        elif spec.get("@type") == _FLOATING_RATE_SPEC:
            _check_keys(spec, _FLOATING_SPEC_KEYS, f"{where}.rateSpecification")
            floating_rate = self.rate_option(spec["rateOption"], quantity, where)
            if "spreadSchedule" in spec:
                spread = self.rate_price(spec["spreadSchedule"], f"{where}.spreadSchedule")
        else:
            raise InputError(f"{where}: unsupported rate specification {spec.get('@type')!r}")

        calc = payout["calculationPeriodDates"]
        _check_keys(calc, _CALC_DATES_KEYS, f"{where}.calculationPeriodDates")
        calc_adjustments = self.adjustments(calc["calculationPeriodDatesAdjustments"], None, where)
        effective, effective_adj = self.adjustable_date(
            calc["effectiveDate"], calc_adjustments, f"{where}.effectiveDate"
        )
        termination, termination_adj = self.adjustable_date(
            calc["terminationDate"], calc_adjustments, f"{where}.terminationDate"
        )
        first_start: dt.date | None = None
        first_start_adj: DateAdjustments | None = None
        if "firstPeriodStartDate" in calc:
            first_start, first_start_adj = self.adjustable_date(
                calc["firstPeriodStartDate"], calc_adjustments, f"{where}.firstPeriodStartDate"
            )
        frequency = calc["calculationPeriodFrequency"]
        calc_frequency = _tenor(frequency, f"{where}.calculationPeriodFrequency")

        payment = payout["paymentDates"]
        _check_keys(payment, _PAYMENT_DATES_KEYS, f"{where}.paymentDates")
        payment_adjustments = self.adjustments(
            payment["paymentDatesAdjustments"], calc_adjustments, where
        )
        payment_offset = None
        if "paymentDaysOffset" in payment:
            payment_offset = self.offset(
                payment["paymentDaysOffset"], payment_adjustments, f"{where}.paymentDaysOffset"
            )

        reset = None
        if "resetDates" in payout:
            if floating_rate is None:
                raise InputError(f"{where}: a fixed leg cannot have resetDates")
            reset = self.reset(
                payout["resetDates"], calc_frequency, calc_adjustments, f"{where}.resetDates"
            )
        elif floating_rate is not None:
            raise InputError(f"{where}: a floating leg needs resetDates")

        initial_stub = final_stub = None
        stub_period = payout.get("stubPeriod")
        if stub_period:
            initial_stub = _stub(stub_period.get("initialStub"), f"{where}.initialStub")
            final_stub = _stub(stub_period.get("finalStub"), f"{where}.finalStub")

        return SwapLeg(
            payer=payer,
            receiver=receiver,
            currency=currency,
            notional=notional,
            notional_steps=steps,
            fixed_rate=fixed_rate,
            floating_rate=floating_rate,
            spread=spread,
            day_count=_data(payout["dayCountFraction"]),
            effective_date=effective,
            effective_adjustments=effective_adj,
            termination_date=termination,
            termination_adjustments=termination_adj,
            first_period_start_date=first_start,
            first_period_start_adjustments=first_start_adj,
            first_regular_period_start_date=(
                _date(calc["firstRegularPeriodStartDate"], where)
                if "firstRegularPeriodStartDate" in calc
                else None
            ),
            last_regular_period_end_date=(
                _date(calc["lastRegularPeriodEndDate"], where)
                if "lastRegularPeriodEndDate" in calc
                else None
            ),
            calculation_frequency=calc_frequency,
            roll_convention=frequency.get("rollConvention"),
            calculation_adjustments=calc_adjustments,
            payment_frequency=_tenor(payment["paymentFrequency"], f"{where}.paymentFrequency"),
            pay_relative_to=payment.get("payRelativeTo", "CalculationPeriodEndDate"),
            payment_adjustments=payment_adjustments,
            first_payment_date=(
                _date(payment["firstPaymentDate"], where) if "firstPaymentDate" in payment else None
            ),
            payment_days_offset=payment_offset,
            reset=reset,
            initial_stub=initial_stub,
            final_stub=final_stub,
        )

    def rate_price(self, schedule: Mapping[str, Any], where: str) -> Decimal:
        price = self.deref(schedule.get("price", schedule), where)
        _check_keys(price, _RATE_PRICE_KEYS, where)
        if price.get("priceType", "InterestRate") != "InterestRate":
            raise InputError(
                f"{where}: price type {price.get('priceType')!r} is not an interest rate"
            )
        return _signed_price(price, where)

    def rate_option(
        self, option: Mapping[str, Any], quantity: Mapping[str, Any], where: str
    ) -> FloatingRate:
        try:
            observable: Any = self.deref(option, f"{where}.rateOption")
        except InputError:
            # The observable sits in the priceQuantity that also holds the leg's quantity; some
            # documents drop the observable's key while keeping the reference.
            holders = [pq for pq in self.price_quantities if pq.get("quantity") is quantity]
            if len(holders) != 1 or "observable" not in holders[0]:
                raise
            observable = holders[0]["observable"]
        return _floating_rate_index(observable, f"{where}.rateOption")

    def adjustments(
        self, data: Mapping[str, Any], fallback: DateAdjustments | None, where: str
    ) -> DateAdjustments:
        convention = data.get("businessDayConvention")
        if convention is None:
            raise InputError(f"{where}: date adjustments without a businessDayConvention")
        centers_node = data.get("businessCenters")
        if centers_node is None:
            if fallback is not None and convention != "NONE":
                return DateAdjustments(
                    convention, fallback.business_centers, fallback.centers_reference
                )
            return DateAdjustments(convention)
        centers, reference = self.business_centers(centers_node, where)
        return DateAdjustments(convention, centers, reference)

    def business_centers(
        self, node: Mapping[str, Any], where: str
    ) -> tuple[tuple[str, ...], str | None]:
        if "businessCenter" in node:
            return tuple(_data(c) for c in node["businessCenter"]), None
        reference_node = node.get("businessCentersReference")
        if reference_node is None:
            raise InputError(f"{where}: businessCenters names neither centres nor a reference")
        name = str(reference_node.get("@ref:external", reference_node.get("@ref", "")))
        target = self.keys.get(("@key:external", name)) or self.keys.get(("@key", name))
        if target is not None and "businessCenter" in target:
            return tuple(_data(c) for c in target["businessCenter"]), name
        if name in self.refs:
            return tuple(self.refs[name]), name
        return (), name

    def adjustable_date(
        self, node: Mapping[str, Any], fallback: DateAdjustments, where: str
    ) -> tuple[dt.date, DateAdjustments]:
        adjustable = node.get("adjustableDate", node)
        if "unadjustedDate" not in adjustable:
            raise InputError(f"{where}: only adjustable dates with an unadjustedDate are supported")
        adjustments = self.adjustments(
            adjustable.get("dateAdjustments") or {"businessDayConvention": "NONE"}, fallback, where
        )
        return _date(adjustable["unadjustedDate"], where), adjustments

    def offset(
        self, data: Mapping[str, Any], fallback: DateAdjustments | None, where: str
    ) -> Offset:
        _check_keys(data, _OFFSET_KEYS, where)
        centers_node = data.get("businessCenters")
        if centers_node is not None:
            centers, reference = self.business_centers(centers_node, where)
        elif fallback is not None:
            centers, reference = fallback.business_centers, fallback.centers_reference
        else:
            centers, reference = (), None
        adjustments = DateAdjustments(data.get("businessDayConvention", "NONE"), centers, reference)
        return Offset(
            tenor=_tenor(data, where), day_type=data.get("dayType"), adjustments=adjustments
        )

    def reset(
        self,
        data: Mapping[str, Any],
        calc_frequency: Tenor,
        calc_adjustments: DateAdjustments,
        where: str,
    ) -> ResetTerms:
        _check_keys(data, _RESET_DATES_KEYS, where)
        frequency = _tenor(data["resetFrequency"], f"{where}.resetFrequency")
        if frequency != calc_frequency:
            raise InputError(
                f"{where}: reset frequency {frequency} differs from the calculation frequency "
                f"{calc_frequency}; averaging and compounding of several resets are not supported"
            )
        fixing = data.get("fixingDates")
        if fixing is None:
            raise InputError(f"{where}: no fixingDates")
        # No fallback here: an offset that names no centres is resolved from the index later.
        fixing_offset = self.offset(fixing, None, f"{where}.fixingDates")
        return ResetTerms(
            relative_to=data.get("resetRelativeTo", "CalculationPeriodStartDate"),
            frequency=frequency,
            adjustments=self.adjustments(data["resetDatesAdjustments"], calc_adjustments, where),
            fixing_offset=fixing_offset,
        )


# --------------------------------------------------------------------------- small readers


@contextmanager
def _reading(what: str) -> Iterator[None]:
    """Turn a structural fault of the document (missing key, wrong type) into InputError."""
    try:
        yield
    except (KeyError, IndexError, TypeError, AttributeError) as exc:
        raise InputError(f"malformed CDM {what}: {type(exc).__name__} {exc}") from exc


def _walk(node: Any) -> Iterator[Mapping[str, Any]]:
    if isinstance(node, Mapping):
        yield node
        for value in node.values():
            yield from _walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from _walk(value)


def _check_keys(node: Mapping[str, Any], allowed: frozenset[str], where: str) -> None:
    unknown = set(node) - allowed
    if unknown:
        raise InputError(f"{where}: unsupported CDM field(s) {sorted(unknown)}")


def _data(value: Any) -> str:
    if isinstance(value, Mapping):
        value = value.get("@data", value.get("value"))
    if not isinstance(value, str):
        raise InputError(f"expected a text value, got {value!r}")
    return value


def _date(value: Any, where: str) -> dt.date:
    if isinstance(value, Mapping):
        if "adjustedDate" in value:
            return _date(value["adjustedDate"], where)
        if "unadjustedDate" in value:
            return _date(value["unadjustedDate"], where)
        value = value.get("@data", value.get("value"))
    try:
        return dt.date.fromisoformat(str(value))
    except ValueError as exc:
        raise InputError(f"{where}: not a date: {value!r}") from exc


def _decimal(value: Any, where: str) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal | str):
        raise InputError(f"{where}: not a number: {value!r}")
    try:
        result = Decimal(str(value))
    except ArithmeticError as exc:
        raise InputError(f"{where}: not a number: {value!r}") from exc
    if not result.is_finite():
        raise InputError(f"{where}: not a finite number: {value!r}")
    return result


def _signed_price(price: Mapping[str, Any], where: str) -> Decimal:
    value = _decimal(price["value"], where)
    operator = price.get("arithmeticOperator", "Add")
    if operator == "Add":
        return value
    if operator == "Subtract":
        return -value
    raise InputError(f"{where}: unsupported arithmetic operator {operator!r}")


def _unit(quantity: Mapping[str, Any]) -> str:
    currency = (quantity.get("unit") or {}).get("currency")
    if currency is None:
        raise InputError(f"quantity {quantity.get('value')!r} has no currency unit")
    return _data(currency).upper()


def _tenor(node: Mapping[str, Any], where: str) -> Tenor:
    try:
        return Tenor(int(node["periodMultiplier"]), str(node["period"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(f"{where}: not a period: {node!r}") from exc


def _stub(node: Mapping[str, Any] | None, where: str) -> Stub | None:
    if not node:
        return None
    _check_keys(node, _STUB_KEYS, where)
    rate = _decimal(node["stubRate"], where) if "stubRate" in node else None
    floating = tuple(
        FloatingRate(
            _data(item["floatingRateIndex"]),
            _tenor(item["indexTenor"], where) if "indexTenor" in item else None,
        )
        for item in node.get("floatingRate") or ()
    )
    if rate is not None and floating:
        raise InputError(f"{where}: a stub has either a stub rate or floating rates, not both")
    return Stub(rate=rate, floating_rates=floating)


def _floating_rate_index(observable: Any, where: str) -> FloatingRate:
    node = observable
    while isinstance(node, Mapping) and "floatingRateIndex" not in node and "@data" in node:
        node = node["@data"]
    if not isinstance(node, Mapping) or "floatingRateIndex" not in node:
        raise InputError(f"{where}: the observable is not a floating rate index")
    tenor = _tenor(node["indexTenor"], where) if "indexTenor" in node else None
    return FloatingRate(_data(node["floatingRateIndex"]), tenor)


def _party(node: Mapping[str, Any]) -> Party:
    key = node.get("@key:external", node.get("@key"))
    identifiers = tuple(_data(item["identifier"]) for item in node.get("partyId") or ())
    if key is None:
        if not identifiers:
            raise InputError("a party has neither a key nor an identifier")
        key = identifiers[0]
    name = node.get("name")
    return Party(
        key=str(key), name=_data(name) if name is not None else None, identifiers=identifiers
    )


def _party_ref(node: Mapping[str, Any]) -> str:
    for name in ("@ref:external", "@ref", "@key:external", "@key"):
        if name in node:
            return str(node[name])
    return _party(node).key


def _trade_ids(items: Sequence[Mapping[str, Any]]) -> tuple[TradeId, ...]:
    result = []
    for item in items:
        issuer_ref = item.get("issuerReference")
        issuer = item.get("issuer")
        for assigned in item.get("assignedIdentifier") or ():
            identifier = assigned["identifier"]
            version = assigned.get("version")
            result.append(
                TradeId(
                    identifier=_data(identifier),
                    issuer_party=_party_ref(issuer_ref) if issuer_ref else None,
                    issuer=_data(issuer) if issuer else None,
                    scheme=identifier.get("@scheme") if isinstance(identifier, Mapping) else None,
                    id_type=item.get("identifierType"),
                    version=int(version) if version is not None else None,
                )
            )
    return tuple(result)


def _product_qualifier(product: Mapping[str, Any]) -> str | None:
    names = []
    for taxonomy in product.get("taxonomy") or ():
        name = ((taxonomy.get("value") or {}).get("name")) or None
        if name is not None:
            names.append((bool(taxonomy.get("calculated")), _data(name)))
    calculated = [name for is_calculated, name in names if is_calculated]
    if calculated:
        return calculated[0]
    return names[0][1] if names else None
