"""Swap schedules against published cash-flow dates, and day counts against ISDA examples."""

from __future__ import annotations

import dataclasses
import datetime as dt
import xml.etree.ElementTree as ET
from decimal import Decimal
from fractions import Fraction
from pathlib import Path

import pytest

from clearhouse.contracts.cdm import (
    DateAdjustments,
    SwapTerms,
    Tenor,
    load_json,
    parse_business_event,
    parse_swap_terms,
)
from clearhouse.contracts.schedule import (
    accrual_minor,
    adjust,
    calendar,
    day_count_fraction,
    floating_amount,
    payment_dates,
    periods,
    to_ql_date,
)
from clearhouse.core.errors import InputError

DATA = Path(__file__).parent / "data"
NS = {"f": "http://www.fpml.org/FpML-5/confirmation"}
EX02_FPML = "ird-ex02-stub-amort-swap-fpml-5-13.xml"


def _primary_centers(fpml_name: str) -> dict[str, tuple[str, ...]]:
    root = ET.parse(DATA / fpml_name).getroot()
    node = root.find(".//f:businessCenters[@id='primaryBusinessCenters']", NS)
    assert node is not None
    codes = tuple(c.text or "" for c in node.findall("f:businessCenter", NS))
    return {"primaryBusinessCenters": codes}


def _terms(cdm_name: str, fpml_name: str) -> SwapTerms:
    centers = _primary_centers(fpml_name)
    return parse_swap_terms((DATA / cdm_name).read_text(), business_centers=centers)


def _ex02() -> SwapTerms:
    return _terms("ird-ex02-stub-amort-swap-versioned-cdm-tradestate.json", EX02_FPML)


def _usd() -> SwapTerms:
    return _terms("USD-Vanilla-swap-cdm-tradestate.json", "USD-Vanilla-swap-fpml-5-10.xml")


def _date(node: ET.Element, path: str) -> dt.date:
    text = node.findtext(path, namespaces=NS)
    assert text is not None, path
    return dt.date.fromisoformat(text)


def _published_cashflows(stream: ET.Element) -> list[dict[str, object]]:
    rows = []
    for payment in stream.findall("f:cashflows/f:paymentCalculationPeriod", NS):
        (period,) = payment.findall("f:calculationPeriod", NS)
        fixing = period.findtext(
            "f:floatingRateDefinition/f:rateObservation/f:adjustedFixingDate", namespaces=NS
        )
        fixed_rate = period.findtext("f:fixedRate", namespaces=NS)
        rows.append(
            {
                "payment_date": _date(payment, "f:adjustedPaymentDate"),
                "adjusted_start": _date(period, "f:adjustedStartDate"),
                "adjusted_end": _date(period, "f:adjustedEndDate"),
                "notional": Decimal(period.findtext("f:notionalAmount", namespaces=NS) or "nan"),
                "fixing_date": dt.date.fromisoformat(fixing) if fixing else None,
                "fixed_rate": Decimal(fixed_rate) if fixed_rate else None,
            }
        )
    return rows


def test_ird_ex02_periods_equal_the_fpml_published_cashflows() -> None:
    terms = _ex02()
    streams = ET.parse(DATA / EX02_FPML).getroot().findall(".//f:swap/f:swapStream", NS)
    assert len(streams) == len(terms.legs) == 2
    for leg_index, stream in enumerate(streams):
        published = _published_cashflows(stream)
        computed = [
            {
                "payment_date": p.payment_date,
                "adjusted_start": p.adjusted_start,
                "adjusted_end": p.adjusted_end,
                "notional": p.notional,
                "fixing_date": p.fixing_date,
                "fixed_rate": p.fixed_rate,
            }
            for p in periods(terms, leg_index)
        ]
        assert computed == published, f"leg {leg_index}"
    assert len(periods(terms, 0)) == 10 and len(periods(terms, 1)) == 5


