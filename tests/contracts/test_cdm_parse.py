"""CDM JSON intake: every public sample parses into SwapTerms; unsupported shapes are refused."""

from __future__ import annotations

import copy
import datetime as dt
import xml.etree.ElementTree as ET
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from clearhouse.contracts.cdm import (
    Counterparty,
    DateAdjustments,
    FloatingRate,
    NotionalStep,
    Party,
    PartyRole,
    Tenor,
    TradeId,
    load_json,
    parse_business_event,
    parse_swap_terms,
    parse_trade_state,
)
from clearhouse.core.errors import InputError

DATA = Path(__file__).parent / "data"
FPML_NS = {"f": "http://www.fpml.org/FpML-5/confirmation"}
EX02_FPML = "ird-ex02-stub-amort-swap-fpml-5-13.xml"

TRADE_STATES = {
    "ird-ex01-vanilla-swap-cdm-tradestate.json": "ird-ex01-vanilla-swap-fpml-5-12.xml",
    "ird-ex01-vanilla-swap-versioned-cdm-tradestate.json": "ird-ex01-vanilla-swap-fpml-5-12.xml",
    "ird-ex02-stub-amort-swap-versioned-cdm-tradestate.json": EX02_FPML,
    "USD-Vanilla-swap-cdm-tradestate.json": "USD-Vanilla-swap-fpml-5-10.xml",
}

#: sample -> (intent, qualifier of the output, number of resulting trade states)
EVENTS = {
    "clearing": ("Clearing", "ClearedTrade", 3),
    "compression": ("Compression", "Compression", 4),
    "execution-ir-swap": (None, "Execution", 1),
    "full-novation": ("Novation", "Novation", 2),
    "partial-novation": ("Novation", "PartialNovation", 2),
    "full-termination-vanilla-swap": (None, "Termination", 1),
    "partial-termination-vanilla-swap": (None, "PartialTermination", 1),
    "index-transition-vanilla-swap": ("IndexTransition", "IndexTransition", 1),
}


def _json(name: str) -> dict[str, Any]:
    return load_json((DATA / name).read_text())


def fpml_business_centers(fpml_name: str) -> dict[str, tuple[str, ...]]:
    """The business-centre groups an FpML document defines by id."""
    root = ET.parse(DATA / fpml_name).getroot()
    return {
        node.attrib["id"]: tuple(c.text or "" for c in node.findall("f:businessCenter", FPML_NS))
        for node in root.iter(f"{{{FPML_NS['f']}}}businessCenters")
        if "id" in node.attrib
    }


@pytest.mark.parametrize("name", sorted(TRADE_STATES))
def test_every_trade_state_sample_parses(name: str) -> None:
    centers = fpml_business_centers(TRADE_STATES[name])
    state = parse_trade_state((DATA / name).read_text(), business_centers=centers)
    terms = state.terms
    assert len(terms.legs) == 2
    assert {leg.payer for leg in terms.legs} == {"Party1", "Party2"}
    assert sum(leg.is_fixed for leg in terms.legs) == 1
    assert terms.payer_of(terms.legs[0]) == terms.receiver_of(terms.legs[1])
    for leg in terms.legs:
        for adjustments in (leg.calculation_adjustments, leg.payment_adjustments):
            assert not adjustments.unresolved
            assert adjustments.business_centers == centers["primaryBusinessCenters"]


