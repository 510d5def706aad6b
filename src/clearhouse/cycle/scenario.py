"""A scenario: participants, securities, opening holdings and cash, trades, optional holidays,
optional lender offers and collateral policy.

Read from a directory of CSV files with header rows (see the README), or built in memory by the
synthetic market. Whole-file faults (a missing file or column) raise ``InputError``; faults of
single trade rows are left for the state machine to reject with a reason.
Imports clearhouse.core and clearhouse.clearing only.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import polars as pl
from polars.exceptions import PanicException

from clearhouse.clearing.batch import normalise_trades
from clearhouse.core.errors import InputError


@dataclass(frozen=True, slots=True)
class Scenario:
    """What a run starts from.

    Attributes:
        participants: participant_id, name.
        securities: security_id, currency, lot_size.
        holdings: participant_id, security_id, quantity (opening securities).
        cash: participant_id, currency, amount (opening central-bank cash, decimal text).
        trades: the trade batch columns as strings, plus an optional ``submitter``.
        holidays: non-business weekdays.
        lenders: participant_id, security_id, quantity, fee_bps (securities lending offers), or None.
        collateral: security_id, haircut_pct (securities the central bank takes as collateral), or None.
    """

    participants: pl.DataFrame
    securities: pl.DataFrame
    holdings: pl.DataFrame
    cash: pl.DataFrame
    trades: pl.DataFrame
    holidays: tuple[dt.date, ...] = ()
    lenders: pl.DataFrame | None = None
    collateral: pl.DataFrame | None = None


def _read(path: Path, columns: tuple[str, ...], required: bool = True) -> pl.DataFrame:
    if not path.exists():
        if required:
            raise InputError(f"scenario file missing: {path}")
        return pl.DataFrame({c: [] for c in columns}, schema=dict.fromkeys(columns, pl.String))
    try:
        frame = pl.read_csv(path, infer_schema=False, truncate_ragged_lines=False)
    except (Exception, PanicException) as exc:  # polars raises several types on malformed CSV, or panics
        raise InputError(f"cannot read {path.name}: {exc}") from exc
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise InputError(f"{path.name} lacks column(s): {', '.join(missing)}")
    return frame


def _read_table(path: Path, columns: tuple[str, ...]) -> pl.DataFrame:
    if path.suffix == ".parquet":
        try:
            frame = pl.read_parquet(path)
            missing = [c for c in columns if c not in frame.columns]
            if missing:
                raise InputError(f"{path.name} lacks column(s): {', '.join(missing)}")
            return frame.with_columns(pl.all().cast(pl.String))
        except InputError:
            raise
        except (Exception, PanicException) as exc:  # unreadable files and columns that are not text
            raise InputError(f"cannot read {path.name}: {exc}") from exc
    return _read(path, columns)


LOW_CARDINALITY = ("trade_date", "buyer", "seller", "security_id", "settlement_date", "submitter", "partial_allowed")


def read_trades(path: Path) -> pl.DataFrame:
    """A trade file (CSV or Parquet) as the batch's string columns, keeping a ``submitter`` column."""
    frame = _read_table(path, ("trade_id", "trade_date", "buyer", "seller", "security_id", "quantity", "price"))
    submitter = frame["submitter"].cast(pl.String).fill_null("") if "submitter" in frame.columns else None
    trades = normalise_trades(frame)
    if submitter is not None:
        trades = trades.with_columns(submitter=submitter)
    # few distinct values: held as dictionary codes, cast back to text per batch when encoded
    return trades.with_columns(pl.col(c).cast(pl.Categorical) for c in LOW_CARDINALITY if c in trades.columns)


LENDER_COLUMNS = ("participant_id", "security_id", "quantity", "fee_bps")
COLLATERAL_COLUMNS = ("security_id", "haircut_pct")


def _optional(path: Path, columns: tuple[str, ...]) -> pl.DataFrame | None:
    """An optional table: None when its file is absent."""
    return _read(path, columns) if path.exists() else None


def load_scenario(directory: Path) -> Scenario:
    if not directory.is_dir():
        raise InputError(f"not a scenario directory: {directory}")
    trades_path = directory / "trades.csv"
    if not trades_path.exists() and (directory / "trades.parquet").exists():
        trades_path = directory / "trades.parquet"
    holidays_frame = _read(directory / "holidays.csv", ("date",), required=False)
    try:
        holidays = tuple(dt.date.fromisoformat((d or "").strip()) for d in holidays_frame["date"].to_list())
    except ValueError as exc:
        raise InputError(f"holidays.csv: {exc}") from exc
    return Scenario(
        participants=_read(directory / "participants.csv", ("participant_id", "name")),
        securities=_read(directory / "securities.csv", ("security_id", "currency", "lot_size")),
        holdings=_read(directory / "holdings.csv", ("participant_id", "security_id", "quantity"), required=False),
        cash=_read(directory / "cash.csv", ("participant_id", "currency", "amount"), required=False),
        trades=read_trades(trades_path),
        holidays=holidays,
        lenders=_optional(directory / "lenders.csv", LENDER_COLUMNS),
        collateral=_optional(directory / "collateral.csv", COLLATERAL_COLUMNS),
    )


def write_scenario(scenario: Scenario, directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    scenario.participants.write_csv(directory / "participants.csv")
    scenario.securities.write_csv(directory / "securities.csv")
    scenario.holdings.write_csv(directory / "holdings.csv")
    scenario.cash.write_csv(directory / "cash.csv")
    scenario.trades.write_csv(directory / "trades.csv")
    for name, frame in (("lenders", scenario.lenders), ("collateral", scenario.collateral)):
        if frame is not None:
            frame.write_csv(directory / f"{name}.csv")
    if scenario.holidays:
        pl.DataFrame({"date": [d.isoformat() for d in scenario.holidays]}).write_csv(directory / "holidays.csv")
