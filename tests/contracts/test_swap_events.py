"""Swap lifecycle events: CDM business-event samples, payments, and oracle corrections."""

from __future__ import annotations

import dataclasses
import datetime as dt
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clearhouse.contracts.cdm import (
    CdmBusinessEvent,
    Party,
    SwapTerms,
    TradeId,
    Transfer,
    parse_business_event,
    parse_swap_terms,
)
from clearhouse.contracts.events import (
    Observation,
    Payment,
    SwapState,
    apply_correction,
    clearing,
    execution,
    full_termination,
    index_transition,
    net_by_party,
    novation,
    partial_termination,
    payments_due,
    reset,
    state_from_cdm,
)
from clearhouse.contracts.schedule import periods
from clearhouse.core.errors import InputError

DATA = Path(__file__).parent / "data"
LIBOR = "USD-LIBOR-BBA"


def _event(name: str) -> CdmBusinessEvent:
    return parse_business_event((DATA / name).read_text())


def _pair(stem: str) -> tuple[CdmBusinessEvent, CdmBusinessEvent]:
    prefix = f"business-event/{stem}"
    return _event(f"{prefix}-func-input.json"), _event(f"{prefix}-func-output.json")


def _usd_terms() -> SwapTerms:
    # primaryBusinessCenters of the sample's FpML (USD-Vanilla-swap-fpml-5-10.xml) is USNY.
    return parse_swap_terms(
        (DATA / "USD-Vanilla-swap-cdm-tradestate.json").read_text(),
        business_centers={"primaryBusinessCenters": ("USNY",)},
    )


def _ex02_terms() -> SwapTerms:
    return parse_swap_terms(
        (DATA / "ird-ex02-stub-amort-swap-versioned-cdm-tradestate.json").read_text(),
        business_centers={"primaryBusinessCenters": ("DEFR",)},
    )


# --------------------------------------------------------------------------- CDM samples


def test_execution_sample() -> None:
    event_in, event_out = _pair("execution-ir-swap")
    terms = event_in.instructions[0].primitive.execution
    assert terms is not None and event_in.event_date is not None
    state = execution(terms, event_in.event_date)
    (after,) = event_out.after
    assert state.terms == after.terms
    assert state.position_state == after.position_state == "Executed"
    assert [r.event for r in state.history] == ["Execution"]


def test_partial_termination_sample_reduces_10000_to_7000_with_a_fee() -> None:
    event_in, event_out = _pair("partial-termination-vanilla-swap")
    (instruction,) = event_in.instructions
    assert instruction.before is not None and event_in.event_date is not None
    change = instruction.primitive.quantity_change
    assert change is not None and change.direction == "Decrease"
    (fee,) = instruction.primitive.transfers
    result = partial_termination(
        state_from_cdm(instruction.before),
        decrease=change.amounts[0].value,
        event_date=event_in.event_date,
        fee=fee,
    )
    (after,) = event_out.after
    assert [leg.notional for leg in after.terms.legs] == [Decimal(7000), Decimal(7000)]
    assert result.state.notionals == (Decimal(7000), Decimal(7000))
    assert result.state.terms == after.terms
    assert result.state.transfers == after.transfers
    assert result.state.is_open and after.closed_state is None
    (payment,) = result.payments
    assert (payment.payer, payment.receiver, payment.currency) == ("party1", "party2", "USD")
    assert payment.amount_minor == 200_000 and payment.kind == "PartialTermination"
    assert payment.payment_date == dt.date(2018, 4, 1)


def test_workflow_step_partial_termination_replaces_7_5m_by_5m() -> None:
    event = _event("msg-partial-termination-func-output.json")
    (instruction,) = event.instructions
    assert instruction.before is not None and event.event_date is not None
    change = instruction.primitive.quantity_change
    assert change is not None and change.direction == "Replace"
    current = instruction.before.terms.legs[0].notional
    result = partial_termination(
        state_from_cdm(instruction.before),
        decrease=current - change.amounts[0].value,
        event_date=event.event_date,
        fee=instruction.primitive.transfers[0],
    )
    assert result.state.terms == event.after[0].terms
    assert result.state.transfers == event.after[0].transfers
    assert result.payments[0].amount_minor == 1_234_500


