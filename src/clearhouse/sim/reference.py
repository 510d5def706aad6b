"""A slow, obviously correct reference model of the ledger's rules, in plain Python.

Dicts, lists and loops only (no numpy): the documented rules written out one at a time, so that
the vectorised state machine can be compared with them block by block. It re-implements the
submission checks (idempotency, submitter, signature, authority, payload form), the result code
of every trade in its documented order of precedence (``clearhouse.core.results``), the value of
a trade (quantity x price, rounded half up to the minor unit), novation and netting per (member,
security, settlement date), net DvP settlement by the deselection rules ``settlement/dvp.py``
documents, fails carried forward into the next cycle, and the invariants
(no negative balance, conservation, a flat CCP). Only the wire forms are borrowed: the trade
batch decoder, the signed digest of a submission and the signature check. It models the default
settlement rules (net DvP against the CCP, settled in full or not at all); contracts and oracle
observations are outside it.
Imports clearhouse.core, clearhouse.ledger (records, crypto), clearhouse.clearing.batch and the
limits of clearhouse.state.machine only.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, TypeGuard

from clearhouse.clearing.batch import decode_trades
from clearhouse.core.errors import InputError
from clearhouse.core.money import minor_digits
from clearhouse.core.results import FailReason, TradeResult
from clearhouse.ledger.crypto import verify_signature
from clearhouse.ledger.records import Submission
from clearhouse.state import machine as limits

EPOCH = dt.date(1970, 1, 1)
#: who may submit what: the CCP admits members and runs cut-off and settlement, the CSD registers
#: and issues securities, the central bank moves central-bank money, members and venues report trades
MAY_SUBMIT = {
    "admit": {"ccp"},
    "register_securities": {"csd"},
    "issue": {"csd"},
    "deposit": {"central_bank"},
    "trades": {"member", "venue"},
    "cutoff": {"ccp"},
    "settle": {"ccp"},
}
ROLES = {"sequencer", "ccp", "csd", "central_bank", "venue", "member", "regulator", "oracle"}
ADMISSIBLE = {"member", "venue", "regulator", "oracle"}
#: the Unicode White_Space characters, which the intake strips from both ends of a field
WHITESPACE = (
    "\t\n\x0b\x0c\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008"
    "\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)
BODY_COLUMNS = ("trade_date", "buyer", "seller", "security_id", "quantity", "price", "settlement_date")
QUANTITY_MAX = 10**12
PRICE_WHOLE_MAX = 10**9
VALUE_MAX_MINOR = 10**15
VALUE_E6_MAX = 4 * 10**18


class Malformed(Exception):
    """The payload cannot be read as its kind's form."""


def day_of(text: str) -> int | None:
    """Day number of an ISO date written YYYY-MM-DD in ASCII digits; None if it is not one."""
    if not re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", text):
        return None
    try:
        return (dt.date(int(text[:4]), int(text[5:7]), int(text[8:])) - EPOCH).days
    except ValueError:
        return None


def price_millionths(text: str) -> tuple[bool, bool, int]:
    """(well formed, negative, price in millionths) of a decimal price as the intake reads it."""
    negative = text.startswith("-")
    unsigned = text[1:] if negative else text
    m = re.fullmatch(r"([0-9]{1,10})(?:\.([0-9]{1,12}))?", unsigned)
    if not m:
        return False, negative, 0
    frac = (m.group(2) or "").rstrip("0")
    whole = int(m.group(1))
    if len(frac) > 6 or whole > PRICE_WHOLE_MAX:
        return False, negative, 0
    return True, negative, whole * 10**6 + int(frac.ljust(6, "0"))


@dataclass(frozen=True, slots=True)
class Party:
    """A participant. Attributes: id, role, public_key."""

    id: str
    role: str
    public_key: bytes


@dataclass(frozen=True, slots=True)
class Instrument:
    """A security. Attributes: id, currency, lot_size."""

    id: str
    currency: str
    lot_size: int


@dataclass(frozen=True, slots=True)
class Trade:
    """An accepted trade waiting for the next cut-off (indices into the reference's lists)."""

    buyer: int
    seller: int
    security: int
    quantity: int
    value_minor: int
    settlement_day: int


