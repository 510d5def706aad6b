"""The clearing and settlement cycle on the embedded ledger, business day by business day.

A run is a deterministic plan of blocks: genesis; set-up (members admitted by the CCP,
securities registered and opening holdings issued by the CSD, opening cash deposited by the
central bank); then for every business day from the first trade date to the last settlement
date, the day's trade batches (each signed by its submitter: the exchange for locked-in trades,
or a member for trades it is party to), and a block with the CCP's cut-off (novation and
netting) and settlement run. Block timestamps are derived from the plan, so the same scenario
and keys always give the same ledger. A run on a data directory that already holds part of the
same plan resumes after its last stored block.

The settlement rules (DvP model, optimiser, partial settlement, lending, auto-collateralisation,
fails lifecycle) go into the genesis block as ``cfg["settlement"]`` (see
``settlement.cycle.SettlementConfig``); lender offers (``lenders.csv``, one ``lend_offer`` signed
by each lender) and the central bank's collateral policy (``collateral.csv``, a
``collateral_policy``) are set-up submissions.
Imports clearhouse.core, ledger, clearing, state, node and cycle only.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from clearhouse.clearing.batch import OPTIONAL_COLUMNS, TRADE_COLUMNS, encode_trades
from clearhouse.core.calendar import BusinessCalendar, from_day_number
from clearhouse.core.errors import InputError
from clearhouse.core.money import to_minor
from clearhouse.cycle.scenario import Scenario
from clearhouse.ledger.crypto import KeyPair, KeyStore
from clearhouse.ledger.records import Submission
from clearhouse.ledger.sqlite_store import SqliteStore
from clearhouse.node.node import Node
from clearhouse.state.kinds import Kind, Role, encode_json
from clearhouse.state.machine import JSON_ITEMS_MAX

SEQUENCER, CCP, CSD, CENTRAL_BANK, EXCHANGE, REGULATOR = (
    "SEQUENCER", "CCP", "CSD", "CENTRAL_BANK", "EXCHANGE", "REGULATOR",
)
SYSTEM_ROLES = {
    CCP: Role.ccp, CSD: Role.csd, CENTRAL_BANK: Role.central_bank,
    EXCHANGE: Role.venue, REGULATOR: Role.regulator,
}
TRADES_PER_SUBMISSION = 50_000
LEDGER_FILE = "ledger.sqlite"

Progress = Callable[[str, int, int], None]


_DAY_SECONDS_FROM_7 = 17 * 3600  # seconds from 07:00:00 to midnight


def block_timestamp(day: dt.date, n: int) -> str:
    """The timestamp of a day's ``n``-th block (n >= 1), 07:00:00 + n seconds; past 23:59:59 the
    further blocks count on in microseconds. Derived from the plan, never read from a clock, so the
    same scenario gives the same ledger embedded, through the network or through the API."""
    if n < _DAY_SECONDS_FROM_7:
        return f"{day.isoformat()}T{7 + n // 3600:02d}:{n // 60 % 60:02d}:{n % 60:02d}Z"
    return f"{day.isoformat()}T23:59:59.{n - _DAY_SECONDS_FROM_7 + 1:06d}Z"


def parse_cycle(text: str) -> int:
    """'T+2' -> 2; T+0, T+1 and T+2 (and higher) are accepted."""
    match = re.fullmatch(r"\s*[Tt]\s*\+\s*(\d)\s*", text)
    if not match:
        raise InputError(f"settlement cycle must look like T+2, not {text!r}")
    return int(match.group(1))


LEND_OFFER, COLLATERAL_POLICY = "lend_offer", "collateral_policy"  # kinds the settlement book applies


def sign(key: KeyPair, submitter: str, submission_id: str, kind: Kind | str, payload: bytes) -> Submission:
    digest = Submission.digest_for(submission_id, str(kind), submitter, payload)
    return Submission(submission_id, str(kind), submitter, payload, key.sign(digest))


@dataclass(frozen=True, slots=True)
class Step:
    """One planned block: its business date and its submissions, built only when needed."""

    day: dt.date
    ids: tuple[str, ...]
    build: Callable[[], list[Submission]]
    setup: bool = False


class Keys:
    """The key pairs of every participant of a run, under ``DATA/keys``."""

    def __init__(self, data_dir: Path) -> None:
        self.store = KeyStore(data_dir / "keys")
        self._cache: dict[str, KeyPair] = {}

    def __getitem__(self, owner: str) -> KeyPair:
        if owner not in self._cache:
            self._cache[owner] = self.store.get_or_create(owner)
        return self._cache[owner]


def _int_or_text(value: object) -> int | str:
    """An integer column value as int, anything else as its text (the ledger rejects it with a reason)."""
    try:
        return int(str(value).strip())
    except (TypeError, ValueError):
        return str(value)


def _day_column(col: str) -> pl.Expr:
    c = pl.col(col).cast(pl.String).str.strip_chars()
    parsed = c.str.strptime(pl.Date, "%Y-%m-%d", strict=False)
    return pl.when(c.str.contains(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")).then(parsed).otherwise(None).cast(pl.Int64)


def schedule_trades(trades: pl.DataFrame, calendar: BusinessCalendar, cycle_days: int) -> pl.DataFrame:
    """Fill default settlement dates (trade date + cycle business days) and the day each batch is sent.

    A trade is sent on its trade date (the next business day if that is not one, where the ledger
    rejects it as such); a trade whose dates cannot be read is sent on the first day, where the
    ledger rejects it with the reason.
    """
    td_series = trades.select(_day_column("trade_date")).to_series()
    valid = td_series.is_not_null().to_numpy()
    td_int = td_series.fill_null(0).to_numpy().astype(np.int64)
    if not valid.any():
        raise InputError("no trade has a readable trade date (YYYY-MM-DD)")
    send = np.zeros(len(td_int), dtype=np.int64)
    send[valid] = calendar.add_business_days_vec(td_int[valid], 0)
    send[~valid] = send[valid].min()
    default_sd = np.zeros(len(td_int), dtype=np.int64)
    default_sd[valid] = calendar.add_business_days_vec(td_int[valid], cycle_days)
    sd_col = pl.Series("default_sd", default_sd).cast(pl.Date)
    frame = trades.with_columns(
        pl.when(pl.col("settlement_date").cast(pl.String).str.strip_chars() == "")
        .then(pl.when(pl.Series(valid)).then(sd_col.dt.to_string("%Y-%m-%d")).otherwise(pl.lit("")))
        .otherwise(pl.col("settlement_date").cast(pl.String))
        .cast(pl.Categorical)
        .alias("settlement_date"),
        send_day=pl.Series(send),
    )
    return frame


def _run_days(frame: pl.DataFrame, calendar: BusinessCalendar) -> list[dt.date]:
    send = frame["send_day"].to_numpy()
    sd = frame.select(_day_column("settlement_date")).to_series().drop_nulls().to_numpy()
    first = int(send.min())
    last = max(int(send.max()), int(sd.max()) if len(sd) else first)
    last = min(last, first + 3660)  # a run waits at most ten years; later positions stay open
    return list(calendar.business_days(from_day_number(first), from_day_number(last)))


def _lending_setup(scenario: Scenario, members: set[str]) -> list[tuple[str, str, str, str, list[dict]]]:
    """Set-up submissions of lender offers (one per lender, signed by it) and the collateral policy."""
    out: list[tuple[str, str, str, str, list[dict]]] = []
    if scenario.lenders is not None:
        offers: dict[str, list[dict]] = {}
        for r in scenario.lenders.iter_rows(named=True):
            lender = str(r["participant_id"]).strip()
            if lender not in members:
                raise InputError(f"lenders.csv: {lender!r} is not a participant of the scenario")
            offers.setdefault(lender, []).append({
                "security": str(r["security_id"]).strip(), "quantity": _int_or_text(r["quantity"]),
                "fee_bps": _int_or_text(r["fee_bps"]),
            })
        out.extend((lender, f"setup-lend-{lender}", LEND_OFFER, "offers", items)
                   for lender, items in sorted(offers.items()))
    if scenario.collateral is not None:
        policy = [{"security": str(r["security_id"]).strip(), "haircut_pct": str(r["haircut_pct"]).strip()}
                  for r in scenario.collateral.iter_rows(named=True)]
        if len(policy) > JSON_ITEMS_MAX:
            raise InputError(f"collateral.csv: more than {JSON_ITEMS_MAX} eligible securities")
        out.append((CENTRAL_BANK, "setup-collateral", COLLATERAL_POLICY, "securities", policy))
    return out


def plan(scenario: Scenario, keys: Keys, cycle_days: int, settlement: dict[str, Any] | None = None) -> Iterator[Step]:
    """Every block of the run, in order; ``settlement`` (the rules) goes into genesis when given."""
    calendar = BusinessCalendar.of(scenario.holidays)
    frame = schedule_trades(scenario.trades, calendar, cycle_days)
    frame = frame.with_columns(pl.lit("").alias(c) for c in OPTIONAL_COLUMNS if c not in frame.columns)
    days = _run_days(frame, calendar)
    clash = set(scenario.participants["participant_id"].to_list()) & (set(SYSTEM_ROLES) | {SEQUENCER})
    if clash:
        raise InputError(f"participant ids reserved for the system: {', '.join(sorted(clash))}")
    first = days[0]

    def genesis() -> list[Submission]:
        seq = keys[SEQUENCER]
        cfg = {
            "network": "clearhouse",
            "sequencer": {"id": SEQUENCER, "public_key": seq.public_hex},
            "participants": [
                {"id": pid, "name": pid.replace("_", " ").title(), "role": str(role),
                 "public_key": keys[pid].public_hex}
                for pid, role in SYSTEM_ROLES.items()
            ],
            "holidays": sorted(d.isoformat() for d in scenario.holidays),
        }
        if settlement is not None:
            cfg["settlement"] = settlement
        return [sign(seq, SEQUENCER, "genesis", Kind.genesis, encode_json(cfg))]

    yield Step(first, ("genesis",), genesis)

    members = [
        {"id": r["participant_id"].strip(), "name": r["name"], "role": "member"}
        for r in scenario.participants.iter_rows(named=True)
    ]
    securities = [
        {"id": r["security_id"].strip(), "currency": r["currency"].strip(), "lot_size": _int_or_text(r["lot_size"])}
        for r in scenario.securities.iter_rows(named=True)
    ]
    holdings = [
        {"participant": r["participant_id"].strip(), "security": r["security_id"].strip(),
         "quantity": _int_or_text(r["quantity"])}
        for r in scenario.holdings.iter_rows(named=True)
    ]
    deposits = [
        {"participant": r["participant_id"].strip(), "currency": r["currency"].strip(),
         "amount_minor": to_minor(r["amount"], r["currency"].strip())}
        for r in scenario.cash.iter_rows(named=True)
    ]
    setup = [
        (CCP, "setup-admit", Kind.admit, "participants", members),
        (CSD, "setup-securities", Kind.register_securities, "securities", securities),
        (CSD, "setup-holdings", Kind.issue, "holdings", holdings),
        (CENTRAL_BANK, "setup-cash", Kind.deposit, "deposits", deposits),
        *_lending_setup(scenario, {m["id"] for m in members}),
    ]
    chunks = [
        (who, f"{sid}-{k}", kind, name, items[start:start + JSON_ITEMS_MAX])
        for who, sid, kind, name, items in setup
        for k, start in enumerate(range(0, max(len(items), 1), JSON_ITEMS_MAX))
    ]

    def build_setup() -> list[Submission]:
        for member in members:
            member["public_key"] = keys[member["id"]].public_hex
        return [sign(keys[who], who, sid, kind, encode_json({name: items})) for who, sid, kind, name, items in chunks]

    yield Step(first, tuple(c[1] for c in chunks), build_setup, setup=True)

    if "submitter" not in frame.columns:
        frame = frame.with_columns(submitter=pl.lit(""))
    frame = frame.with_columns(
        submitter=pl.when(pl.col("submitter").cast(pl.String).str.strip_chars() == "").then(pl.lit(EXCHANGE))
        .otherwise(pl.col("submitter").cast(pl.String).str.strip_chars())
        .cast(pl.Categorical)
    )
    # one frame ordered by (day sent, submitter), cut into zero-copy slices
    in_order = frame["send_day"].is_sorted() and frame["submitter"].n_unique() <= 1
    if not in_order:
        frame = frame.sort(["send_day", "submitter"], maintain_order=True)
    groups = (
        frame.select("send_day", "submitter")
        .with_row_index("row")
        .group_by(["send_day", "submitter"], maintain_order=True)
        .agg(start=pl.col("row").min(), rows=pl.len())
    )
    by_day: dict[int, list[tuple[str, int, int]]] = {}
    for send_day, submitter, start, rows in groups.iter_rows():
        by_day.setdefault(int(send_day), []).append((str(submitter), int(start), int(rows)))
    for day in days:
        for submitter, start, rows in sorted(by_day.get((day - dt.date(1970, 1, 1)).days, [])):
            for k, offset in enumerate(range(0, rows, TRADES_PER_SUBMISSION)):
                chunk = frame.slice(start + offset, min(TRADES_PER_SUBMISSION, rows - offset))
                sid = f"trades-{day.isoformat()}-{submitter}-{k}"
                yield Step(day, (sid,), _trade_builder(keys, submitter, sid, chunk.select(TRADE_COLUMNS)))
        iso = day.isoformat()
        yield Step(day, (f"cutoff-{iso}", f"settle-{iso}"), _close_builder(keys, iso))


def _trade_builder(keys: Keys, submitter: str, sid: str, chunk: pl.DataFrame) -> Callable[[], list[Submission]]:
    def build() -> list[Submission]:
        if not keys.store.has(submitter):
            raise InputError(f"trades submitted by {submitter!r}, a participant this run holds no key of")
        return [sign(keys[submitter], submitter, sid, Kind.trades, encode_trades(chunk))]

    return build


def _close_builder(keys: Keys, iso: str) -> Callable[[], list[Submission]]:
    def build() -> list[Submission]:
        return [
            sign(keys[CCP], CCP, f"cutoff-{iso}", Kind.cutoff, encode_json({"business_date": iso})),
            sign(keys[CCP], CCP, f"settle-{iso}", Kind.settle, encode_json({"settlement_date": iso})),
        ]

    return build


def open_node(data_dir: Path, progress: Progress | None = None) -> Node:
    """The node of a data directory, replayed to its head."""
    keys = Keys(data_dir)
    store = SqliteStore(data_dir / LEDGER_FILE)
    head = store.head_height()
    return Node.open(
        store, SEQUENCER, keys[SEQUENCER],
        progress=(lambda h, n: progress("replay", h + 1, n + 1)) if progress and head >= 0 else None,
    )


def run_scenario(
    scenario: Scenario,
    data_dir: Path,
    cycle_days: int = 2,
    progress: Progress | None = None,
    settlement: dict[str, Any] | None = None,
) -> Node:
    """Run (or resume) the whole plan on the data directory's ledger; returns the node at its head.

    ``settlement`` is the genesis settlement configuration (``SettlementConfig.from_json`` form);
    None leaves the default rules (net batch, DvP model 3). A resumed run must ask for the rules
    its ledger was made with.
    """
    keys = Keys(data_dir)
    for pid in scenario.participants["participant_id"].to_list():
        keys[str(pid).strip()]
    node = open_node(data_dir, progress)
    steps = list(plan(scenario, keys, cycle_days, settlement))
    head = node.height
    if head >= 0:
        made_with = json.loads(node.store.block(0).submissions[0].payload).get("settlement")
        if made_with != settlement:
            raise InputError(f"the data directory's ledger was made with settlement rules {made_with}, "
                             f"not {settlement}; use a new --data")
    if head >= len(steps):
        raise InputError("the data directory holds a longer ledger than this scenario makes")
    for height in range(head + 1):
        stored = tuple(s.submission_id for s in node.store.block(height).submissions)
        if stored != steps[height].ids:
            raise InputError(
                f"the data directory holds another ledger (block {height} differs); use a new --data"
            )
    per_day: dict[dt.date, int] = {}
    for height, step in enumerate(steps):
        per_day[step.day] = per_day.get(step.day, 0) + 1
        if height <= head:
            continue
        for sub in step.build():
            node.submit(sub)
        n = per_day[step.day]
        node.seal(step.day, block_timestamp(step.day, n))
        refused = [r for r in node.last_receipts if r.status != "accepted"]
        if refused:
            # a refused set-up or cut-off leaves nothing meaningful to run; a refused trade batch
            # is reported with the rest of the results
            first_refused = refused[0]
            message = f"submission {first_refused.submission_id} refused: {first_refused.status} {first_refused.reason}"
            if step.setup or not step.ids[0].startswith("trades-"):
                raise InputError(message)
        if progress:
            progress("blocks", height + 1, len(steps))
    return node