def test_full_termination_sample() -> None:
    event_in, event_out = _pair("full-termination-vanilla-swap")
    (instruction,) = event_in.instructions
    assert instruction.before is not None and event_in.event_date is not None
    result = full_termination(
        state_from_cdm(instruction.before),
        event_date=event_in.event_date,
        fee=instruction.primitive.transfers[0],
    )
    (after,) = event_out.after
    assert result.state.terms == after.terms
    assert (result.state.position_state, result.state.closed_state) == ("Closed", "Terminated")
    assert (after.position_state, after.closed_state) == ("Closed", "Terminated")
    assert result.state.transfers == after.transfers
    assert result.payments[0].kind == "Termination" and result.payments[0].amount_minor == 200_000
    assert payments_due(result.state, dt.date(2019, 12, 12)) == []
    with pytest.raises(InputError, match="closed"):
        full_termination(result.state, event_date=dt.date(2020, 1, 1))


def test_clearing_sample_novates_both_sides_to_the_ccp() -> None:
    event_in, event_out = _pair("clearing")
    (instruction,) = event_in.instructions
    assert instruction.before is not None and event_in.event_date is not None
    to_ccp, from_ccp, _close = instruction.primitive.split
    assert to_ccp.party_change is not None and from_ccp.party_change is not None
    result = clearing(
        state_from_cdm(instruction.before),
        ccp=to_ccp.party_change.party,
        party1_trade_ids=to_ccp.party_change.trade_ids,
        party2_trade_ids=from_ccp.party_change.trade_ids,
        event_date=event_in.event_date,
    )
    beta, gamma, alpha = event_out.after
    assert result.cleared[0].terms == beta.terms
    assert result.cleared[1].terms == gamma.terms
    assert result.original.terms == alpha.terms
    assert (result.original.position_state, result.original.closed_state) == (
        alpha.position_state,
        alpha.closed_state,
    )
    assert result.cleared[0].parties == ("party1", "clearing-svc")
    assert result.cleared[1].parties == ("clearing-svc", "party2")


def test_full_novation_sample() -> None:
    event_in, event_out = _pair("full-novation")
    (instruction,) = event_in.instructions
    assert instruction.before is not None and event_in.event_date is not None
    change = instruction.primitive.split[0].party_change
    assert change is not None
    result = novation(
        state_from_cdm(instruction.before),
        outgoing=instruction.before.terms.party_key(change.role),
        incoming=change.party,
        trade_ids=change.trade_ids,
        event_date=event_in.event_date,
    )
    novated, original = event_out.after
    assert result.novated.terms == novated.terms
    assert result.remaining.terms == original.terms
    assert result.remaining.closed_state == original.closed_state == "Terminated"
    assert result.novated.parties == ("party3", "party2")


def test_partial_novation_sample_structure() -> None:
    # The sample is not quantity-consistent: it novates 5,000 of 10,000 and leaves 8,000.
    # Conservation leaves 5,000; everything but that notional matches the sample.
    event_in, event_out = _pair("partial-novation")
    (instruction,) = event_in.instructions
    assert instruction.before is not None and event_in.event_date is not None
    branch = instruction.primitive.split[0]
    assert branch.party_change is not None and branch.quantity_change is not None
    result = novation(
        state_from_cdm(instruction.before),
        outgoing=instruction.before.terms.party_key(branch.party_change.role),
        incoming=branch.party_change.party,
        trade_ids=branch.party_change.trade_ids,
        event_date=event_in.event_date,
        amount=branch.quantity_change.amounts[0].value,
    )
    novated, original = event_out.after
    assert result.novated.terms == novated.terms
    assert [leg.notional for leg in original.terms.legs] == [Decimal(8000), Decimal(8000)]
    assert result.remaining.notionals == (Decimal(5000), Decimal(5000))
    same_notional = tuple(
        dataclasses.replace(leg, notional=Decimal(8000)) for leg in result.remaining.terms.legs
    )
    assert dataclasses.replace(result.remaining.terms, legs=same_notional) == original.terms
    assert result.remaining.is_open


def test_index_transition_sample() -> None:
    event_in, event_out = _pair("index-transition-vanilla-swap")
    (instruction,) = event_in.instructions
    transition = instruction.primitive.index_transition
    assert instruction.before is not None and transition is not None
    assert event_in.event_date is not None
    state = index_transition(
        state_from_cdm(instruction.before),
        floating_rate=transition.floating_rate,
        spread_adjustment=transition.spread_adjustment,
        event_date=event_in.event_date,
    )
    assert state.terms == event_out.after[0].terms
    assert state.terms.legs[0].spread == Decimal("0.004")


# --------------------------------------------------------------------------- payments


def _fixing(terms: SwapTerms, period_index: int) -> dt.date:
    fixing = periods(terms, 0)[period_index].fixing_date
    assert fixing is not None
    return fixing


def _observation(terms: SwapTerms, period_index: int, rate: str) -> Observation:
    return Observation(LIBOR, _fixing(terms, period_index), Decimal(rate))