def test_ird_ex02_stubs_amounts_and_fixing_calendar() -> None:
    terms = _ex02()
    floating, fixed = periods(terms, 0), periods(terms, 1)
    assert floating[0].stub == "initial"
    assert floating[0].index_tenors == (Tenor(4, "M"), Tenor(5, "M"))
    assert all(p.stub is None for p in floating[1:])
    assert floating[1].index_tenors == (Tenor(6, "M"),)
    # 1995-01-16 .. 1995-06-14 is 149 actual days on ACT/360.
    assert floating[0].day_count_fraction == Fraction(149, 360)
    # 30E/360: 1995-01-16 .. 1995-12-14 = 11 x 30 + (14 - 16) = 328 days.
    assert fixed[0].day_count_fraction == Fraction(328, 360)
    # 50,000,000 x 6% x 328/360 = 2,733,333.333... EUR
    assert fixed[0].fixed_amount_minor == 273_333_333
    # 1995-12-14 .. 1996-12-16: 360 + (16 - 14) = 362 days; 40,000,000 x 6% x 362/360.
    assert fixed[1].fixed_amount_minor == 241_333_333
    # A fixed leg's last period with 30E/360 over a full year.
    assert fixed[4].day_count_fraction == 1 and fixed[4].fixed_amount_minor == 60_000_000
    # The CDM sample drops the fixing centre (GBLO); the EUR-LIBOR option fixes on London days.
    assert all(p.fixing_date and p.fixing_date.weekday() < 5 for p in floating)


def test_usd_vanilla_schedule() -> None:
    terms = _usd()
    floating, fixed = periods(terms, 0), periods(terms, 1)
    assert len(floating) == 20 and len(fixed) == 10
    # 2011-05-08 is a Sunday: modified following on New York days gives Monday 2011-05-09.
    assert floating[0].adjusted_end == floating[0].payment_date == dt.date(2011, 5, 9)
    # Two London business days before Tuesday 2011-02-08.
    assert floating[0].fixing_date == dt.date(2011, 2, 4)
    assert floating[0].day_count_fraction == Fraction(90, 360)
    # 10,000,000 x 2.53% x 180/360
    assert fixed[0].fixed_amount_minor == 12_650_000
    # 10,000,000 x (0.30% + 0.05%) x 90/360 = 8,750.00 USD
    assert floating_amount(floating[0], Decimal("0.003"), Decimal("0.0005")) == 875_000
    first_three = [dt.date(2011, 5, 9), dt.date(2011, 8, 8), dt.date(2011, 11, 8)]
    assert payment_dates(terms)[:3] == first_three


def test_index_transition_sample_with_stubs_on_both_ends() -> None:
    # The sample's FpML is not published with it; a EUR swap is assumed to use TARGET days.
    text = (DATA / "business-event/index-transition-vanilla-swap-func-input.json").read_text()
    event = parse_business_event(
        load_json(text), business_centers={"primaryBusinessCenters": ("EUTA",)}
    )
    before = event.instructions[0].before
    assert before is not None
    floating = periods(before.terms, 0)
    first, last = floating[0], floating[-1]
    assert first.unadjusted_start == dt.date(2000, 3, 5)
    assert first.unadjusted_end == dt.date(2000, 10, 5)
    assert first.stub == "initial" and first.fixed_rate == Decimal("0.05125")
    assert first.fixing_date is None and first.floating_index is None
    assert last.unadjusted_start == dt.date(2004, 10, 5)
    assert last.unadjusted_end == dt.date(2005, 1, 5)
    assert last.stub == "final" and last.index_tenors == (Tenor(3, "M"),)
    assert last.floating_index == "EUR-EURIBOR-Telerate"
    assert all(p.stub is None for p in floating[1:-1])