@dataclass(frozen=True, slots=True)
class Instruction:
    """One settlement instruction of a cycle and what became of it.

    Attributes: member, security (indices), quantity, cash, first_due, settled, reason ('' if
    settled, else a FailReason value).
    """

    member: int
    security: int
    quantity: int
    cash: int
    first_due: int
    settled: bool
    reason: str


@dataclass(frozen=True, slots=True)
class Outcome:
    """What the reference expects the ledger to answer to one submission.

    Attributes: submission_id, status (a SubmissionStatus value), codes (one TradeResult byte per
    row for a trade batch, else empty).
    """

    submission_id: str
    status: str
    codes: bytes = b""


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Balances and open positions by id, comparable across implementations.

    Attributes:
        balances: (``"securities"`` | ``"cash"``, owner, security or currency) -> amount, non-zero only.
        positions: (member, security, settlement day) -> (quantity, cash, first due day).
    """

    balances: dict[tuple[str, str, str], int]
    positions: dict[tuple[str, str, int], tuple[int, int, int]]


@dataclass
class Reference:
    """The ledger's state and rules, spelled out."""

    parties: list[Party] = field(default_factory=list)
    party_index: dict[str, int] = field(default_factory=dict)
    instruments: list[Instrument] = field(default_factory=list)
    instrument_index: dict[str, int] = field(default_factory=dict)
    currencies: list[str] = field(default_factory=list)
    holidays: set[dt.date] = field(default_factory=set)
    holding: dict[tuple[int, int], int] = field(default_factory=dict)
    cash: dict[tuple[int, str], int] = field(default_factory=dict)
    issued: dict[int, int] = field(default_factory=dict)
    deposited: dict[str, int] = field(default_factory=dict)
    ccp_own_holding: dict[int, int] = field(default_factory=dict)
    ccp_own_cash: dict[str, int] = field(default_factory=dict)
    seen: dict[tuple[str, str], bytes] = field(default_factory=dict)
    accepted_trades: dict[str, tuple[str, ...]] = field(default_factory=dict)
    pending: list[Trade] = field(default_factory=list)
    positions: dict[tuple[int, int, int], list[int]] = field(default_factory=dict)
    cycles: list[tuple[int, list[Instruction]]] = field(default_factory=list)
    trades_submitted: int = 0
    trades_accepted: int = 0
    height: int = -1

    # ---------------------------------------------------------------- look-ups

    @property
    def ccp(self) -> int:
        for i, p in enumerate(self.parties):
            if p.role == "ccp":
                return i
        return -1

    def is_business_day(self, day: int) -> bool:
        date = EPOCH + dt.timedelta(days=day)
        return date.weekday() < 5 and date not in self.holidays

    def _add_party(self, party: Party) -> None:
        self.party_index[party.id] = len(self.parties)
        self.parties.append(party)

    def _add_currency(self, ccy: str) -> None:
        if ccy not in self.currencies:
            self.currencies.append(ccy)

    # ---------------------------------------------------------------- blocks

    def apply_block(self, height: int, day: dt.date, submissions: tuple[Submission, ...]) -> list[Outcome]:
        """Apply one block; returns the expected outcome of each submission, in order."""
        if height != self.height + 1:
            raise ValueError(f"reference fed block {height} after {self.height}")
        outcomes = [self._submission(height, pos, day, sub) for pos, sub in enumerate(submissions)]
        self.height = height
        return outcomes

    def _submission(self, height: int, position: int, day: dt.date, sub: Submission) -> Outcome:
        sid = sub.submission_id
        if not sid or len(sid) > limits.ID_MAX_LEN:
            return Outcome(sid, "malformed_payload")
        key = (sub.submitter, sid)
        if key in self.seen:
            return Outcome(sid, "exists" if self.seen[key] == sub.body_digest() else "exists_with_different_body")
        first = height == 0 and position == 0
        if sub.kind == "genesis":
            if not first:
                return Outcome(sid, "not_authorised")
            return self._accept(sub, self._genesis)
        if first:
            return Outcome(sid, "rejected")
        i = self.party_index.get(sub.submitter)
        if i is None:
            return Outcome(sid, "unknown_submitter")
        if not verify_signature(self.parties[i].public_key, sub.signing_digest(), sub.signature):
            return Outcome(sid, "bad_signature")
        if sub.kind not in MAY_SUBMIT:
            return Outcome(sid, "unknown_kind")
        if self.parties[i].role not in MAY_SUBMIT[sub.kind]:
            return Outcome(sid, "not_authorised")
        handler = {
            "admit": self._admit, "register_securities": self._register, "issue": self._issue,
            "deposit": self._deposit, "trades": lambda s: self._trades(s, day),
            "cutoff": lambda s: self._cutoff(s, day), "settle": lambda s: self._settle(s, day),
        }[sub.kind]
        return self._accept(sub, handler)

    def _accept(self, sub: Submission, handler: Any) -> Outcome:
        try:
            status, codes = handler(sub)
        except Malformed:
            return Outcome(sub.submission_id, "malformed_payload")
        if status == "accepted":
            self.seen[(sub.submitter, sub.submission_id)] = sub.body_digest()
        return Outcome(sub.submission_id, status, codes)

    @staticmethod
    def _json(sub: Submission) -> Any:
        try:
            return json.loads(sub.payload.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            raise Malformed(str(exc)) from exc

    def _items(self, sub: Submission, name: str) -> list[dict[str, Any]]:
        body = self._json(sub)
        items = body.get(name) if isinstance(body, dict) else None
        if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
            raise Malformed(f"no list of objects under {name}")
        if len(items) > limits.JSON_ITEMS_MAX:
            raise Malformed("too many items")
        return items

    # ---------------------------------------------------------------- reference data

    def _genesis(self, sub: Submission) -> tuple[str, bytes]:
        cfg = self._json(sub)
        try:
            seq = cfg["sequencer"]
            key = bytes.fromhex(seq["public_key"])
            people = cfg["participants"]
            holidays = [dt.date.fromisoformat(h) for h in cfg.get("holidays", [])]
        except (KeyError, TypeError, ValueError) as exc:
            raise Malformed(str(exc)) from exc
        if sub.submitter != seq.get("id") or not verify_signature(key, sub.signing_digest(), sub.signature):
            return "bad_signature", b""
        self.holidays = set(holidays)
        self._add_party(Party(seq["id"], "sequencer", key))
        self._add_parties(people, ROLES)
        return "accepted", b""

    def _add_parties(self, items: list[dict[str, Any]], roles: set[str]) -> None:
        for item in items:
            pid = str(item.get("id", ""))
            role = item.get("role", "member")
            if not isinstance(role, str) or role not in ROLES:
                continue
            try:
                key = bytes.fromhex(str(item.get("public_key", "")))
            except ValueError:
                continue
            if not pid or len(pid) > limits.ID_MAX_LEN or pid in self.party_index:
                continue
            if len(key) == 32 and role in roles:
                self._add_party(Party(pid, role, key))

    def _admit(self, sub: Submission) -> tuple[str, bytes]:
        self._add_parties(self._items(sub, "participants"), ADMISSIBLE)
        return "accepted", b""

    @staticmethod
    def _whole(value: Any, low: int, high: int) -> TypeGuard[int]:
        return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high

    def _register(self, sub: Submission) -> tuple[str, bytes]:
        for item in self._items(sub, "securities"):
            sid = str(item.get("id", ""))
            ccy = str(item.get("currency", ""))
            lot = item.get("lot_size", 1)
            valid_ccy = len(ccy) == 3 and ccy.isalpha() and ccy.isupper()
            if sid and len(sid) <= limits.ID_MAX_LEN and valid_ccy and self._whole(lot, 1, 10**9) \
                    and sid not in self.instrument_index:
                self._add_currency(ccy)
                self.instrument_index[sid] = len(self.instruments)
                self.instruments.append(Instrument(sid, ccy, lot))
        return "accepted", b""

    def _issue(self, sub: Submission) -> tuple[str, bytes]:
        for item in self._items(sub, "holdings"):
            p = self.party_index.get(str(item.get("participant", "")))
            s = self.instrument_index.get(str(item.get("security", "")))
            qty = item.get("quantity")
            if p is None or s is None or not self._whole(qty, 1, 10**15):
                continue
            self.holding[(p, s)] = self.holding.get((p, s), 0) + qty
            self.issued[s] = self.issued.get(s, 0) + qty
            if p == self.ccp:
                self.ccp_own_holding[s] = self.ccp_own_holding.get(s, 0) + qty
        return "accepted", b""

    def _deposit(self, sub: Submission) -> tuple[str, bytes]:
        for item in self._items(sub, "deposits"):
            p = self.party_index.get(str(item.get("participant", "")))
            ccy = str(item.get("currency", ""))
            amount = item.get("amount_minor")
            if p is None or not (len(ccy) == 3 and ccy.isalpha() and ccy.isupper()):
                continue
            if not self._whole(amount, -(10**17), 10**17) or amount == 0:
                continue
            if amount < 0 and self.cash.get((p, ccy), 0) + amount < 0:
                continue
            self._add_currency(ccy)
            self.cash[(p, ccy)] = self.cash.get((p, ccy), 0) + amount
            self.deposited[ccy] = self.deposited.get(ccy, 0) + amount
            if p == self.ccp:
                self.ccp_own_cash[ccy] = self.ccp_own_cash.get(ccy, 0) + amount
        return "accepted", b""

    # ---------------------------------------------------------------- trades

    def _trades(self, sub: Submission, day: dt.date) -> tuple[str, bytes]:
        try:
            frame = decode_trades(sub.payload)
        except InputError as exc:
            raise Malformed(str(exc)) from exc
        if frame.height > limits.TRADES_PER_SUBMISSION_MAX:
            return "batch_too_large", b""
        rows = [{c: "" if v is None else str(v) for c, v in r.items()} for r in frame.iter_rows(named=True)]
        codes = self.trade_codes(rows, sub.submitter, (day - EPOCH).days)
        for row, code in zip(rows, codes, strict=True):
            if code == TradeResult.ok:
                self._take(row)
        self.trades_submitted += len(rows)
        self.trades_accepted += sum(1 for c in codes if c == TradeResult.ok)
        return "accepted", bytes(codes)

    def trade_codes(self, rows: list[dict[str, str]], submitter: str, business_day: int) -> list[TradeResult]:
        """The result of every row of a batch, each by the first rule it breaks."""
        first_row: dict[str, int] = {}
        codes: list[TradeResult] = []
        for n, row in enumerate(rows):
            tid = row["trade_id"]
            first = first_row.setdefault(tid, n)
            if first != n and self._body(rows[first]) == self._body(row):
                # a later identical copy takes the first copy's result (`exists` if that was accepted)
                codes.append(TradeResult.exists if codes[first] == TradeResult.ok else codes[first])
            else:
                codes.append(self._trade_code(row, submitter, business_day, repeated=first != n))
        return codes

    @staticmethod
    def _body(row: dict[str, str]) -> tuple[str, ...]:
        """What makes two trades under one id the same trade (the id itself aside)."""
        return tuple(row[c].strip(WHITESPACE) for c in BODY_COLUMNS)

    def _trade_code(self, row: dict[str, str], submitter: str, today: int, repeated: bool) -> TradeResult:
        R = TradeResult
        tid = row["trade_id"]
        f = {c: row[c].strip(WHITESPACE) for c in BODY_COLUMNS}
        td, sd = day_of(f["trade_date"]), day_of(f["settlement_date"])
        qty_ok = re.fullmatch(r"-?[0-9]{1,18}", f["quantity"]) is not None
        qty = int(f["quantity"]) if qty_ok else 0
        price_ok, price_negative, price_e6 = price_millionths(f["price"])
        buyer, seller = self.party_index.get(f["buyer"]), self.party_index.get(f["seller"])
        sec = self.instrument_index.get(f["security_id"])
        if not 1 <= len(tid) <= limits.ID_MAX_LEN or re.search(r"[\x00-\x1f\x7f]", tid):
            return R.invalid_trade_id
        if td is None or td < 0:
            return R.bad_trade_date
        if sd is None or sd < 0:
            return R.bad_settlement_date
        if not qty_ok:
            return R.invalid_quantity
        if qty <= 0:
            return R.non_positive_quantity
        if not price_ok and not price_negative:
            return R.invalid_price
        if price_negative or price_e6 <= 0:
            return R.non_positive_price
        if f["buyer"] == f["seller"]:
            return R.buyer_equals_seller
        if buyer is None:
            return R.unknown_buyer
        if seller is None:
            return R.unknown_seller
        if sec is None:
            return R.unknown_security
        if self.parties[buyer].role != "member" or self.parties[seller].role != "member":
            return R.not_a_clearing_member
        me = self.parties[self.party_index[submitter]]
        if me.role != "venue" and submitter not in (f["buyer"], f["seller"]):
            return R.not_party_to_trade
        if tid in self.accepted_trades:
            return R.exists if self.accepted_trades[tid] == self._body(row) else R.exists_with_different_body
        if repeated:
            return R.duplicate_in_batch
        instrument = self.instruments[sec]
        if qty % instrument.lot_size:
            return R.quantity_not_lot_multiple
        divisor = 10 ** (6 - minor_digits(instrument.currency))
        if qty > QUANTITY_MAX or qty * price_e6 > VALUE_E6_MAX or qty * price_e6 > VALUE_MAX_MINOR * divisor:
            return R.value_too_large
        if td > today:
            return R.trade_date_in_future
        if not self.is_business_day(td):
            return R.trade_date_not_business_day
        if sd < td:
            return R.settlement_date_before_trade_date
        if not self.is_business_day(sd):
            return R.settlement_date_not_business_day
        if sd < today:
            return R.settlement_date_passed
        return R.ok

    def _take(self, row: dict[str, str]) -> None:
        """Keep an accepted row (every field already checked) for the next cut-off."""
        f = {c: row[c].strip(WHITESPACE) for c in BODY_COLUMNS}
        sec = self.instrument_index[f["security_id"]]
        qty = int(f["quantity"])
        value = (qty * Decimal(f["price"])).scaleb(minor_digits(self.instruments[sec].currency))
        self.pending.append(Trade(
            buyer=self.party_index[f["buyer"]], seller=self.party_index[f["seller"]], security=sec,
            quantity=qty, value_minor=int(value.quantize(Decimal(1), rounding=ROUND_HALF_UP)),
            settlement_day=(dt.date.fromisoformat(f["settlement_date"]) - EPOCH).days,
        ))
        self.accepted_trades[row["trade_id"]] = self._body(row)

    # ---------------------------------------------------------------- cut-off and settlement

    def _command_day(self, sub: Submission, name: str, day: dt.date) -> bool:
        body = self._json(sub)
        return isinstance(body, dict) and body.get(name) == day.isoformat()

    def _cutoff(self, sub: Submission, day: dt.date) -> tuple[str, bytes]:
        """Novate every pending trade into two obligations facing the CCP and net them."""
        if not self._command_day(sub, "business_date", day):
            return "rejected", b""
        nets: dict[tuple[int, int, int], list[int]] = {}
        for t in self.pending:
            for member, sign in ((t.buyer, 1), (t.seller, -1)):
                row = nets.setdefault((t.settlement_day, member, t.security), [0, 0])
                row[0] += sign * t.quantity
                row[1] -= sign * t.value_minor
        self.pending = []
        for (d, member, sec), (qty, cash) in nets.items():
            if qty or cash:
                self._add_position(d, member, sec, qty, cash, d)
        return "accepted", b""

    def _add_position(self, day: int, member: int, sec: int, qty: int, cash: int, first_due: int) -> None:
        row = self.positions.get((day, member, sec))
        if row is None:
            self.positions[(day, member, sec)] = [qty, cash, first_due]
            return
        row[0] += qty
        row[1] += cash
        row[2] = min(row[2], first_due)
        if row[0] == 0 and row[1] == 0:
            del self.positions[(day, member, sec)]

    def _settle(self, sub: Submission, day: dt.date) -> tuple[str, bytes]:
        """Roll every due position into one instruction per (member, security) and settle the batch."""
        if not self._command_day(sub, "settlement_date", day):
            return "rejected", b""
        today = (day - EPOCH).days
        rolled: dict[tuple[int, int], list[int]] = {}
        for (d, member, sec), (qty, cash, first) in sorted(self.positions.items()):
            if d <= today:
                row = rolled.setdefault((member, sec), [0, 0, first])
                row[0] += qty
                row[1] += cash
                row[2] = min(row[2], first)
                del self.positions[(d, member, sec)]
        batch = [(m, s, q, c, f) for (m, s), (q, c, f) in sorted(rolled.items()) if q or c]
        settled, reasons = self.deselect(batch)
        ccp = self.ccp
        done: list[Instruction] = []
        for (m, s, q, c, f), ok, why in zip(batch, settled, reasons, strict=True):
            ccy = self.instruments[s].currency
            if ok:
                self.holding[(m, s)] = self.holding.get((m, s), 0) + q
                self.holding[(ccp, s)] = self.holding.get((ccp, s), 0) - q
                self.cash[(m, ccy)] = self.cash.get((m, ccy), 0) + c
                self.cash[(ccp, ccy)] = self.cash.get((ccp, ccy), 0) - c
            else:
                self._add_position(today, m, s, q, c, f)
            done.append(Instruction(m, s, q, c, f, ok, why))
        self.cycles.append((today, done))
        return "accepted", b""

    def deselect(self, batch: list[tuple[int, int, int, int, int]]) -> tuple[list[bool], list[str]]:
        """Which instructions of a net batch settle, by the deselection rules of ``settlement/dvp.py``.

        ``batch`` rows are (member, security, quantity, cash, first_due); > 0 means the member
        receives. Seniority: oldest first-due date first, then member, then security.
        """
        ccp = self.ccp
        n = len(batch)
        selected = [True] * n
        reason = [""] * n
        senior = sorted(range(n), key=lambda i: (batch[i][4], batch[i][0], batch[i][1]))
        currency = [self.instruments[s].currency for _, s, _, _, _ in batch]
        link = FailReason.linked_instruction_failed.value

        def drop(i: int, why: str) -> None:
            selected[i], reason[i] = False, why

        # 1. a delivery the member cannot cover from its holding fails
        for i, (m, s, q, _, _) in enumerate(batch):
            if q < 0 and self.holding.get((m, s), 0) + q < 0:
                drop(i, FailReason.insufficient_securities.value)
        while True:
            changed = False
            # 2. a member short of cash in a currency fails every paying instruction there
            net: dict[tuple[int, str], int] = {}
            for i, (m, _, _, c, _) in enumerate(batch):
                if selected[i]:
                    net[(m, currency[i])] = net.get((m, currency[i]), 0) + c
            for i, (m, _, _, c, _) in enumerate(batch):
                if selected[i] and c < 0 and self.cash.get((m, currency[i]), 0) + net[(m, currency[i])] < 0:
                    drop(i, FailReason.insufficient_cash.value)
                    changed = True
            # 3a. receipts are allocated, most senior first, from what the CCP holds and receives;
            # one that does not fit is skipped and a later, smaller one may still fit
            delivered: dict[int, int] = {}
            for i, (_, s, q, _, _) in enumerate(batch):
                if selected[i] and q < 0:
                    delivered[s] = delivered.get(s, 0) - q
            available = {s: self.holding.get((ccp, s), 0) + delivered.get(s, 0) for s in range(len(self.instruments))}
            receipts = [i for i in senior if selected[i] and batch[i][2] > 0]
            for i in self._skipped(receipts, lambda i: batch[i][1], lambda i: batch[i][2], available):
                drop(i, link)
                changed = True
            # 3b. where the CCP cannot pay every delivery in a currency, it first gives back
            # deliveries it does not need for the receipts it serves (most junior first) ...
            paid_in: dict[str, int] = {}
            paid_out: dict[str, int] = {}
            for i, (_, _, _, c, _) in enumerate(batch):
                if selected[i] and c < 0:
                    paid_in[currency[i]] = paid_in.get(currency[i], 0) - c
                if selected[i] and c > 0:
                    paid_out[currency[i]] = paid_out.get(currency[i], 0) + c
            funds = {k: self.cash.get((ccp, k), 0) + paid_in.get(k, 0) for k in self.currencies}
            short = {k for k in self.currencies if paid_out.get(k, 0) > funds[k]}
            if short:
                received: dict[int, int] = {}
                for i, (_, s, q, _, _) in enumerate(batch):
                    if selected[i] and q > 0:
                        received[s] = received.get(s, 0) + q
                surplus = {s: available[s] - received.get(s, 0) for s in available}
                juniors = [i for i in reversed(senior)
                           if selected[i] and batch[i][2] < 0 and currency[i] in short]
                too_big = set(self._skipped(juniors, lambda i: batch[i][1], lambda i: -batch[i][2], surplus))
                spare = [i for i in juniors if i not in too_big]
                # ... and only when it has none to give back, cuts the payments it cannot make
                if not spare:
                    payees = [i for i in senior if selected[i] and batch[i][3] > 0]
                    spare = self._skipped(payees, lambda i: currency[i], lambda i: batch[i][3], funds)
                for i in spare:
                    drop(i, link)
                    changed = True
            if not changed:
                return selected, reason

    @staticmethod
    def _skipped(candidates: list[int], group: Any, amount: Any, room: dict[Any, int]) -> list[int]:
        """Candidates (in the order given) that do not fit their group's room when taken greedily."""
        total: dict[Any, int] = {}
        for i in candidates:
            total[group(i)] = total.get(group(i), 0) + amount(i)
        left = dict(room)
        skipped = []
        for i in candidates:
            g = group(i)
            if total[g] <= room[g]:
                continue
            if amount(i) <= left[g]:
                left[g] -= amount(i)
            else:
                skipped.append(i)
        return skipped

    # ---------------------------------------------------------------- checks and views

    def invariant_problems(self) -> list[str]:
        """The documented invariants, checked the slow way; each breach described."""
        problems = []
        for (p, s), qty in self.holding.items():
            if qty < 0:
                problems.append(f"{self.parties[p].id} holds {qty} of {self.instruments[s].id}")
        for (p, ccy), amount in self.cash.items():
            if amount < 0:
                problems.append(f"{self.parties[p].id} has {amount} {ccy}")
        open_qty: dict[int, int] = {}
        open_cash: dict[str, int] = {}
        for (_, _, s), (q, c, _) in self.positions.items():
            open_qty[s] = open_qty.get(s, 0) + q
            ccy = self.instruments[s].currency
            open_cash[ccy] = open_cash.get(ccy, 0) + c
        ccp = self.ccp
        for s, inst in enumerate(self.instruments):
            held = sum(q for (_, k), q in self.holding.items() if k == s)
            if held != self.issued.get(s, 0):
                problems.append(f"{inst.id}: {held} held but {self.issued.get(s, 0)} issued")
            ccp_net = self.holding.get((ccp, s), 0) - self.ccp_own_holding.get(s, 0)
            if ccp_net != open_qty.get(s, 0):
                problems.append(f"the CCP holds {ccp_net} of {inst.id} for open positions of {open_qty.get(s, 0)}")
        for ccy in self.currencies:
            total = sum(a for (_, k), a in self.cash.items() if k == ccy)
            if total != self.deposited.get(ccy, 0):
                problems.append(f"{ccy}: {total} held but {self.deposited.get(ccy, 0)} deposited")
            ccp_net = self.cash.get((ccp, ccy), 0) - self.ccp_own_cash.get(ccy, 0)
            if ccp_net != open_cash.get(ccy, 0):
                problems.append(f"the CCP holds {ccp_net} {ccy} for open positions of {open_cash.get(ccy, 0)}")
        return problems

    def snapshot(self) -> Snapshot:
        balances: dict[tuple[str, str, str], int] = {}
        for (p, s), qty in self.holding.items():
            if qty:
                balances[("securities", self.parties[p].id, self.instruments[s].id)] = qty
        for (p, ccy), amount in self.cash.items():
            if amount:
                balances[("cash", self.parties[p].id, ccy)] = amount
        positions = {
            (self.parties[m].id, self.instruments[s].id, d): (q, c, f)
            for (d, m, s), (q, c, f) in self.positions.items()
        }
        return Snapshot(balances, positions)
