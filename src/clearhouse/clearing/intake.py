"""Validation of a trade batch into result codes and the accepted trades' columns, vectorised.

Every row gets exactly one :class:`clearhouse.core.results.TradeResult`, checked in the order of
precedence documented there; submitted = accepted + rejected always. Prices are parsed once here
into integer millionths and each trade's value into integer minor units of the security's
currency, rounded half up per trade. Imports clearhouse.core and clearhouse.clearing only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from clearhouse.clearing.idindex import IdIndex, hash_ids
from clearhouse.core.calendar import BusinessCalendar
from clearhouse.core.results import TradeResult as R

PRICE_DECIMALS = 6
TRADE_ID_MAX_LEN = 64
QUANTITY_MAX = 10**12
PRICE_INT_MAX = 10**9  # whole currency units per security unit
VALUE_MAX_MINOR = 10**15  # per trade; keeps a day's exact sums far inside int64
VALUE_E6_MAX = 4e18  # quantity x price in millionths must stay inside int64
_BODY_SEED = 0x626F647968617368
_DATE_RE = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"
_PRICE_RE = r"^[0-9]{1,10}(\.[0-9]{1,12})?$"


@dataclass(frozen=True, slots=True)
class IntakeContext:
    """What validation needs to know of the ledger's state.

    Attributes:
        participants: participant id -> index.
        is_member: per participant index, True for clearing members (the only trading parties).
        securities: security id -> index.
        lot_size: per security index.
        value_divisor: per security index, 10 ** (PRICE_DECIMALS - minor digits of its currency).
        submitter: index of the submitting participant.
        submitter_is_venue: a venue reports trades between any members; a member only its own.
        business_day: the block's business date as a day number.
        calendar: the ledger's business-day calendar.
    """

    participants: dict[str, int]
    is_member: np.ndarray
    securities: dict[str, int]
    lot_size: np.ndarray
    value_divisor: np.ndarray
    submitter: int
    submitter_is_venue: bool
    business_day: int
    calendar: BusinessCalendar


@dataclass(frozen=True, slots=True)
class IntakeResult:
    """Result codes for every row and the accepted rows' columns (all of equal length).

    Attributes:
        codes: one TradeResult per submitted row, as uint8.
        ids: accepted trade ids.
        id_hashes, body_hashes: their index hashes (uint64).
        buyer, seller, security: participant and security indices.
        quantity, price_e6, value: units, price in millionths, value in minor units (int64).
        trade_day, settlement_day: day numbers (int64).
        partial_allowed: bool, the trade may settle in parts ('true', 'yes', '1', 'y'; default no).
    """

    codes: np.ndarray
    ids: pl.Series
    id_hashes: np.ndarray
    body_hashes: np.ndarray
    buyer: np.ndarray
    seller: np.ndarray
    security: np.ndarray
    quantity: np.ndarray
    price_e6: np.ndarray
    value: np.ndarray
    trade_day: np.ndarray
    settlement_day: np.ndarray
    partial_allowed: np.ndarray

    @property
    def accepted(self) -> int:
        return len(self.quantity)


def _day_numbers(col: pl.Expr) -> pl.Expr:
    parsed = col.str.strptime(pl.Date, "%Y-%m-%d", strict=False)
    return pl.when(col.str.contains(_DATE_RE)).then(parsed).otherwise(None).cast(pl.Int64)


def _lookup(column: str, index: dict[str, int]) -> pl.Expr:
    return pl.col(column).str.strip_chars().replace_strict(index, default=-1, return_dtype=pl.Int64)


def _parse(frame: pl.DataFrame, ctx: IntakeContext) -> pl.DataFrame:
    price = pl.col("price").str.strip_chars()
    sign_neg = price.str.starts_with("-")
    unsigned = pl.when(sign_neg).then(price.str.slice(1)).otherwise(price)
    int_part = unsigned.str.extract(r"^([0-9]+)", 1)
    frac_part = unsigned.str.extract(r"\.([0-9]+)$", 1).fill_null("").str.strip_chars_end("0")
    qty_text = pl.col("quantity").str.strip_chars()
    return frame.select(
        id_ok=(pl.col("trade_id").str.len_chars().is_between(1, TRADE_ID_MAX_LEN))
        & ~pl.col("trade_id").str.contains(r"[\x00-\x1f\x7f]"),
        td=_day_numbers(pl.col("trade_date").str.strip_chars()),
        sd=_day_numbers(pl.col("settlement_date").str.strip_chars()),
        qty=pl.when(qty_text.str.contains(r"^-?[0-9]{1,18}$"))
        .then(qty_text.cast(pl.Int64, strict=False))
        .otherwise(None),
        price_ok=unsigned.str.contains(_PRICE_RE) & (frac_part.str.len_chars() <= PRICE_DECIMALS),
        price_neg=sign_neg,
        price_int=int_part.cast(pl.Int64, strict=False),
        price_frac=frac_part.str.pad_end(PRICE_DECIMALS, "0").str.slice(0, PRICE_DECIMALS)
        .cast(pl.Int64, strict=False),
        buyer=_lookup("buyer", ctx.participants),
        seller=_lookup("seller", ctx.participants),
        security=_lookup("security_id", ctx.securities),
        same_party=pl.col("buyer").str.strip_chars() == pl.col("seller").str.strip_chars(),
    )


def validate_trades(frame: pl.DataFrame, ctx: IntakeContext, index: IdIndex) -> IntakeResult:
    """Give every row of a decoded batch its result; the accepted rows come back as columns."""
    n = frame.height
    p = _parse(frame, ctx)
    td = p["td"].fill_null(-1).to_numpy()
    sd = p["sd"].fill_null(-1).to_numpy()
    qty = p["qty"].fill_null(0).to_numpy()
    qty_bad = p["qty"].is_null().to_numpy()
    price_ok = p["price_ok"].to_numpy() & p["price_int"].is_not_null().to_numpy()
    price_int = p["price_int"].fill_null(0).to_numpy()
    price_e6 = np.where(
        price_ok & (price_int <= PRICE_INT_MAX),
        price_int * 10**PRICE_DECIMALS + p["price_frac"].fill_null(0).to_numpy(),
        0,
    )
    price_ok &= price_int <= PRICE_INT_MAX
    price_neg = p["price_neg"].to_numpy()
    buyer = p["buyer"].to_numpy()
    seller = p["seller"].to_numpy()
    sec = p["security"].to_numpy()
    known_b, known_s, known_sec = buyer >= 0, seller >= 0, sec >= 0
    member = ctx.is_member
    both_members = known_b & known_s & member[np.maximum(buyer, 0)] & member[np.maximum(seller, 0)]
    party = ctx.submitter_is_venue | (buyer == ctx.submitter) | (seller == ctx.submitter)

    ids = frame["trade_id"]
    hashes = hash_ids(ids)
    bodies = frame.select(
        pl.struct(pl.all().exclude("trade_id", "partial_allowed").str.strip_chars()).hash(_BODY_SEED)
    ).to_series().to_numpy()
    exists, old_body = index.lookup(ids, hashes)
    dup_in_batch = np.zeros(n, dtype=bool)
    same_as_first = np.zeros(n, dtype=bool)
    if n and ids.is_duplicated().any():
        first = (
            pl.DataFrame({"id": ids, "row": np.arange(n)})
            .with_columns(first=pl.col("row").min().over("id"))["first"].to_numpy()
        )
        later = first != np.arange(n)
        same_as_first = later & (bodies == bodies[first])
        dup_in_batch = later & ~same_as_first

    lot = ctx.lot_size[np.maximum(sec, 0)]
    divisor = ctx.value_divisor[np.maximum(sec, 0)]
    value_e6 = qty.astype(np.float64) * price_e6.astype(np.float64)
    too_large = (qty > QUANTITY_MAX) | (value_e6 > VALUE_E6_MAX) | (value_e6 / divisor > VALUE_MAX_MINOR)
    cal = ctx.calendar
    conditions = [
        (~p["id_ok"].to_numpy(), R.invalid_trade_id),
        (td < 0, R.bad_trade_date),
        (sd < 0, R.bad_settlement_date),
        (qty_bad, R.invalid_quantity),
        (qty <= 0, R.non_positive_quantity),
        (~price_ok & ~price_neg, R.invalid_price),
        (price_neg | (price_e6 <= 0), R.non_positive_price),
        (p["same_party"].to_numpy(), R.buyer_equals_seller),
        (~known_b, R.unknown_buyer),
        (~known_s, R.unknown_seller),
        (~known_sec, R.unknown_security),
        (~both_members, R.not_a_clearing_member),
        (~party, R.not_party_to_trade),
        (exists & (old_body == bodies), R.exists),
        (exists, R.exists_with_different_body),
        (dup_in_batch, R.duplicate_in_batch),
        (qty % lot != 0, R.quantity_not_lot_multiple),
        (too_large, R.value_too_large),
        (td > ctx.business_day, R.trade_date_in_future),
        (~cal.business_mask(td), R.trade_date_not_business_day),
        (sd < td, R.settlement_date_before_trade_date),
        (~cal.business_mask(sd), R.settlement_date_not_business_day),
        (sd < ctx.business_day, R.settlement_date_passed),
    ]
    codes = np.select([c for c, _ in conditions], [int(r) for _, r in conditions], int(R.ok))
    codes = codes.astype(np.uint8)
    # a later identical copy of a row takes the first copy's result, shown as `exists` when accepted
    if same_as_first.any():
        first_codes = codes[first[same_as_first]]
        codes[same_as_first] = np.where(first_codes == R.ok, R.exists, first_codes)
    ok = codes == R.ok
    # value in minor units, rounded half up per trade (all values here are positive)
    q, pe, dv = qty[ok], price_e6[ok], divisor[ok]
    value = (q * pe + dv // 2) // dv
    return IntakeResult(
        codes=codes,
        ids=ids.filter(pl.Series(ok)),
        id_hashes=hashes[ok],
        body_hashes=bodies[ok],
        buyer=buyer[ok],
        seller=seller[ok],
        security=sec[ok],
        quantity=q,
        price_e6=pe,
        value=value,
        trade_day=td[ok],
        settlement_day=sd[ok],
        partial_allowed=frame["partial_allowed"].str.strip_chars().str.to_lowercase()
        .is_in(["true", "yes", "1", "y"]).to_numpy()[ok],
    )