def test_payments_are_netted_per_party_pair_currency_and_date() -> None:
    terms = _usd_terms()
    state = execution(terms, terms.trade_date)
    for i, rate in enumerate(("0.0030", "0.0028")):
        state = reset(state, _observation(terms, i, rate), dt.date(2011, 5, 5))
    floating = periods(terms, 0)
    (first,) = payments_due(state, floating[0].payment_date)
    # Only the floating leg pays on 2011-05-09: party1 pays 10,000,000 x 0.30% x 90/360.
    assert (first.payer, first.receiver, first.amount_minor) == ("party1", "party2", 750_000)
    (second,) = payments_due(state, floating[1].payment_date)
    # 2011-08-08: floating 10,000,000 x 0.28% x 91/360 = 7,077.78 against fixed 126,500.00.
    assert len(second.cashflows) == 2
    assert (second.payer, second.receiver) == ("party2", "party1")
    assert second.amount_minor == 12_650_000 - 707_778
    assert net_by_party([first, second]) == {
        ("party1", "USD"): -750_000 + 12_650_000 - 707_778,
        ("party2", "USD"): 750_000 - 12_650_000 + 707_778,
    }


def test_reset_rules() -> None:
    terms = _usd_terms()
    state = execution(terms, terms.trade_date)
    observation = _observation(terms, 0, "0.003")
    once = reset(state, observation, dt.date(2011, 2, 4))
    assert reset(once, observation, dt.date(2011, 2, 4)) == once
    with pytest.raises(InputError, match="correct it"):
        reset(once, dataclasses.replace(observation, rate=Decimal("0.004")), dt.date(2011, 2, 4))
    with pytest.raises(InputError, match="no period fixing"):
        elsewhere = dataclasses.replace(observation, fixing_date=dt.date(2011, 2, 5))
        reset(once, elsewhere, dt.date(2011, 2, 5))
    with pytest.raises(InputError, match="no reset recorded"):
        payments_due(state, periods(terms, 0)[0].payment_date)


def test_clearing_keeps_each_members_cash_flows_and_leaves_the_ccp_flat() -> None:
    terms = _usd_terms()
    state = execution(terms, terms.trade_date)
    for i in range(4):
        state = reset(state, _observation(terms, i, f"0.00{3 + i}"), dt.date(2011, 2, 4))
    ccp = Party("ccp", "Central Counterparty", ("CCPLEI",))
    result = clearing(
        state,
        ccp=ccp,
        party1_trade_ids=(TradeId("CCP-1"),),
        party2_trade_ids=(TradeId("CCP-2"),),
        event_date=dt.date(2011, 2, 15),
    )
    for day in sorted({p.payment_date for p in periods(terms, 0)[:4]}):
        bilateral = net_by_party(payments_due(state, day))
        cleared = net_by_party(
            payments_due(result.cleared[0], day) + payments_due(result.cleared[1], day)
        )
        assert cleared[("ccp", "USD")] == 0
        for party in ("party1", "party2"):
            assert cleared[(party, "USD")] == bilateral[(party, "USD")]
    assert payments_due(result.original, periods(terms, 0)[0].payment_date) == []


def test_partial_novation_and_termination_of_an_amortising_swap() -> None:
    terms = _ex02_terms()
    state = execution(terms, terms.trade_date)
    incoming = Party("party3", "Bank Z", ("LEI3",))
    result = novation(
        state,
        outgoing="party1",
        incoming=incoming,
        trade_ids=(TradeId("NEW-1"),),
        event_date=dt.date(1995, 3, 1),
        amount=Decimal(20_000_000),
    )
    for original, novated, remaining in zip(
        terms.legs, result.novated.terms.legs, result.remaining.terms.legs, strict=True
    ):
        assert novated.notional == Decimal(20_000_000)
        assert [s.value for s in novated.notional_steps] == [
            Decimal(v) for v in (16_000_000, 12_000_000, 8_000_000, 4_000_000)
        ]
        for day in (step.date for step in original.notional_steps):
            split = novated.notional_on(day) + remaining.notional_on(day)
            assert split == original.notional_on(day)
    assert result.novated.terms.counterparties[0].party == "party3"
    day = dt.date(1996, 1, 10)
    reduced = partial_termination(state, decrease=Decimal(5_000_000), event_date=day)
    # 40,000,000 in effect on 1996-01-10 becomes 35,000,000: the schedule is scaled by 7/8.
    assert reduced.state.terms.legs[0].notional_on(day) == Decimal(35_000_000)
    assert reduced.state.terms.legs[0].notional_steps[-1].value == Decimal(8_750_000)
    with pytest.raises(InputError, match="full_termination"):
        partial_termination(state, decrease=Decimal(50_000_000), event_date=dt.date(1995, 3, 1))


