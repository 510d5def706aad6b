"""The wire forms of a trade batch, exactly as submitted.

Two forms carry the same string columns: an Arrow IPC stream (bulk files: CSV and Parquet
intake) and canonical JSON ``{"trades": [{"trade_id": ..., ...}, ...]}`` (REST, FIX and ISO 20022
intake, where a client signs a small body). Values are parsed and validated by the state machine
on every node, never trusted from the client. Imports clearhouse.core only.
"""

from __future__ import annotations

import io

import polars as pl
from polars.exceptions import PanicException

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
    "partial_allowed",
)
REQUIRED_COLUMNS = TRADE_COLUMNS[:7]
OPTIONAL_COLUMNS = TRADE_COLUMNS[7:]


def normalise_trades(frame: pl.DataFrame) -> pl.DataFrame:
    """The batch columns as strings, in order; a missing optional column becomes ''."""
    missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
    if missing:
        raise InputError(f"trade batch lacks column(s): {', '.join(missing)}")
    frame = frame.with_columns(pl.lit("").alias(c) for c in OPTIONAL_COLUMNS if c not in frame.columns)
    return frame.select(
        [pl.col(c).cast(pl.String).fill_null("").alias(c) for c in TRADE_COLUMNS]
    )


def encode_trades(frame: pl.DataFrame) -> bytes:
    buf = io.BytesIO()
    normalise_trades(frame).write_ipc_stream(buf, compression="lz4")
    return buf.getvalue()


def encode_trades_json(rows: list[dict[str, str]]) -> bytes:
    """The JSON form of a batch: each row's columns as strings (missing ones empty)."""
    from clearhouse.core.hashing import canonical_json

    return canonical_json({"trades": [{c: str(r.get(c, "") or "") for c in TRADE_COLUMNS} for r in rows]})


def _decode_json(payload: bytes) -> pl.DataFrame:
    import json

    try:
        body = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:  # deep nesting must not halt a node
        raise InputError(f"not a JSON trade batch: {type(exc).__name__}") from exc
    rows = body.get("trades") if isinstance(body, dict) else None
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise InputError("a JSON trade batch needs a list of objects under 'trades'")
    columns: dict[str, list[str]] = {c: [] for c in TRADE_COLUMNS}
    for r in rows:
        for c in TRADE_COLUMNS:
            v = r.get(c, "")
            columns[c].append(v if isinstance(v, str) else "" if v is None else str(v))
    return pl.DataFrame(columns, schema=dict.fromkeys(TRADE_COLUMNS, pl.String))


def decode_trades(payload: bytes) -> pl.DataFrame:
    """Decode a batch (either form); anything that is not a well-formed batch raises ``InputError``."""
    if payload[:1] == b"{":
        return _decode_json(payload)
    try:
        frame = pl.read_ipc_stream(io.BytesIO(payload))
    except (Exception, PanicException) as exc:  # hostile bytes raise many types, some readers panic
        raise InputError(f"not a trade batch: {type(exc).__name__}") from exc
    if any(t != pl.String for t in frame.dtypes) or tuple(frame.columns) not in (TRADE_COLUMNS, REQUIRED_COLUMNS
                                                                                   + OPTIONAL_COLUMNS[:1]):
        raise InputError("trade batch columns are not the documented string columns")
    return normalise_trades(frame)