def test_ird_ex02_terms_in_detail() -> None:
    centers = fpml_business_centers(EX02_FPML)
    assert centers == {"primaryBusinessCenters": ("DEFR",)}
    terms = parse_swap_terms(
        (DATA / "ird-ex02-stub-amort-swap-versioned-cdm-tradestate.json").read_text(),
        business_centers=centers,
    )
    assert terms.trade_ids == (
        TradeId("TW9235", issuer_party="party1", scheme="http://www.partyA.com/swaps/trade-id"),
        TradeId(
            "SW2000",
            issuer_party="party2",
            scheme="http://www.barclays.com/swaps/trade-id",
            version=1,
        ),
    )
    assert terms.trade_date == dt.date(1994, 12, 12)
    assert terms.parties == (
        Party("party1", "Party A", ("PARTYAUS33",)),
        Party("party2", None, ("BARCGB2L",)),
    )
    assert terms.counterparties == tuple(Counterparty(f"Party{i}", f"party{i}") for i in (1, 2))
    assert terms.product_qualifier == "InterestRate_IRSwap_FixedFloat"
    floating, fixed = terms.legs
    steps = tuple(
        NotionalStep(dt.date(1995 + i, 12, 14), Decimal(40_000_000 - 10_000_000 * i))
        for i in range(4)
    )
    for leg in (floating, fixed):
        assert leg.currency == "EUR"
        assert leg.notional == Decimal("50000000")
        assert leg.notional_steps == steps
        assert leg.effective_date == dt.date(1995, 1, 16)
        assert leg.effective_adjustments == DateAdjustments("NONE")
        assert leg.termination_date == dt.date(1999, 12, 14)
        assert leg.termination_adjustments == DateAdjustments(
            "MODFOLLOWING", ("DEFR",), "primaryBusinessCenters"
        )
        assert leg.roll_convention == "14"
    assert (terms.payer_of(floating), terms.receiver_of(floating)) == ("party1", "party2")
    assert floating.floating_rate == FloatingRate("EUR-LIBOR-BBA", Tenor(6, "M"))
    assert floating.spread == 0
    assert floating.day_count == "ACT/360"
    assert floating.calculation_frequency == floating.payment_frequency == Tenor(6, "M")
    assert floating.first_regular_period_start_date == dt.date(1995, 6, 14)
    assert floating.reset is not None
    assert floating.reset.relative_to == "CalculationPeriodStartDate"
    assert floating.reset.fixing_offset.tenor == Tenor(-2, "D")
    assert floating.reset.fixing_offset.day_type == "Business"
    assert floating.initial_stub is not None
    assert floating.initial_stub.floating_rates == (
        FloatingRate("EUR-LIBOR-BBA", Tenor(4, "M")),
        FloatingRate("EUR-LIBOR-BBA", Tenor(5, "M")),
    )
    assert fixed.fixed_rate == Decimal("0.06")
    assert fixed.day_count == "30E/360"
    assert fixed.calculation_frequency == Tenor(1, "Y")
    assert fixed.first_regular_period_start_date == dt.date(1995, 12, 14)
    assert fixed.reset is None


def test_usd_vanilla_party_roles_and_unique_transaction_identifier() -> None:
    terms = parse_swap_terms(_json("USD-Vanilla-swap-cdm-tradestate.json"))
    assert terms.trade_id == "712345678901234567890123456789012"
    assert terms.trade_ids[0].issuer == "1031234567"
    assert terms.trade_ids[0].id_type == "UniqueTransactionIdentifier"
    assert [p.key for p in terms.parties] == ["party1", "party2", "broker1", "clearing-svc"]
    assert terms.party_roles == (
        PartyRole("clearing-svc", "ClearingOrganization", "party1"),
        PartyRole("broker1", "ArrangingBroker", "party1"),
    )
    assert terms.legs[1].fixed_rate == Decimal("0.0253")
    assert terms.legs[0].notional == Decimal("10000000")


def test_unresolved_business_centres_are_kept_by_name() -> None:
    terms = parse_swap_terms(_json("USD-Vanilla-swap-cdm-tradestate.json"))
    adjustments = terms.legs[0].calculation_adjustments
    assert adjustments == DateAdjustments("MODFOLLOWING", (), "primaryBusinessCenters")
    assert adjustments.unresolved


def test_numbers_are_exact_decimals() -> None:
    document = _json("USD-Vanilla-swap-cdm-tradestate.json")
    price = document["trade"]["tradeLot"][0]["priceQuantity"][1]["price"][0]["value"]
    assert isinstance(price, Decimal) and price == Decimal("0.0253")


@pytest.mark.parametrize("stem", sorted(EVENTS))
def test_every_business_event_sample_parses(stem: str) -> None:
    intent, qualifier, after_count = EVENTS[stem]
    event_in = parse_business_event(_json(f"business-event/{stem}-func-input.json"))
    event_out = parse_business_event(_json(f"business-event/{stem}-func-output.json"))
    assert event_in.intent == event_out.intent == intent
    assert event_in.event_qualifier is None
    assert event_out.event_qualifier == qualifier
    assert event_in.after == ()
    assert len(event_out.after) == after_count
    assert event_in.instructions == event_out.instructions
    for state in event_out.after:
        assert len(state.terms.legs) == 2


def test_workflow_step_sample_parses() -> None:
    event = parse_business_event(_json("msg-partial-termination-func-output.json"))
    assert event.event_qualifier == "PartialTermination"
    assert event.event_date == dt.date(2011, 6, 1)
    assert event.effective_date == dt.date(2011, 6, 3)
    (instruction,) = event.instructions
    change = instruction.primitive.quantity_change
    assert change is not None and change.direction == "Replace"
    assert change.amounts[0].value == Decimal("5000000")
    assert instruction.before is not None
    assert instruction.before.terms.legs[0].notional == Decimal("7500000")


def test_clearing_instruction_structure() -> None:
    event = parse_business_event(_json("business-event/clearing-func-input.json"))
    (instruction,) = event.instructions
    branches = instruction.primitive.split
    assert [b.party_change.role for b in branches if b.party_change] == ["Party2", "Party1"]
    ccp = branches[0].party_change.party if branches[0].party_change else None
    assert ccp == Party("clearing-svc", "ClearItAll", ("LEI1DCO",))
    last = branches[2].quantity_change
    assert last is not None and last.direction == "Replace" and last.amounts[0].value == 0