# --------------------------------------------------------------------------- corrections


def _paid(state: SwapState, days: list[dt.date]) -> list[Payment]:
    return [payment for day in days for payment in payments_due(state, day)]


RATES = st.decimals(min_value=Decimal("-0.01"), max_value=Decimal("0.12"), places=6)


@settings(max_examples=60, deadline=None)
@given(
    right=RATES,
    wrong=RATES,
    other=RATES,
    wrong_period=st.sampled_from([0, 1]),
    notional_minor=st.integers(min_value=1, max_value=10**11),
    spread=st.decimals(min_value=Decimal("-0.005"), max_value=Decimal("0.02"), places=5),
)
def test_correcting_a_wrong_fixing_after_two_payments(
    right: Decimal,
    wrong: Decimal,
    other: Decimal,
    wrong_period: int,
    notional_minor: int,
    spread: Decimal,
) -> None:
    base = _usd_terms()
    notional = Decimal(notional_minor).scaleb(-2)
    legs = (
        dataclasses.replace(base.legs[0], notional=notional, spread=spread),
        dataclasses.replace(base.legs[1], notional=notional),
    )
    terms = dataclasses.replace(base, legs=legs)
    floating = periods(terms, 0)
    days = [floating[0].payment_date, floating[1].payment_date]

    def fixed_up(rate_for_wrong_period: Decimal) -> SwapState:
        state = execution(terms, terms.trade_date)
        for i in (0, 1):
            rate = rate_for_wrong_period if i == wrong_period else other
            state = reset(state, Observation(LIBOR, _fixing(terms, i), rate), days[0])
        return state

    wrong_state, right_state = fixed_up(wrong), fixed_up(right)
    paid = _paid(wrong_state, days)
    truth = _paid(right_state, days)
    corrected_observation = Observation(LIBOR, _fixing(terms, wrong_period), right)
    late = days[1] + dt.timedelta(days=3)
    correction = apply_correction(wrong_state, paid, corrected_observation, late)

    redone = paid + list(correction.reversals) + list(correction.corrected)
    assert net_by_party(redone) == net_by_party(truth)
    expected_reversals = 0 if wrong == right else 1
    assert len(correction.reversals) == len(correction.corrected) == expected_reversals
    for reversal, replacement in zip(correction.reversals, correction.corrected, strict=True):
        original = next(p for p in paid if p.payment_id == reversal.supersedes)
        assert original.observations[0].rate == wrong
        assert (reversal.payer, reversal.receiver) == (original.receiver, original.payer)
        assert reversal.amount_minor == original.amount_minor
        assert replacement.supersedes == original.payment_id
        assert replacement.payment_date == late
    assert correction.state.resets == right_state.resets
    assert _paid(correction.state, days) == truth


def test_a_correction_nobody_used_is_refused_and_corrections_are_numbered() -> None:
    terms = _usd_terms()
    fixing = _fixing(terms, 0)
    state = reset(
        execution(terms, terms.trade_date),
        Observation(LIBOR, fixing, Decimal("0.003")),
        dt.date(2011, 2, 4),
    )
    paid = payments_due(state, periods(terms, 0)[0].payment_date)
    with pytest.raises(InputError, match="never used"):
        unused = Observation(LIBOR, dt.date(2011, 3, 1), Decimal("0.01"))
        apply_correction(state, paid, unused, dt.date(2011, 5, 10))
    first = apply_correction(
        state, paid, Observation(LIBOR, fixing, Decimal("0.004")), dt.date(2011, 5, 10)
    )
    second = apply_correction(
        first.state,
        list(first.corrected),
        Observation(LIBOR, fixing, Decimal("0.0035")),
        dt.date(2011, 5, 11),
    )
    assert first.reversals[0].payment_id.endswith("/reversal-1")
    assert second.reversals[0].payment_id.endswith("/reversal-2")
    total = paid + [*first.reversals, *first.corrected, *second.reversals, *second.corrected]
    # 10,000,000 x 0.35% x 90/360 = 8,750.00 USD from party1 to party2, whatever came between.
    assert net_by_party(total)[("party2", "USD")] == 875_000


def test_fees_must_be_between_the_parties() -> None:
    terms = _usd_terms()
    state = execution(terms, terms.trade_date)
    stranger = Transfer(Decimal(10), "USD", "party9", "party1", dt.date(2012, 1, 3), "Termination")
    with pytest.raises(InputError, match="party9"):
        full_termination(state, event_date=dt.date(2012, 1, 3), fee=stranger)
