"""Oracle price observations, kept in the API's own SQLite file (``DATA/api.sqlite``), not the ledger.

An oracle publishes a signed batch (the same envelope as a trade batch, kind ``observations``);
each observation gets a result code, and is idempotent by (oracle, observation id). The signed
batch is stored whole with its signature, so the batches can later be sequenced onto the ledger
as a ledger kind of their own without asking the oracle again.
Imports clearhouse.core and the API's own errors only.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clearhouse.core.errors import InputError
from clearhouse.interfaces.api.errors import ApiError

KIND = "observations"
ITEMS_MAX = 10_000
_PRICE = re.compile(r"^\d{1,10}(\.\d{1,6})?$")

SCHEMA = """
CREATE TABLE IF NOT EXISTS observation_batches (
    oracle_id TEXT NOT NULL,
    submission_id TEXT NOT NULL,
    digest BLOB NOT NULL,
    payload BLOB NOT NULL,
    signature BLOB NOT NULL,
    results TEXT NOT NULL,
    PRIMARY KEY (oracle_id, submission_id)
);
CREATE TABLE IF NOT EXISTS observations (
    oracle_id TEXT NOT NULL,
    observation_id TEXT NOT NULL,
    security_id TEXT NOT NULL,
    price TEXT NOT NULL,
    currency TEXT NOT NULL,
    as_of TEXT NOT NULL,
    submission_id TEXT NOT NULL,
    business_date TEXT NOT NULL,
    height INTEGER NOT NULL,
    PRIMARY KEY (oracle_id, observation_id)
);
CREATE INDEX IF NOT EXISTS observations_security ON observations (security_id, as_of);
"""


@dataclass(frozen=True, slots=True)
class Batch:
    """A signed observation batch as received."""

    oracle_id: str
    submission_id: str
    digest: bytes
    payload: bytes
    signature: bytes


def parse_items(payload: bytes) -> list[dict[str, Any]]:
    """The observation items of a batch ``{"observations": [...]}``; InputError when malformed."""
    try:
        body = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise InputError(f"not a JSON observation batch: {exc}") from exc
    items = body.get("observations") if isinstance(body, dict) else None
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise InputError("an observation batch needs a list of objects under 'observations'")
    if len(items) > ITEMS_MAX:
        raise InputError(f"more than {ITEMS_MAX} observations in one batch")
    return items


class ObservationStore:
    """The observation tables; callers serialise access (the service holds its lock)."""

    def __init__(self, path: Path) -> None:
        self._db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(SCHEMA)

    def previous(self, oracle_id: str, submission_id: str) -> tuple[bytes, list[list[str]]] | None:
        row = self._db.execute(
            "SELECT digest, results FROM observation_batches WHERE oracle_id = ? AND submission_id = ?",
            (oracle_id, submission_id),
        ).fetchone()
        return None if row is None else (bytes(row[0]), json.loads(row[1]))

    def publish(
        self,
        batch: Batch,
        currencies: dict[str, str],
        business_date: dt.date,
        height: int,
    ) -> list[tuple[str, str]]:
        """Check and store every observation; returns (observation_id, result) per item."""
        items = parse_items(batch.payload)
        results: list[tuple[str, str]] = []
        rows: list[tuple[str, ...] | tuple[Any, ...]] = []
        seen: set[str] = set()
        for item in items:
            oid = item.get("observation_id")
            result = self._check(batch.oracle_id, item, currencies, business_date, seen)
            results.append((oid if isinstance(oid, str) else "", result))
            if result == "ok":
                seen.add(oid)
                rows.append((
                    batch.oracle_id, oid, item["security_id"], item["price"],
                    currencies[item["security_id"]], item["as_of"], batch.submission_id,
                    business_date.isoformat(), height,
                ))
        try:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.executemany("INSERT INTO observations VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
            self._db.execute(
                "INSERT INTO observation_batches VALUES (?, ?, ?, ?, ?, ?)",
                (batch.oracle_id, batch.submission_id, batch.digest, batch.payload, batch.signature,
                 json.dumps([list(r) for r in results])),
            )
            self._db.execute("COMMIT")
        except sqlite3.Error as exc:
            self._db.execute("ROLLBACK")
            raise ApiError(503, "storage_failed", f"cannot store the observations: {exc}") from exc
        return results

    def _check(
        self,
        oracle_id: str,
        item: dict[str, Any],
        currencies: dict[str, str],
        business_date: dt.date,
        seen: set[str],
    ) -> str:
        oid, sec, price, as_of = (item.get(k) for k in ("observation_id", "security_id", "price", "as_of"))
        if not isinstance(oid, str) or not 1 <= len(oid) <= 64:
            return "invalid_observation_id"
        if oid in seen:
            return "duplicate_in_batch"
        if not isinstance(sec, str) or sec not in currencies:
            return "unknown_security"
        if not isinstance(price, str) or not _PRICE.match(price) or not any(c in "123456789" for c in price):
            return "invalid_price"
        try:
            day = dt.date.fromisoformat(as_of) if isinstance(as_of, str) and len(as_of) == 10 else None
        except ValueError:
            day = None
        if day is None:
            return "bad_as_of_date"
        if day > business_date:
            return "as_of_in_future"
        row = self._db.execute(
            "SELECT security_id, price, as_of FROM observations WHERE oracle_id = ? AND observation_id = ?",
            (oracle_id, oid),
        ).fetchone()
        if row is not None:
            return "exists" if tuple(row) == (sec, price, as_of) else "exists_with_different_body"
        return "ok"

    def list(self, security_id: str | None, limit: int) -> list[dict[str, Any]]:
        sql = ("SELECT oracle_id, observation_id, security_id, price, currency, as_of, submission_id, "
               "business_date, height FROM observations")
        args: tuple[Any, ...] = ()
        if security_id is not None:
            sql += " WHERE security_id = ?"
            args = (security_id,)
        rows = self._db.execute(sql + " ORDER BY as_of DESC, height DESC, rowid DESC LIMIT ?",
                                (*args, limit)).fetchall()
        keys = ("oracle_id", "observation_id", "security_id", "price", "currency", "as_of",
                "submission_id", "business_date", "height")
        return [dict(zip(keys, r, strict=True)) for r in rows]

    def close(self) -> None:
        self._db.close()
