"""One trade flow settled under several regimes, and what each regime costs and buys.

Regimes:

* **T+N** (N = 2, 1, 0): the CCP novates and nets each trade day's trades per (member, security)
  and settles them as one net DvP batch (BIS model 3) at the end of the settlement date, N
  business days after the trade date;
* **intraday netting**: the same, in a batch at the end of every K-minute window of the trade day;
* **atomic**: gross DvP at execution (BIS model 1), pre-funded. In time order, a trade executes
  only if the seller holds the securities (or can borrow the shortfall from the lending pool)
  and the buyer holds the cash at that moment; otherwise it does not execute at all.

Netted regimes reuse ``clearing.netting.net_trades`` for the net obligations and
``settlement.dvp.settle_batch`` for each batch; fails stay open and roll into the next batch
(continuous net settlement, a retry at least at every business day's end). In every regime a
member short of securities for a delivery borrows the shortfall, as far as the lending pool of
that security allows (a share of its opening holdings, lent from outside the members), and
returns the loan as soon as it holds the securities again.

Figures per regime (see docs/COMPARE.md): gross and net obligations and the netting reduction;
the cash and securities each member must have in place so that every obligation settles when
due (pre-funding); securities borrowed and for how long; the CCP's replacement-cost exposure and
an initial-margin proxy over the cycle, marked on a seeded price path; settled and failed
instructions; trades that could not execute. Cash, obligations and balances are exact int64
minor units; marks at simulated prices are float estimates rounded to minor units.
Imports clearhouse.core, clearhouse.clearing, clearhouse.settlement and clearhouse.cycle.scenario
only (never an interface).
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import polars as pl

from clearhouse.clearing.batch import TRADE_COLUMNS, normalise_trades
from clearhouse.clearing.idindex import IdIndex
from clearhouse.clearing.intake import PRICE_DECIMALS, IntakeContext, validate_trades
from clearhouse.clearing.netting import net_trades
from clearhouse.core.calendar import BusinessCalendar, day_number, from_day_number
from clearhouse.core.errors import InputError, invariant
from clearhouse.core.exact import exact_bincount
from clearhouse.core.money import format_minor, minor_digits, round_half_up_div, to_minor
from clearhouse.core.results import TradeResult
from clearhouse.cycle.scenario import Scenario
from clearhouse.settlement.dvp import REASONS, settle_batch

DAY = 86_400
SESSION_OPEN = 10 * 3600
SESSION_CLOSE = 16 * 3600
CUTOFF = 17 * 3600  # end-of-day net batch; trades must be stamped before it
SAMPLE_SECONDS = 1800  # exposure is marked every half hour of every business day
DAILY_VOL = 0.02  # daily volatility of the simulated price path
MARGIN_RATE = 2.33 * DAILY_VOL  # initial margin proxy: one-day 99% move of the position's value
LENDABLE_SHARE = 0.2  # share of each security's opening holdings available to borrow
BATCH_MINUTES = 60
LARGEST = 5

Progress = Callable[[str, int, int], None]
Kind = Literal["daily", "intraday", "atomic"]


@dataclass(frozen=True, slots=True)
class Regime:
    """A settlement regime.

    Attributes:
        name: label, e.g. ``T+2``, ``Intraday 60 min``, ``Atomic``.
        kind: ``daily`` (one net batch per settlement date), ``intraday`` (a net batch every
            ``batch_minutes`` of the trade day) or ``atomic`` (gross DvP at execution, pre-funded).
        cycle_days: N of T+N for ``daily``.
        batch_minutes: K for ``intraday``.
    """

    name: str
    kind: Kind
    cycle_days: int = 0
    batch_minutes: int = 0

    @property
    def description(self) -> str:
        if self.kind == "daily":
            return (f"net DvP batch against the CCP (BIS model 3) at the end of the settlement "
                    f"date, {self.cycle_days} business day(s) after the trade date")
        if self.kind == "intraday":
            return (f"net DvP batch against the CCP at the end of every {self.batch_minutes}-minute "
                    f"window of the trade day")
        return "gross DvP trade by trade at execution (BIS model 1), pre-funded"


def standard_regimes(batch_minutes: int = BATCH_MINUTES) -> tuple[Regime, ...]:
    """T+2, T+1, T+0, intraday netting every ``batch_minutes`` and atomic settlement."""
    if not 1 <= batch_minutes <= CUTOFF // 60:
        raise InputError(f"batch minutes must be between 1 and {CUTOFF // 60}, not {batch_minutes}")
    return (
        Regime("T+2", "daily", cycle_days=2),
        Regime("T+1", "daily", cycle_days=1),
        Regime("T+0", "daily", cycle_days=0),
        Regime(f"Intraday {batch_minutes} min", "intraday", batch_minutes=batch_minutes),
        Regime("Atomic", "atomic"),
    )


@dataclass(frozen=True, slots=True)
class TradeFlow:
    """The accepted trades of one currency, in execution order, with what members start with.

    Attributes:
        members: member ids (index = position).
        securities: security ids of the currency (index = position).
        currency: the one currency compared.
        buyer, seller, security, quantity, value: int64 per trade; value in minor units.
        time: execution time per trade, seconds since 1970-01-01 (ascending).
        holdings: opening securities (members x securities).
        cash: opening cash per member, minor units.
        ccp_cash: the CCP's own liquid funds, minor units.
        ref_price_e6: reference price per security (volume-weighted average trade price) in
            millionths of a currency unit per unit; values securities and starts the price path.
        calendar: business days.
        rejected: rows the ledger would reject (left out).
        other_currency: accepted trades in securities of other currencies (left out).
        generated_times: trades whose time of day was generated.
    """

    members: tuple[str, ...]
    securities: tuple[str, ...]
    currency: str
    buyer: np.ndarray
    seller: np.ndarray
    security: np.ndarray
    quantity: np.ndarray
    value: np.ndarray
    time: np.ndarray
    holdings: np.ndarray
    cash: np.ndarray
    ccp_cash: int
    ref_price_e6: np.ndarray
    calendar: BusinessCalendar
    rejected: int = 0
    other_currency: int = 0
    generated_times: int = 0

    @property
    def divisor(self) -> int:
        """Price millionths per minor unit of the currency."""
        return 10 ** (PRICE_DECIMALS - minor_digits(self.currency))

    def worth(self, quantity: np.ndarray, security: np.ndarray) -> np.ndarray:
        """Value of non-negative quantities at the reference price, minor units rounded half up."""
        q = np.asarray(quantity, dtype=np.int64)
        ref = self.ref_price_e6[np.asarray(security, dtype=np.int64)]
        if q.size == 0:
            return np.zeros(0, dtype=np.int64)
        invariant(float(q.max()) * float(ref.max()) < 9.0e18, "securities value exceeds int64")
        return (q * ref + self.divisor // 2) // self.divisor


@dataclass(frozen=True, slots=True)
class PricePath:
    """Simulated market prices at the exposure sampling times.

    Attributes:
        times: sample times, seconds since 1970-01-01, ascending.
        prices: float64 (securities x samples), minor units per unit.
        end: end of the horizon; the last sample stands until then.
    """

    times: np.ndarray
    prices: np.ndarray
    end: int

    def weights(self) -> np.ndarray:
        """Seconds each sample stands for (until the next sample, the last until ``end``)."""
        return np.diff(np.r_[self.times, self.end]).astype(np.int64)


@dataclass(frozen=True, slots=True)
class Netting:
    """What netting did to the obligations.

    Attributes:
        gross_obligations: novated obligations, two per trade (buyer side and seller side).
        gross_value: their cash values summed (twice the traded value), minor units.
        net_obligations: net positions per (member, security, batch); gross ones under atomic.
        net_value: sum of the absolute net cash of the net obligations.
        net_payments: one payment per (member, batch) with a non-zero net across its securities;
            one per trade side under atomic settlement.
        net_payment_value: sum of their absolute amounts (the cash that actually moves).
        batches: settlement events with anything to settle (batches, or executed trades).
    """

    gross_obligations: int
    gross_value: int
    net_obligations: int
    net_value: int
    net_payments: int
    net_payment_value: int
    batches: int

    @property
    def reduction_pct(self) -> float:
        return 100.0 * (1 - self.net_value / self.gross_value) if self.gross_value else 0.0

    @property
    def payment_reduction_pct(self) -> float:
        """Reduction of the cash to move: 1 - net payment value / gross value."""
        return 100.0 * (1 - self.net_payment_value / self.gross_value) if self.gross_value else 0.0

    @property
    def count_reduction_pct(self) -> float:
        if not self.gross_obligations:
            return 0.0
        return 100.0 * (1 - self.net_obligations / self.gross_obligations)


@dataclass(frozen=True, slots=True)
class Prefunding:
    """Liquidity each member must have in place for every obligation to settle when due.

    Attributes:
        cash: per member, minor units: the largest running net payment over the settlement
            events (opening cash that keeps its balance from going below zero).
        securities: per member, minor units at reference prices: per security the largest
            running net delivery, valued and summed.
    """

    cash: np.ndarray
    securities: np.ndarray

    @property
    def cash_total(self) -> int:
        return int(self.cash.sum())

    @property
    def securities_total(self) -> int:
        return int(self.securities.sum())

    @property
    def total(self) -> int:
        return self.cash_total + self.securities_total


@dataclass(frozen=True, slots=True)
class Borrowing:
    """Securities borrowed from the lending pool to make deliveries, and for how long.

    Attributes:
        loans: borrow events (a member borrowing one security at one settlement event).
        borrowers: distinct (member, security) pairs that borrowed.
        borrowed_value: value of everything borrowed, minor units at reference prices.
        peak_value: largest value on loan at once.
        value_seconds: value on loan integrated over time (minor units x seconds).
        at_end_value: value still on loan at the regime's last settlement (loans are counted up
            to it, so regimes of different cycle lengths are measured alike).
        unmet_value: shortfall the pool could not lend, counted once per position when it first
            falls due (deliveries that fail) or per trade that could not execute for want of
            securities.
    """

    loans: int
    borrowers: int
    borrowed_value: int
    peak_value: int
    value_seconds: int
    at_end_value: int
    unmet_value: int

    @property
    def average_days(self) -> float:
        """Average time on loan, value-weighted (value on loan over time / value borrowed)."""
        return self.value_seconds / self.borrowed_value / DAY if self.borrowed_value else 0.0


@dataclass(frozen=True, slots=True)
class Exposure:
    """The CCP's exposure to members on unsettled trades, at each sample of the price path.

    Attributes:
        replacement: per sample, minor units: sum over members of max(0, -mark-to-market of the
            member's unsettled trades), what the CCP would lose replacing a defaulter's trades.
        margin: per sample, the initial-margin proxy summed over members (``MARGIN_RATE`` times
            the marked value of each member's unsettled securities, long and short alike).
        member_peak: per member, its largest replacement cost.
        member_peak_at: per member, the sample time of that peak (seconds).
        weights: seconds each sample stands for.
    """

    replacement: np.ndarray
    margin: np.ndarray
    member_peak: np.ndarray
    member_peak_at: np.ndarray
    weights: np.ndarray

    @property
    def value_seconds(self) -> int:
        """Replacement cost summed over members and integrated over time (minor units x s)."""
        return sum(int(a) * int(w) for a, w in zip(self.replacement, self.weights, strict=True))

    @property
    def peak(self) -> int:
        return int(self.replacement.max(initial=0))

    @property
    def margin_peak(self) -> int:
        return int(self.margin.max(initial=0))

    @property
    def margin_average(self) -> int:
        """Time-weighted average of the margin proxy over the horizon, minor units."""
        span = int(self.weights.sum())
        total = sum(int(a) * int(w) for a, w in zip(self.margin, self.weights, strict=True))
        return round_half_up_div(total, span) if span else 0


@dataclass(frozen=True, slots=True)
class Settlement:
    """Settled and failed instructions.

    Attributes:
        due: obligations that fell due (net positions; executed trade sides under atomic).
        instructions: instructions presented to batches, a retried fail once per batch.
        settled: of those, settled; ``settled_value`` the sum of their absolute cash.
        fails: positions that failed when they first fell due (a fail is counted once, however
            often it is retried); ``failed_value`` the absolute cash of each at that first fail.
        by_reason: those first fails per fail reason.
        open_at_end, open_at_end_value: fails still open after the last batch of the horizon.
    """

    due: int
    instructions: int
    settled: int
    settled_value: int
    fails: int
    failed_value: int
    by_reason: dict[str, int]
    open_at_end: int
    open_at_end_value: int

    @property
    def fail_rate_pct(self) -> float:
        """Share of the obligations due that failed on their due date."""
        return 100.0 * self.fails / self.due if self.due else 0.0


@dataclass(frozen=True, slots=True)
class Execution:
    """Trades that executed; under pre-funding some cannot.

    Attributes:
        trades: trades in the flow.
        executed: trades that executed.
        no_securities: not executed: the seller neither held nor could borrow the securities.
        no_cash: not executed: the buyer lacked the cash.
        not_executed_value: traded value of the trades that did not execute.
    """

    trades: int
    executed: int
    no_securities: int
    no_cash: int
    not_executed_value: int

    @property
    def not_executed(self) -> int:
        return self.trades - self.executed


@dataclass(frozen=True, slots=True)
class RegimeResult:
    """Every figure of one regime. Attributes: regime and one record per figure group."""

    regime: Regime
    netting: Netting
    prefunding: Prefunding
    borrowing: Borrowing
    exposure: Exposure
    settlement: Settlement
    execution: Execution


@dataclass(frozen=True, slots=True)
class Comparison:
    """The same trade flow under every regime.

    Attributes:
        flow: the trades and opening balances.
        path: the price path exposures were marked on.
        results: one per regime, in the order asked.
        seed: seed of the generated times and the price path.
        lendable_share: share of opening holdings in the lending pool.
        first_day, last_day: day numbers of the first trade date and the last business day of
            the horizon (the last settlement date of the longest cycle).
    """

    flow: TradeFlow
    path: PricePath
    results: tuple[RegimeResult, ...]
    seed: int
    lendable_share: float
    first_day: int
    last_day: int


# ----------------------------------------------------------------------------- trade flow


_TIME_RE = r"^(?:(\d{4}-\d{2}-\d{2})[T ])?(\d{1,2}):(\d{2})(?::(\d{2})(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?$"


def read_timestamps(directory: Path) -> pl.Series | None:
    """The optional ``timestamp`` column of a scenario's trade file, as text; None if absent."""
    path = directory / "trades.csv"
    if not path.exists() and (directory / "trades.parquet").exists():
        path = directory / "trades.parquet"
    try:
        if path.suffix == ".parquet":
            if "timestamp" not in pl.read_parquet_schema(path):
                return None
            column = pl.read_parquet(path, columns=["timestamp"])["timestamp"]
        else:
            if "timestamp" not in pl.read_csv(path, n_rows=0, infer_schema=False).columns:
                return None
            column = pl.read_csv(path, columns=["timestamp"], infer_schema=False)["timestamp"]
    except (OSError, pl.exceptions.PolarsError) as exc:
        raise InputError(f"cannot read timestamps from {path.name}: {exc}") from exc
    return column.cast(pl.String).fill_null("")


def generate_times(n: int, seed: int) -> np.ndarray:
    """Seeded times of day (seconds) for ``n`` trades, U-shaped over the 10:00-16:00 session."""
    rng = np.random.default_rng([seed, 0x74696D65])
    span = SESSION_CLOSE - SESSION_OPEN
    return SESSION_OPEN + np.minimum(np.floor(rng.beta(0.6, 0.6, n) * span), span - 1).astype(np.int64)


def parse_times(text: pl.Series, trade_dates: pl.Series, trade_ids: pl.Series) -> np.ndarray:
    """Seconds of the day per row from ``HH:MM[:SS]`` or an ISO datetime on the trade date; -1 if blank.

    The time is taken as written (local exchange time; an offset is not applied). A time at or
    after the 17:00 end-of-day cut-off, or a datetime on another date, is an input error.
    """
    frame = pl.DataFrame({"t": text.str.strip_chars(), "d": trade_dates.str.strip_chars(), "id": trade_ids})
    parts = frame.with_columns(
        date=pl.col("t").str.extract(_TIME_RE, 1),
        h=pl.col("t").str.extract(_TIME_RE, 2).cast(pl.Int64),
        m=pl.col("t").str.extract(_TIME_RE, 3).cast(pl.Int64),
        s=pl.col("t").str.extract(_TIME_RE, 4).cast(pl.Int64).fill_null(0),
    ).with_columns(sec=pl.col("h") * 3600 + pl.col("m") * 60 + pl.col("s"))
    blank = parts["t"] == ""
    bad = ~blank & (
        parts["h"].is_null() | (parts["h"] > 23) | (parts["m"] > 59) | (parts["s"] > 59)
    ).fill_null(True)
    if bad.any():
        row = parts.filter(bad).row(0, named=True)
        raise InputError(f"trade {row['id']}: cannot read timestamp {row['t']!r} (HH:MM[:SS] or ISO datetime)")
    other_day = ~blank & parts["date"].is_not_null() & (parts["date"] != parts["d"])
    if other_day.any():
        row = parts.filter(other_day).row(0, named=True)
        raise InputError(f"trade {row['id']}: timestamp {row['t']} is not on its trade date {row['d']}")
    late = ~blank & (parts["sec"] >= CUTOFF)
    if late.any():
        row = parts.filter(late).row(0, named=True)
        raise InputError(f"trade {row['id']}: timestamp {row['t']} is at or after the 17:00 "
                         "end-of-day cut-off")
    return np.where(blank.to_numpy(), -1, parts["sec"].fill_null(-1).to_numpy()).astype(np.int64)


def _ids(frame: pl.DataFrame, column: str) -> list[str]:
    return [str(x).strip() for x in frame[column].to_list()]


def _accepted_rows(trades: pl.DataFrame, ctx_of: Callable[[int], IntakeContext]) -> np.ndarray:
    """Row indices the ledger would accept, validating each trade date's trades on that day.

    ``trades`` holds the batch columns as text; every trade is checked as if the exchange had
    reported it on its trade date.
    """
    frame = trades.with_columns(
        settlement_date=pl.col("trade_date"), _row=pl.int_range(pl.len(), dtype=pl.Int64),
        _day=pl.col("trade_date").str.strip_chars().str.strptime(pl.Date, "%Y-%m-%d", strict=False)
        .cast(pl.Int64),
    )
    known = frame["_day"].drop_nulls()
    if known.is_empty():
        raise InputError("no trade has a readable trade date (YYYY-MM-DD)")
    first = int(known.to_numpy().min())
    frame = frame.with_columns(pl.col("_day").fill_null(first))
    index = IdIndex()
    accepted: list[np.ndarray] = []
    for (day,), part in sorted(frame.partition_by("_day", as_dict=True, maintain_order=True).items()):
        result = validate_trades(part.select(TRADE_COLUMNS), ctx_of(int(day)), index)
        index.insert(result.ids, result.id_hashes, result.body_hashes)
        accepted.append(part["_row"].to_numpy()[result.codes == TradeResult.ok])
    return np.sort(np.concatenate(accepted))


def prepare_flow(
    scenario: Scenario,
    *,
    timestamps: pl.Series | None = None,
    currency: str | None = None,
    seed: int = 7,
) -> TradeFlow:
    """The trades the ledger would accept, in one currency, stamped and put in execution order."""
    members = _ids(scenario.participants, "participant_id")
    member_index = {m: i for i, m in enumerate(members)}
    sec_ids = _ids(scenario.securities, "security_id")
    sec_ccy = [str(c).strip() for c in scenario.securities["currency"].to_list()]
    try:
        lots = np.array([int(x) for x in scenario.securities["lot_size"].to_list()] or [1], np.int64)
    except (TypeError, ValueError) as exc:
        raise InputError(f"securities.csv: lot_size is not an integer: {exc}") from exc
    digits = np.array([minor_digits(c) for c in sec_ccy] or [2], dtype=np.int64)
    calendar = BusinessCalendar.of(scenario.holidays)

    def ctx_of(day: int) -> IntakeContext:
        return IntakeContext(
            participants=member_index, is_member=np.ones(max(len(members), 1), dtype=bool),
            securities={s: j for j, s in enumerate(sec_ids)}, lot_size=lots,
            value_divisor=10 ** (PRICE_DECIMALS - digits), submitter=-1,
            submitter_is_venue=True, business_day=day, calendar=calendar,
        )

    everything = normalise_trades(scenario.trades)  # the batch columns as plain text
    rows = _accepted_rows(everything, ctx_of)
    trades = everything[rows]
    n_rejected = everything.height - len(rows)
    trade_ccy = trades["security_id"].str.strip_chars().replace_strict(
        dict(zip(sec_ids, sec_ccy, strict=True)), default="", return_dtype=pl.String)
    currencies = sorted(set(trade_ccy.to_list()))
    if currency is None:
        if len(currencies) > 1:
            raise InputError(f"the trades are in {', '.join(currencies)}; choose one with --currency")
        currency = currencies[0] if currencies else (sec_ccy[0] if sec_ccy else "AUD")
    keep = (trade_ccy == currency).to_numpy()
    trades = trades.filter(pl.Series(keep))
    rows = rows[keep]
    securities = [s for s, c in zip(sec_ids, sec_ccy, strict=True) if c == currency]
    s_index = {s: j for j, s in enumerate(securities)}
    m_count, s_count = len(members), len(securities)

    price = trades["price"].str.strip_chars()
    frac = price.str.extract(r"\.(\d+)$", 1).fill_null("").str.strip_chars_end("0")
    price_e6 = (price.str.extract(r"^(\d+)", 1).cast(pl.Int64) * 10**PRICE_DECIMALS
                + frac.str.pad_end(PRICE_DECIMALS, "0").str.slice(0, PRICE_DECIMALS).cast(pl.Int64)
                ).to_numpy()
    quantity = trades["quantity"].str.strip_chars().cast(pl.Int64).to_numpy()
    divisor = 10 ** (PRICE_DECIMALS - minor_digits(currency))
    value = (quantity * price_e6 + divisor // 2) // divisor
    security = trades["security_id"].str.strip_chars().replace_strict(s_index, return_dtype=pl.Int64).to_numpy()
    buyer = trades["buyer"].str.strip_chars().replace_strict(member_index, return_dtype=pl.Int64).to_numpy()
    seller = trades["seller"].str.strip_chars().replace_strict(member_index, return_dtype=pl.Int64).to_numpy()
    day = trades["trade_date"].str.strip_chars().str.strptime(pl.Date, "%Y-%m-%d").cast(pl.Int64).to_numpy()

    seconds = np.full(len(rows), -1, dtype=np.int64)
    if timestamps is not None:
        if len(timestamps) != everything.height:
            raise InputError("the timestamp column does not have one value per trade")
        stamps = timestamps[rows]
        seconds = parse_times(stamps, trades["trade_date"], trades["trade_id"])
    blank = seconds < 0
    seconds[blank] = generate_times(everything.height, seed)[rows][blank]
    time = day.astype(np.int64) * DAY + seconds
    order = np.argsort(time, kind="stable")

    held = scenario.holdings.select(
        pid=pl.col("participant_id").cast(pl.String).str.strip_chars(),
        sid=pl.col("security_id").cast(pl.String).str.strip_chars(),
        text=pl.col("quantity").cast(pl.String),
        qty=pl.col("quantity").cast(pl.String).str.strip_chars().cast(pl.Int64, strict=False),
    )
    unknown = held.filter(~pl.col("pid").is_in(members) | ~pl.col("sid").is_in(sec_ids))
    if unknown.height:
        raise InputError(f"holdings.csv: unknown participant or security {unknown.row(0)[:2]!r}")
    if held["qty"].null_count():
        raise InputError(f"holdings.csv: quantity {held.filter(pl.col('qty').is_null())['text'][0]!r} "
                         "is not an integer")
    held = held.filter(pl.col("sid").is_in(securities))
    holdings = np.zeros((m_count, s_count), dtype=np.int64)
    np.add.at(holdings, (held["pid"].replace_strict(member_index, return_dtype=pl.Int64).to_numpy(),
                         held["sid"].replace_strict(s_index, return_dtype=pl.Int64).to_numpy()),
              held["qty"].to_numpy())
    cash = np.zeros(m_count, dtype=np.int64)
    ccp_cash = 0
    for r in scenario.cash.iter_rows(named=True):
        pid, ccy = str(r["participant_id"]).strip(), str(r["currency"]).strip()
        if pid != "CCP" and pid not in member_index:
            raise InputError(f"cash.csv: unknown participant {pid!r}")
        if ccy == currency:
            amount = to_minor(r["amount"], ccy)
            if pid == "CCP":
                ccp_cash += amount
            else:
                cash[member_index[pid]] += amount

    sum_q = exact_bincount(security, quantity, s_count).tolist()
    sum_v = exact_bincount(security, value, s_count).tolist()
    ref = np.array([(v * divisor + q // 2) // q if q else 0 for q, v in zip(sum_q, sum_v, strict=True)],
                   dtype=np.int64)
    return TradeFlow(
        members=tuple(members), securities=tuple(securities), currency=currency,
        buyer=buyer[order], seller=seller[order], security=security[order],
        quantity=quantity[order], value=value[order], time=time[order],
        holdings=holdings, cash=cash, ccp_cash=ccp_cash, ref_price_e6=ref, calendar=calendar,
        rejected=n_rejected, other_currency=int((~keep).sum()), generated_times=int(blank.sum()),
    )


# ----------------------------------------------------------------------------- schedule and prices


def settlement_times(flow: TradeFlow, regime: Regime) -> np.ndarray:
    """When each trade settles under the regime, seconds since 1970-01-01 (if nothing fails)."""
    day = flow.time // DAY
    if regime.kind == "daily":
        return flow.calendar.add_business_days_vec(day, regime.cycle_days) * DAY + CUTOFF
    if regime.kind == "intraday":
        window = regime.batch_minutes * 60
        end = (flow.time % DAY // window + 1) * window
        return day * DAY + np.minimum(end, CUTOFF)
    return flow.time.copy()


def price_path(flow: TradeFlow, first_day: int, last_day: int, seed: int,
               daily_vol: float = DAILY_VOL) -> PricePath:
    """Seeded prices every half hour of every business day: a log random walk from the reference
    prices with ``daily_vol`` per business day and no expected drift; weekends and holidays do
    not move it."""
    days = [day_number(d) for d in flow.calendar.business_days(from_day_number(first_day),
                                                                   from_day_number(last_day))]
    per_day = DAY // SAMPLE_SECONDS
    times = (np.repeat(np.array(days, dtype=np.int64) * DAY, per_day)
             + np.tile(np.arange(per_day, dtype=np.int64) * SAMPLE_SECONDS, len(days)))
    rng = np.random.default_rng([seed, 0x70617468])
    steps = rng.normal(0.0, daily_vol / math.sqrt(per_day), (len(flow.securities), len(times)))
    steps[:, 0] = 0.0
    ref = flow.ref_price_e6.astype(np.float64) / flow.divisor
    drift = -0.5 * daily_vol**2 / per_day * np.arange(len(times))  # keeps the expected price flat
    prices = ref[:, None] * np.exp(np.cumsum(steps, axis=1) + drift)
    return PricePath(times=times, prices=prices, end=(last_day + 1) * DAY)


def lending_pool(flow: TradeFlow, share: float) -> np.ndarray:
    """Units of each security available to borrow: ``share`` of its opening holdings, rounded down."""
    if not 0 <= share <= 1:
        raise InputError(f"the lendable share must be between 0 and 1, not {share}")
    ppm, million = round(share * 1_000_000), 1_000_000
    total = flow.holdings.sum(axis=0)
    return total // million * ppm + total % million * ppm // million  # exact, without overflow


# ----------------------------------------------------------------------------- figures


def _running_need(group: np.ndarray, order: np.ndarray, amount: np.ndarray, n_groups: int) -> np.ndarray:
    """Per group, max(0, -lowest running sum) of ``amount`` taken in ``order``: what must be in
    place beforehand so that the running balance never goes below zero."""
    need = np.zeros(n_groups, dtype=np.int64)
    if len(group) == 0:
        return need
    idx = np.lexsort((order, group))
    g, a = group[idx], amount[idx]
    csum = np.cumsum(a)
    start = np.r_[0, np.flatnonzero(g[1:] != g[:-1]) + 1]
    running = csum - np.repeat(csum[start] - a[start], np.diff(np.r_[start, len(g)]))
    need[g[start]] = np.maximum(-np.minimum.reduceat(running, start), 0)
    return need


def _payments(member: np.ndarray, event: np.ndarray,
              cash: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One net payment per (member, settlement event): member, event and amount (> 0 received)."""
    n_events = int(event.max()) + 1 if len(event) else 1
    key, inv = np.unique(member * n_events + event, return_inverse=True)
    return key // n_events, key % n_events, exact_bincount(inv.ravel(), cash, len(key))


def _prefunding(flow: TradeFlow, payments: tuple[np.ndarray, np.ndarray, np.ndarray], member: np.ndarray,
                security: np.ndarray, event: np.ndarray, quantity: np.ndarray) -> Prefunding:
    """Pre-funding from the net payments and the securities flows (member, security, event
    order, quantity received) of the settlement events."""
    m_count, s_count = len(flow.members), len(flow.securities)
    need_cash = _running_need(*payments, m_count)
    ms = member * s_count + security
    need_qty = _running_need(ms, event, quantity, m_count * s_count)
    nz = np.flatnonzero(need_qty)
    worth = flow.worth(need_qty[nz], nz % s_count)
    need_sec = exact_bincount(nz // s_count, worth, m_count)
    return Prefunding(cash=need_cash, securities=need_sec)


def _exposure(flow: TradeFlow, path: PricePath, time: np.ndarray, member: np.ndarray,
              security: np.ndarray, quantity: np.ndarray, cash: np.ndarray) -> Exposure:
    """Mark the unsettled flows (executed minus settled) at every sample of the price path."""
    m_count, s_count, g_count = len(flow.members), len(flow.securities), len(path.times)
    replacement = np.zeros(g_count, dtype=np.int64)
    margin = np.zeros(g_count, dtype=np.int64)
    member_peak = np.zeros(m_count, dtype=np.int64)
    member_peak_at = np.zeros(m_count, dtype=np.int64)
    sample = np.searchsorted(path.times, time, side="left")
    order = np.argsort(sample, kind="stable")
    sample, key = sample[order], (member * s_count + security)[order]
    dq, dc, dm = quantity[order], cash[order], member[order]
    bounds = np.searchsorted(sample, np.arange(g_count + 1), side="left")
    open_q = np.zeros(m_count * s_count, dtype=np.int64)
    open_c = np.zeros(m_count, dtype=np.int64)
    for k in range(g_count):
        lo, hi = bounds[k], bounds[k + 1]
        if hi > lo:
            open_q += exact_bincount(key[lo:hi], dq[lo:hi], m_count * s_count)
            open_c += exact_bincount(dm[lo:hi], dc[lo:hi], m_count)
        if not open_q.any() and not open_c.any():
            continue
        q = open_q.reshape(m_count, s_count).astype(np.float64)
        price = path.prices[:, k]
        rc = np.rint(np.maximum(-(q @ price + open_c), 0.0)).astype(np.int64)
        replacement[k] = rc.sum()
        margin[k] = np.rint(MARGIN_RATE * (np.abs(q) @ price)).astype(np.int64).sum()
        higher = rc > member_peak
        member_peak[higher] = rc[higher]
        member_peak_at[higher] = path.times[k]
    return Exposure(replacement=replacement, margin=margin, member_peak=member_peak,
                    member_peak_at=member_peak_at, weights=path.weights())


def _allocate(security: np.ndarray, short: np.ndarray, pool: np.ndarray, priority: np.ndarray) -> np.ndarray:
    """Lend whole shortfalls from each security's pool, most senior first, while they fit.

    Within a security, candidates are taken in ``priority`` order; each gets its whole shortfall
    as long as the running total stays within the pool (a part would not let it deliver).
    """
    granted = np.zeros(len(short), dtype=np.int64)
    cand = np.flatnonzero(short > 0)
    if len(cand) == 0:
        return granted
    idx = cand[np.lexsort((priority[cand], security[cand]))]
    g, a = security[idx], short[idx]
    csum = np.cumsum(a)
    start = np.r_[0, np.flatnonzero(g[1:] != g[:-1]) + 1]
    running = csum - np.repeat(csum[start] - a[start], np.diff(np.r_[start, len(g)]))
    granted[idx] = np.where(running <= pool[g], a, 0)
    return granted


@dataclass(slots=True)
class _Loans:
    """Loan book of a simulation: the pool, outstanding loans and their value over time.

    Attributes:
        flow: the trade flow (for reference prices).
        end: the regime's last settlement; loans are counted up to it.
        pool: units of each security still available to borrow.
        loans: units on loan per (member, security).
        ever: per (member, security), whether it ever borrowed.
        since: time up to which the value on loan has been integrated.
        events, borrowed_value, unmet_value, peak_value, value_seconds, current_value: running
            figures of the ``Borrowing`` record.
    """

    flow: TradeFlow
    end: int
    pool: np.ndarray
    loans: np.ndarray
    ever: np.ndarray
    since: int
    events: int = 0
    borrowed_value: int = 0
    unmet_value: int = 0
    peak_value: int = 0
    value_seconds: int = 0
    current_value: int = 0

    def lend(self, member: np.ndarray, security: np.ndarray, granted: np.ndarray,
             unmet: np.ndarray) -> None:
        """Record loans of ``granted`` units (and shortfalls the pool could not cover)."""
        s_count = len(self.flow.securities)
        got = np.flatnonzero(granted)
        if len(got):
            np.add.at(self.loans, (member[got], security[got]), granted[got])
            self.pool -= exact_bincount(security[got], granted[got], s_count)
            self.events += len(got)
            self.borrowed_value += int(self.flow.worth(granted[got], security[got]).sum())
            self.ever[member[got] * s_count + security[got]] = True
        self.unmet_value += int(self.flow.worth(unmet, security).sum())

    def give_back(self, holdings: np.ndarray) -> None:
        """Return loans out of the borrowers' ``holdings`` (participants x securities), as far as
        they hold the securities again."""
        owed = np.flatnonzero(self.loans.ravel())
        m, s = owed // len(self.flow.securities), owed % len(self.flow.securities)
        back = np.minimum(self.loans[m, s], holdings[m, s])
        holdings[m, s] -= back
        self.loans[m, s] -= back
        self.pool += exact_bincount(s, back, len(self.flow.securities))

    def mark(self, time: int) -> None:
        """Integrate the value on loan up to ``time``, then take the new value from the book."""
        if time > self.end:
            return
        self.value_seconds += self.current_value * (time - self.since)
        self.since = time
        per_sec = self.loans.sum(axis=0)
        nz = np.flatnonzero(per_sec)
        self.current_value = int(self.flow.worth(per_sec[nz], nz).sum())
        self.peak_value = max(self.peak_value, self.current_value)

    def result(self) -> Borrowing:
        return Borrowing(
            loans=self.events, borrowers=int(np.count_nonzero(self.ever)),
            borrowed_value=self.borrowed_value, peak_value=self.peak_value,
            value_seconds=self.value_seconds + self.current_value * (self.end - self.since),
            at_end_value=self.current_value, unmet_value=self.unmet_value,
        )


def _simulate_netted(flow: TradeFlow, regime: Regime, settle_at: np.ndarray, retry_at: np.ndarray,
                     pool: np.ndarray, path: PricePath) -> RegimeResult:
    """Net per batch, then settle the batches in time order with borrowing and CNS roll-over."""
    m_count, s_count = len(flow.members), len(flow.securities)
    slot_times, slot = np.unique(np.r_[settle_at, retry_at], return_inverse=True)
    slot = slot[: len(settle_at)]
    nets = net_trades(flow.buyer, flow.seller, flow.security, flow.quantity, flow.value, slot,
                      m_count, s_count, np.zeros(s_count, dtype=np.int64), 1)
    payments = _payments(nets.member, nets.settlement_day, nets.cash)
    netting = Netting(
        gross_obligations=nets.gross_obligations, gross_value=int(nets.gross_value[0]),
        net_obligations=len(nets), net_value=int(np.abs(nets.cash).sum()),
        net_payments=int(np.count_nonzero(payments[2])),
        net_payment_value=int(np.abs(payments[2]).sum()),
        batches=len(np.unique(nets.settlement_day)),
    )
    prefunding = _prefunding(flow, payments, nets.member, nets.security, nets.settlement_day,
                             nets.quantity)

    sec = np.zeros((m_count + 1, s_count), dtype=np.int64)
    sec[:m_count] = flow.holdings
    cash = np.zeros((m_count + 1, 1), dtype=np.int64)
    cash[:m_count, 0] = flow.cash
    cash[m_count, 0] = flow.ccp_cash
    book = _Loans(flow, int(settle_at.max()), pool.copy(), np.zeros((m_count, s_count), dtype=np.int64),
                  np.zeros(m_count * s_count, dtype=bool), int(flow.time[0]))
    open_q = np.zeros(m_count * s_count, dtype=np.int64)
    open_c = np.zeros(m_count * s_count, dtype=np.int64)
    first_due = np.full(m_count * s_count, -1, dtype=np.int64)
    fail_keys = np.zeros(0, dtype=np.int64)
    bounds = np.searchsorted(nets.settlement_day, np.arange(len(slot_times) + 1), side="left")
    stats = {"instructions": 0, "settled": 0, "fails": 0, "settled_value": 0, "failed_value": 0}
    reasons = np.zeros(len(REASONS), dtype=np.int64)
    settled_parts: list[tuple[np.ndarray, ...]] = []
    for k, at in enumerate(slot_times.tolist()):
        lo, hi = bounds[k], bounds[k + 1]
        new = nets.member[lo:hi] * s_count + nets.security[lo:hi]
        open_q[new] += nets.quantity[lo:hi]
        open_c[new] += nets.cash[lo:hi]
        keys = np.union1d(fail_keys, new)
        live = (open_q[keys] != 0) | (open_c[keys] != 0)
        first_due[keys[~live]] = -1
        keys = keys[live]
        if len(keys) == 0:
            fail_keys = keys
            continue
        first_due[keys] = np.where(first_due[keys] < 0, k, first_due[keys])
        fresh = first_due[keys] == k
        m, s = keys // s_count, keys % s_count
        q, c = open_q[keys], open_c[keys]
        priority = np.empty(len(keys), dtype=np.int64)
        priority[np.lexsort((s, m, first_due[keys]))] = np.arange(len(keys))
        short = np.where(q < 0, np.maximum(-q - sec[m, s], 0), 0)
        granted = _allocate(s, short, book.pool, priority)
        sec[m, s] += granted
        book.lend(m, s, granted, np.where(fresh, short - granted, 0))
        outcome = settle_batch(m, s, q, c, np.zeros(len(keys), dtype=np.int64), priority, sec, cash,
                               m_count)
        ok = outcome.settled
        sec[m[ok], s[ok]] += q[ok]
        np.subtract.at(sec[m_count], s[ok], q[ok])
        cash[:, 0] += exact_bincount(m[ok], c[ok], m_count + 1)  # a member has many instructions
        cash[m_count, 0] -= int(c[ok].sum())
        invariant(bool((sec >= 0).all()) and bool((cash >= 0).all()), "a balance went negative")
        settled_parts.append((np.full(int(ok.sum()), at, dtype=np.int64), m[ok], s[ok], -q[ok], -c[ok]))
        open_q[keys[ok]] = 0
        open_c[keys[ok]] = 0
        first_due[keys[ok]] = -1
        fail_keys = keys[~ok]
        new_fail = fresh & ~ok
        stats["instructions"] += len(keys)
        stats["settled"] += int(ok.sum())
        stats["settled_value"] += int(np.abs(c[ok]).sum())
        stats["fails"] += int(new_fail.sum())
        stats["failed_value"] += int(np.abs(c[new_fail]).sum())
        reasons += np.bincount(outcome.reason[new_fail], minlength=len(REASONS))
        book.give_back(sec)
        book.mark(at)
    settlement = Settlement(
        due=len(nets), instructions=stats["instructions"], settled=stats["settled"],
        settled_value=stats["settled_value"], fails=stats["fails"], failed_value=stats["failed_value"],
        by_reason={str(REASONS[i]): int(reasons[i]) for i in range(1, len(REASONS)) if reasons[i]},
        open_at_end=len(fail_keys), open_at_end_value=int(np.abs(open_c[fail_keys]).sum()),
    )
    n = len(flow.time)
    parts = [(flow.time, flow.buyer, flow.security, flow.quantity, -flow.value),
             (flow.time, flow.seller, flow.security, -flow.quantity, flow.value), *settled_parts]
    exposure = _exposure(flow, path, *(np.concatenate(col) for col in zip(*parts, strict=True)))
    execution = Execution(trades=n, executed=n, no_securities=0, no_cash=0, not_executed_value=0)
    return RegimeResult(regime, netting, prefunding, book.result(), exposure, settlement, execution)


def _simulate_atomic(flow: TradeFlow, regime: Regime, pool: np.ndarray, path: PricePath) -> RegimeResult:
    """Gross DvP at execution, in time order, pre-funded: a sequential pass over plain ints."""
    m_count, s_count, n = len(flow.members), len(flow.securities), len(flow.time)
    sides = np.r_[np.arange(n), np.arange(n)]
    member = np.r_[flow.buyer, flow.seller]
    payments = _payments(member, sides, np.r_[-flow.value, flow.value])
    prefunding = _prefunding(flow, payments, member, np.r_[flow.security, flow.security], sides,
                             np.r_[flow.quantity, -flow.quantity])
    gross_value = 2 * int(flow.value.sum())
    netting = Netting(gross_obligations=2 * n, gross_value=gross_value, net_obligations=2 * n,
                      net_value=gross_value, net_payments=2 * n, net_payment_value=gross_value,
                      batches=n)
    hold = flow.holdings.ravel().tolist()
    cash = flow.cash.tolist()
    free = pool.tolist()
    owed = [0] * (m_count * s_count)
    ref = flow.ref_price_e6.tolist()
    status = bytearray(n)  # 0 executed, 1 no securities, 2 no cash
    borrowers: set[int] = set()
    events = 0
    borrowed_e6 = unmet_e6 = loan_e6 = peak_e6 = area_e6 = 0
    last = int(flow.time[0])
    columns = (flow.buyer.tolist(), flow.seller.tolist(), flow.security.tolist(),
               flow.quantity.tolist(), flow.value.tolist(), flow.time.tolist())
    for i, (b, se, s, q, v, t) in enumerate(zip(*columns, strict=True)):
        ks = se * s_count + s
        held = hold[ks]
        short = q - held
        if short > 0 and short > free[s]:
            status[i] = 1
            unmet_e6 += short * ref[s]
            continue
        if cash[b] < v:
            status[i] = 2
            continue
        if short > 0:
            free[s] -= short
            owed[ks] += short
            held = q
            events += 1
            borrowers.add(ks)
            area_e6 += loan_e6 * (t - last)
            last = t
            loan_e6 += short * ref[s]
            borrowed_e6 += short * ref[s]
            peak_e6 = max(peak_e6, loan_e6)
        hold[ks] = held - q
        cash[b] -= v
        cash[se] += v
        kb = b * s_count + s
        got = hold[kb] + q
        debt = owed[kb]
        if debt:
            back = debt if debt < got else got
            owed[kb] = debt - back
            got -= back
            free[s] += back
            area_e6 += loan_e6 * (t - last)
            last = t
            loan_e6 -= back * ref[s]
        hold[kb] = got
    area_e6 += loan_e6 * (int(flow.time[-1]) - last)
    half = flow.divisor // 2
    borrowing = Borrowing(
        loans=events, borrowers=len(borrowers), borrowed_value=(borrowed_e6 + half) // flow.divisor,
        peak_value=(peak_e6 + half) // flow.divisor, value_seconds=(area_e6 + half) // flow.divisor,
        at_end_value=(loan_e6 + half) // flow.divisor, unmet_value=(unmet_e6 + half) // flow.divisor,
    )
    state = np.frombuffer(bytes(status), dtype=np.uint8)
    done = state == 0
    executed_value = int(flow.value[done].sum())
    settlement = Settlement(
        due=2 * int(done.sum()), instructions=2 * int(done.sum()), settled=2 * int(done.sum()),
        settled_value=2 * executed_value, fails=0, failed_value=0, by_reason={}, open_at_end=0,
        open_at_end_value=0,
    )
    execution = Execution(
        trades=n, executed=int(done.sum()), no_securities=int((state == 1).sum()),
        no_cash=int((state == 2).sum()), not_executed_value=int(flow.value[~done].sum()),
    )
    g_count = len(path.times)
    exposure = Exposure(
        replacement=np.zeros(g_count, dtype=np.int64), margin=np.zeros(g_count, dtype=np.int64),
        member_peak=np.zeros(m_count, dtype=np.int64), member_peak_at=np.zeros(m_count, dtype=np.int64),
        weights=path.weights(),
    )
    return RegimeResult(regime, netting, prefunding, borrowing, exposure, settlement, execution)


def compare(
    flow: TradeFlow,
    regimes: Sequence[Regime],
    *,
    seed: int = 7,
    lendable_share: float = LENDABLE_SHARE,
    path: PricePath | None = None,
    progress: Progress | None = None,
) -> Comparison:
    """Settle the flow under every regime; ``path`` (default: seeded) marks the exposures."""
    if len(flow.time) == 0:
        raise InputError("no accepted trade to compare")
    if not regimes:
        raise InputError("no regime to compare")
    plans = [settlement_times(flow, r) for r in regimes]
    first_day = int(flow.time[0] // DAY)
    last_day = max(int(p.max() // DAY) for p in plans)
    if path is None:
        path = price_path(flow, first_day, last_day, seed)
    pool = lending_pool(flow, lendable_share)
    days = [day_number(d) for d in flow.calendar.business_days(from_day_number(first_day),
                                                               from_day_number(last_day))]
    retry = np.array(days, dtype=np.int64) * DAY + CUTOFF
    results = []
    for i, (regime, at) in enumerate(zip(regimes, plans, strict=True)):
        if progress:
            progress("Settling each regime", i, len(regimes))
        if regime.kind == "atomic":
            results.append(_simulate_atomic(flow, regime, pool, path))
        else:
            results.append(_simulate_netted(flow, regime, at, retry, pool, path))
    if progress:
        progress("Settling each regime", len(regimes), len(regimes))
    return Comparison(flow=flow, path=path, results=tuple(results), seed=seed,
                      lendable_share=lendable_share, first_day=first_day, last_day=last_day)


# ----------------------------------------------------------------------------- JSON


def iso_time(seconds: int) -> str:
    """Seconds since 1970-01-01 as an ISO date and time."""
    return (dt.datetime(1970, 1, 1) + dt.timedelta(seconds=int(seconds))).isoformat()


def _change_pct(value: float, base: float) -> float | None:
    return round(100.0 * (value - base) / base, 2) if base else None


def regime_json(comparison: Comparison, result: RegimeResult) -> dict[str, Any]:
    """One regime's figures; amounts are decimal strings in the comparison's currency."""
    flow = comparison.flow

    def money(x: int) -> str:
        return format_minor(int(x), flow.currency)

    n, p, b = result.netting, result.prefunding, result.borrowing
    e, s, x = result.exposure, result.settlement, result.execution
    base = comparison.results[0]
    largest = np.argsort(-e.member_peak, kind="stable")[:LARGEST]
    return {
        "regime": result.regime.name,
        "model": result.regime.description,
        "netting": {
            "gross_obligations": n.gross_obligations, "net_obligations": n.net_obligations,
            "gross_value": money(n.gross_value), "net_value": money(n.net_value),
            "reduction_pct": round(n.reduction_pct, 2),
            "net_payments": n.net_payments, "net_payment_value": money(n.net_payment_value),
            "payment_reduction_pct": round(n.payment_reduction_pct, 2),
            "count_reduction_pct": round(n.count_reduction_pct, 2),
            "settlement_events": n.batches,
        },
        "prefunding": {
            "cash": money(p.cash_total), "securities": money(p.securities_total),
            "total": money(p.total),
            "largest_member": money(int((p.cash + p.securities).max(initial=0))),
            "by_member": [
                {"member": m, "cash": money(c), "securities": money(v)}
                for m, c, v in zip(flow.members, p.cash.tolist(), p.securities.tolist(), strict=True)
            ],
        },
        "borrowing": {
            "loans": b.loans, "borrowers": b.borrowers, "borrowed_value": money(b.borrowed_value),
            "peak_on_loan_value": money(b.peak_value),
            "average_days_on_loan": round(b.average_days, 3),
            "on_loan_at_end_value": money(b.at_end_value), "unmet_value": money(b.unmet_value),
        },
        "exposure": {
            "replacement_cost_value_days": money(round_half_up_div(e.value_seconds, DAY)),
            "peak_replacement_cost": money(e.peak),
            "peak_at": iso_time(int(comparison.path.times[int(e.replacement.argmax())])) if e.peak else None,
            "margin_peak": money(e.margin_peak), "margin_average": money(e.margin_average),
            "largest": [
                {"member": flow.members[i], "peak": money(e.member_peak[i]),
                 "at": iso_time(e.member_peak_at[i])}
                for i in largest.tolist() if e.member_peak[i] > 0
            ],
        },
        "settlement": {
            "due": s.due, "instructions": s.instructions, "settled": s.settled, "fails": s.fails,
            "fail_rate_pct": round(s.fail_rate_pct, 3), "settled_value": money(s.settled_value),
            "failed_value": money(s.failed_value), "fails_by_reason": s.by_reason,
            "open_at_end": s.open_at_end, "open_at_end_value": money(s.open_at_end_value),
        },
        "execution": {
            "trades": x.trades, "executed": x.executed, "not_executed": x.not_executed,
            "no_securities": x.no_securities, "no_cash": x.no_cash,
            "not_executed_value": money(x.not_executed_value),
        },
        "change_vs_first": {
            "baseline": base.regime.name,
            "net_value_pct": _change_pct(n.net_value, base.netting.net_value),
            "prefunding_pct": _change_pct(p.total, base.prefunding.total),
            "replacement_cost_pct": _change_pct(e.value_seconds, base.exposure.value_seconds),
            "margin_average_pct": _change_pct(e.margin_average, base.exposure.margin_average),
        },
    }


def comparison_json(comparison: Comparison) -> dict[str, Any]:
    """The whole comparison as one JSON-able object: the input, then one object per regime."""
    flow = comparison.flow
    return {
        "currency": flow.currency,
        "members": len(flow.members),
        "securities": len(flow.securities),
        "trades": len(flow.time),
        "rejected": flow.rejected,
        "other_currency": flow.other_currency,
        "timestamps_generated": flow.generated_times,
        "first_trade_date": from_day_number(comparison.first_day).isoformat(),
        "last_settlement_date": from_day_number(comparison.last_day).isoformat(),
        "traded_value": format_minor(int(flow.value.sum()), flow.currency),
        "seed": comparison.seed,
        "lendable_pct": round(100 * comparison.lendable_share, 4),
        "daily_volatility_pct": 100 * DAILY_VOL,
        "margin_rate_pct": round(100 * MARGIN_RATE, 3),
        "regimes": [regime_json(comparison, r) for r in comparison.results],
    }


def whole_units(amount: int, currency: str) -> str:
    """Minor units as whole currency units with thousands separators, rounded half up."""
    return f"{round_half_up_div(int(amount), 10 ** minor_digits(currency)):,}"


def compact_units(amount: int, currency: str) -> str:
    """Minor units for a narrow table: 3 significant figures with k, m or bn (display only)."""
    units = int(amount) / 10 ** minor_digits(currency)
    for size, suffix in ((1e9, " bn"), (1e6, " m"), (1e3, " k")):
        if abs(units) >= size:
            return f"{units / size:.3g}{suffix}"
    return f"{units:.0f}"


def summary_table(comparison: Comparison, compact: bool = False) -> tuple[list[str], list[tuple[str, list[str]]]]:
    """The headline figures as text: regime names, then (figure, one cell per regime) rows.

    Amounts are in the flow's currency: whole units, or with ``compact`` three significant figures.
    """
    ccy = comparison.flow.currency
    res = comparison.results
    show = compact_units if compact else whole_units

    def amount(get: Callable[[RegimeResult], int]) -> list[str]:
        return [show(get(r), ccy) for r in res]

    def pct(get: Callable[[RegimeResult], float], digits: int = 1) -> list[str]:
        return [f"{get(r):.{digits}f} %" for r in res]

    rows = [
        ("gross obligations", [f"{r.netting.gross_obligations:,}" for r in res]),
        ("net obligations", [f"{r.netting.net_obligations:,}" for r in res]),
        ("gross value", amount(lambda r: r.netting.gross_value)),
        ("net value", amount(lambda r: r.netting.net_value)),
        ("netting reduction, by value", pct(lambda r: r.netting.reduction_pct)),
        ("net payments value", amount(lambda r: r.netting.net_payment_value)),
        ("payment netting reduction", pct(lambda r: r.netting.payment_reduction_pct)),
        ("cash pre-funding", amount(lambda r: r.prefunding.cash_total)),
        ("securities pre-funding", amount(lambda r: r.prefunding.securities_total)),
        ("largest member's pre-funding",
         amount(lambda r: int((r.prefunding.cash + r.prefunding.securities).max(initial=0)))),
        ("securities borrowed", amount(lambda r: r.borrowing.borrowed_value)),
        ("average days on loan", [f"{r.borrowing.average_days:.2f}" for r in res]),
        ("peak value on loan", amount(lambda r: r.borrowing.peak_value)),
        ("replacement cost x days",
         amount(lambda r: round_half_up_div(r.exposure.value_seconds, DAY))),
        ("peak replacement cost", amount(lambda r: r.exposure.peak)),
        ("margin proxy, average", amount(lambda r: r.exposure.margin_average)),
        ("margin proxy, peak", amount(lambda r: r.exposure.margin_peak)),
        ("CCP's largest exposure, member",
         [comparison.flow.members[int(r.exposure.member_peak.argmax())] if r.exposure.peak else "-"
          for r in res]),
        ("CCP's largest exposure", amount(lambda r: int(r.exposure.member_peak.max(initial=0)))),
        ("settled value", amount(lambda r: r.settlement.settled_value)),
        ("obligations due", [f"{r.settlement.due:,}" for r in res]),
        ("fails", [f"{r.settlement.fails:,}" for r in res]),
        ("fail rate", pct(lambda r: r.settlement.fail_rate_pct, 2)),
        ("failed value", amount(lambda r: r.settlement.failed_value)),
        ("still failing at the end", amount(lambda r: r.settlement.open_at_end_value)),
        ("trades not executed", [f"{r.execution.not_executed:,}" for r in res]),
        ("value not executed", amount(lambda r: r.execution.not_executed_value)),
    ]
    return [r.regime.name for r in res], rows