# ISDA, "EMU and Market Conventions: Recent Developments" (1998), section on the Actual/Actual
# day count fraction, worked examples 1-5. ISDA = days in a non-leap year / 365 + days in a leap
# year / 366; AFB = days / 366 when the period contains 29 February, else / 365.
ACT_ACT_EXAMPLES = [
    # regular semi-annual period
    ((2003, 11, 1), (2004, 5, 1), Fraction(61, 365) + Fraction(121, 366), Fraction(182, 366)),
    # short first period
    ((1999, 2, 1), (1999, 7, 1), Fraction(150, 365), Fraction(150, 365)),
    # long first period
    ((2002, 8, 15), (2003, 7, 15), Fraction(334, 365), Fraction(334, 365)),
    # short final period
    ((1999, 7, 30), (2000, 1, 30), Fraction(155, 365) + Fraction(29, 366), Fraction(184, 365)),
    # long final period
    ((2000, 1, 30), (2000, 6, 30), Fraction(152, 366), Fraction(152, 366)),
]


@pytest.mark.parametrize(("start", "end", "isda", "afb"), ACT_ACT_EXAMPLES)
def test_actual_actual_isda_paper_examples(
    start: tuple[int, int, int], end: tuple[int, int, int], isda: Fraction, afb: Fraction
) -> None:
    assert day_count_fraction("ACT/ACT.ISDA", dt.date(*start), dt.date(*end)) == isda
    assert day_count_fraction("ACT/ACT.AFB", dt.date(*start), dt.date(*end)) == afb


# ISDA 2006 Definitions, section 4.16: (d) Actual/360, (e) Actual/365 (Fixed), (f) 30/360
# (D1 = 31 -> 30; D2 = 31 -> 30 when D1 > 29), (g) 30E/360 (any 31 -> 30), (h) 30E/360 (ISDA)
# (month-end February -> 30 except a D2 that is the termination date; 31 -> 30). Fractions
# worked by hand from those formulas: 360(Y2-Y1) + 30(M2-M1) + (D2-D1), over 360.
THIRTY_EXAMPLES = [
    # start, end, 30/360, 30E/360, 30E/360.ISDA (termination 2008-02-29)
    ((2007, 1, 31), (2007, 2, 28), 28, 28, 30),
    ((2007, 2, 28), (2007, 3, 31), 33, 32, 30),
    ((2007, 2, 28), (2007, 8, 31), 183, 182, 180),
    ((2007, 8, 31), (2008, 2, 29), 179, 179, 179),
    ((2008, 2, 29), (2008, 8, 31), 182, 181, 180),
    ((2007, 1, 15), (2007, 1, 30), 15, 15, 15),
    ((2007, 1, 30), (2007, 1, 31), 0, 0, 0),
    ((2007, 1, 29), (2007, 1, 31), 2, 1, 1),
]


@pytest.mark.parametrize(("start", "end", "bond", "euro", "euro_isda"), THIRTY_EXAMPLES)
def test_thirty_360_family_isda_2006(
    start: tuple[int, int, int], end: tuple[int, int, int], bond: int, euro: int, euro_isda: int
) -> None:
    d1, d2 = dt.date(*start), dt.date(*end)
    assert day_count_fraction("30/360", d1, d2) == Fraction(bond, 360)
    assert day_count_fraction("30E/360", d1, d2) == Fraction(euro, 360)
    isda = day_count_fraction("30E/360.ISDA", d1, d2, termination=dt.date(2008, 2, 29))
    assert isda == Fraction(euro_isda, 360)


def test_actual_360_and_365_fixed_isda_2006() -> None:
    # 2007-12-28 .. 2008-02-28 spans 62 actual days; 2008-02-28 .. 2009-02-28 spans 366.
    short = (dt.date(2007, 12, 28), dt.date(2008, 2, 28))
    year = (dt.date(2008, 2, 28), dt.date(2009, 2, 28))
    assert day_count_fraction("ACT/360", *short) == Fraction(62, 360)
    assert day_count_fraction("ACT/365.FIXED", *year) == Fraction(366, 365)
    assert day_count_fraction("ACT/ACT.ISDA", *year) == Fraction(308, 366) + Fraction(58, 365)