def test_compression_sample_closes_three_trades_and_opens_one() -> None:
    event = parse_business_event(_json("business-event/compression-func-output.json"))
    closed = [s for s in event.after if s.closed_state == "Terminated"]
    opened = [s for s in event.after if s.position_state == "Executed"]
    assert len(closed) == 3 and len(opened) == 1
    assert all(leg.notional == 0 for s in closed for leg in s.terms.legs)
    assert opened[0].terms.legs[0].notional == Decimal("16000")


def test_index_transition_output_with_dropped_observable_key() -> None:
    output = _json("business-event/index-transition-vanilla-swap-func-output.json")
    event = parse_business_event(output)
    floating = event.after[0].terms.legs[0]
    assert floating.floating_rate == FloatingRate("EUR-EURIBOR-Reuters", Tenor(6, "M"))
    assert floating.spread == Decimal("0.004")
    assert floating.first_period_start_date == dt.date(2000, 3, 5)
    assert floating.initial_stub is not None and floating.initial_stub.rate == Decimal("0.05125")
    transition = event.instructions[0].primitive.index_transition
    assert transition is not None and transition.spread_adjustment == Decimal("0.003")


def _payout(document: dict[str, Any], index: int) -> dict[str, Any]:
    return document["trade"]["product"]["economicTerms"]["payout"][index]


def _mutations() -> list[tuple[str, Any]]:
    def compounding(d: dict[str, Any]) -> None:
        _payout(d, 0)["compoundingMethod"] = "Flat"

    def principal_exchange(d: dict[str, Any]) -> None:
        _payout(d, 1)["principalExchanges"] = {"initialExchange": True}

    def third_payout(d: dict[str, Any]) -> None:
        payouts = d["trade"]["product"]["economicTerms"]["payout"]
        payouts.append(copy.deepcopy(payouts[0]))

    def option_payout(d: dict[str, Any]) -> None:
        _payout(d, 0)["@type"] = "cdm.product.template.OptionPayout"

    def rate_schedule(d: dict[str, Any]) -> None:
        price = d["trade"]["tradeLot"][0]["priceQuantity"][1]["price"][0]
        price["datedValue"] = [{"date": "2012-02-08", "value": Decimal("0.03")}]

    def averaging_resets(d: dict[str, Any]) -> None:
        _payout(d, 0)["resetDates"]["resetFrequency"] = {"periodMultiplier": 1, "period": "W"}

    def relative_effective_date(d: dict[str, Any]) -> None:
        _payout(d, 0)["calculationPeriodDates"]["effectiveDate"] = {"relativeDate": {}}

    def dangling_reference(d: dict[str, Any]) -> None:
        _payout(d, 1)["priceQuantity"]["quantitySchedule"] = {"@ref:scoped": "quantity-9"}

    def unknown_role(d: dict[str, Any]) -> None:
        _payout(d, 0)["payerReceiver"]["payer"] = "Party3"

    def two_lots(d: dict[str, Any]) -> None:
        d["trade"]["tradeLot"].append(copy.deepcopy(d["trade"]["tradeLot"][0]))

    def no_payer_receiver(d: dict[str, Any]) -> None:
        del _payout(d, 0)["payerReceiver"]

    def cap(d: dict[str, Any]) -> None:
        _payout(d, 0)["rateSpecification"]["capRateSchedule"] = {}

    return [
        ("compoundingMethod", compounding),
        ("principalExchanges", principal_exchange),
        ("found 3 payouts", third_payout),
        ("OptionPayout", option_payout),
        ("datedValue", rate_schedule),
        ("reset frequency", averaging_resets),
        ("unadjustedDate", relative_effective_date),
        ("quantity-9", dangling_reference),
        ("Party3", unknown_role),
        ("trade lots", two_lots),
        ("capRateSchedule", cap),
        ("malformed CDM trade state: KeyError 'payerReceiver'", no_payer_receiver),
    ]


@pytest.mark.parametrize(("reason", "mutate"), _mutations(), ids=[m[0] for m in _mutations()])
def test_unsupported_shapes_raise_input_error(reason: str, mutate: Any) -> None:
    document = _json("USD-Vanilla-swap-cdm-tradestate.json")
    mutate(document)
    with pytest.raises(InputError, match=reason):
        parse_trade_state(document)


def test_not_cdm_at_all() -> None:
    with pytest.raises(InputError):
        parse_trade_state("[1, 2]")
    with pytest.raises(InputError):
        parse_trade_state({"trade": {"tradeDate": "2020-01-01"}})
    with pytest.raises(InputError):
        parse_business_event({"eventDate": "2020-01-01"})
