"""The wire form of a trade batch: an Arrow IPC stream of string columns, exactly as submitted.

Values are parsed and validated by the state machine on every node (never trusted from the
client), so the payload keeps the submitted text. Imports clearhouse.core only.
"""

from __future__ import annotations

import io

import polars as pl

from clearhouse.core.errors import InputError

TRADE_COLUMNS = (
    "trade_id",
    "trade_date",
    "buyer",
    "seller",
    "security_id",
    "quantity",
    "price",
    "settlement_date",
)
REQUIRED_COLUMNS = TRADE_COLUMNS[:-1]


def normalise_trades(frame: pl.DataFrame) -> pl.DataFrame:
    """The batch columns as strings, in order; a missing settlement date becomes ''."""
    missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
    if missing:
        raise InputError(f"trade batch lacks column(s): {', '.join(missing)}")
    if "settlement_date" not in frame.columns:
        frame = frame.with_columns(pl.lit("").alias("settlement_date"))
    return frame.select(
        [pl.col(c).cast(pl.String).fill_null("").alias(c) for c in TRADE_COLUMNS]
    )


def encode_trades(frame: pl.DataFrame) -> bytes:
    buf = io.BytesIO()
    normalise_trades(frame).write_ipc_stream(buf, compression="lz4")
    return buf.getvalue()


def decode_trades(payload: bytes) -> pl.DataFrame:
    """Decode a batch; anything that is not a well-formed batch raises ``InputError``."""
    try:
        frame = pl.read_ipc_stream(io.BytesIO(payload))
    except Exception as exc:  # pyarrow/polars raise many types on hostile bytes
        raise InputError(f"not a trade batch: {type(exc).__name__}") from exc
    if tuple(frame.columns) != TRADE_COLUMNS or any(t != pl.String for t in frame.dtypes):
        raise InputError("trade batch columns are not the documented string columns")
    return frame