def test_unsupported_day_count_is_refused() -> None:
    with pytest.raises(InputError, match="BUS/252"):
        day_count_fraction("BUS/252", dt.date(2020, 1, 1), dt.date(2020, 7, 1))


def test_calendars_join_business_centres() -> None:
    joint = calendar(("GBLO", "USNY"))
    assert not joint.isBusinessDay(to_ql_date(dt.date(2024, 8, 26)))  # UK summer bank holiday
    assert not joint.isBusinessDay(to_ql_date(dt.date(2024, 7, 4)))  # US Independence Day
    assert calendar(("USNY",)).isBusinessDay(to_ql_date(dt.date(2024, 8, 26)))
    assert not calendar(("EUTA",)).isBusinessDay(to_ql_date(dt.date(2024, 5, 1)))  # TARGET holiday
    with pytest.raises(InputError, match="XXXX"):
        calendar(("XXXX",))


def test_business_day_conventions() -> None:
    london = ("GBLO",)
    sunday = dt.date(2011, 7, 31)  # the last day of the month
    assert adjust(sunday, DateAdjustments("FOLLOWING", london), "t") == dt.date(2011, 8, 1)
    assert adjust(sunday, DateAdjustments("MODFOLLOWING", london), "t") == dt.date(2011, 7, 29)
    assert adjust(sunday, DateAdjustments("PRECEDING", london), "t") == dt.date(2011, 7, 29)
    assert adjust(sunday, DateAdjustments("NONE"), "t") == sunday
    with pytest.raises(InputError, match="primaryBusinessCenters"):
        adjust(sunday, DateAdjustments("FOLLOWING", (), "primaryBusinessCenters"), "t")


def test_amounts_round_half_away_from_zero_to_the_minor_unit() -> None:
    # 1,000 x 0.005% x 1/10 = 0.005 EUR: exactly half a cent.
    assert accrual_minor(Decimal(1000), Decimal("0.00005"), Fraction(1, 10), "EUR") == 1
    assert accrual_minor(Decimal(1000), Decimal("-0.00005"), Fraction(1, 10), "EUR") == -1
    assert accrual_minor(Decimal(1000), Decimal("0.000049999"), Fraction(1, 10), "EUR") == 0
    # JPY has no minor unit: 1,000,000 x 1% x 1/360 = 27.78 yen.
    assert accrual_minor(Decimal(1_000_000), Decimal("0.01"), Fraction(1, 360), "JPY") == 28


def test_unresolved_centres_and_irregular_roll_are_refused() -> None:
    unresolved = parse_swap_terms((DATA / "USD-Vanilla-swap-cdm-tradestate.json").read_text())
    with pytest.raises(InputError, match="primaryBusinessCenters"):
        periods(unresolved, 0)
    # The clearing sample starts on 2018-04-03 but rolls on the 8th with no stub dates.
    event = parse_business_event(
        (DATA / "business-event/clearing-func-input.json").read_text(),
        business_centers={"primaryBusinessCenters": ("USNY",)},
    )
    before = event.instructions[0].before
    assert before is not None
    with pytest.raises(InputError, match="roll convention 8"):
        periods(before.terms, 0)


def test_payment_frequency_a_multiple_of_the_calculation_frequency() -> None:
    terms = _usd()
    floating = terms.legs[0]
    semiannual = dataclasses.replace(floating, payment_frequency=Tenor(6, "M"))
    grouped = dataclasses.replace(terms, legs=(semiannual, terms.legs[1]))
    quarterly, paid_semiannually = periods(terms, 0), periods(grouped, 0)
    assert [p.payment_date for p in paid_semiannually[:4]] == [
        quarterly[1].payment_date,
        quarterly[1].payment_date,
        quarterly[3].payment_date,
        quarterly[3].payment_date,
    ]
    odd = dataclasses.replace(floating, payment_frequency=Tenor(5, "M"))
    with pytest.raises(InputError, match="whole multiple"):
        periods(dataclasses.replace(terms, legs=(odd, terms.legs[1])), 0)
