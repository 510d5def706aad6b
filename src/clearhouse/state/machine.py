"""The deterministic state machine: ordered submissions in, new state, receipts and state root out.

Nothing here reads the clock, the network, the OS or randomness: the block's business date is
passed in, and every node that applies the same blocks reaches byte-identical state and the same
state root. Submissions are checked in this order: idempotency of the submission id (per
submitter), a known submitter, its signature, its role's authority for the kind, the payload's
form and size; only then are its items looked at (see ``clearhouse.core.results``).
Imports clearhouse.core, clearhouse.ledger (records, merkle, crypto), clearhouse.clearing,
clearhouse.settlement and clearhouse.state only.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from clearhouse.clearing.batch import decode_trades
from clearhouse.clearing.idindex import IdIndex
from clearhouse.clearing.intake import PRICE_DECIMALS, IntakeContext, IntakeResult, validate_trades
from clearhouse.clearing.netting import NetPositions, net_trades
from clearhouse.contracts.engine import ContractEngine
from clearhouse.core.calendar import BusinessCalendar, day_number
from clearhouse.core.errors import InputError, invariant
from clearhouse.core.exact import exact_bincount
from clearhouse.core.hashing import ZERO_DIGEST, canonical_json, digest_arrays, sha256
from clearhouse.core.money import minor_digits
from clearhouse.core.results import SubmissionStatus as S
from clearhouse.core.results import TradeResult
from clearhouse.ledger.crypto import verify_signature
from clearhouse.ledger.merkle import merkle_root
from clearhouse.ledger.records import Submission
from clearhouse.settlement.cycle import (
    BOOK_KINDS,
    AcceptedTrades,
    CycleInstructions,
    PartyRecord,
    SettlementBook,
    SettlementConfig,
)
from clearhouse.state.kinds import AUTHORISED, Kind, Role, decode_json

TRADES_PER_SUBMISSION_MAX = 2_000_000
CASH_LINE_PREFIX = "CASH."  # reserved security ids: the cash-only line of each currency
JSON_ITEMS_MAX = 100_000
ID_MAX_LEN = 64


@dataclass(frozen=True, slots=True)
class Participant:
    """A participant of the ledger. Attributes: id, name, role, public_key (32 bytes Ed25519)."""

    id: str
    name: str
    role: Role
    public_key: bytes


@dataclass(frozen=True, slots=True)
class Security:
    """A security held at the CSD. Attributes: id (ISIN), currency, lot_size (units per lot)."""

    id: str
    currency: str
    lot_size: int


@dataclass(frozen=True, slots=True)
class Receipt:
    """What the state machine answered to one submission; hashed into the block's results root.

    Attributes:
        submission_id: the submission's id.
        status: a SubmissionStatus value.
        reason: text for a rejected submission, '' otherwise.
        summary: counts and figures of what it did (JSON-able).
        codes: for a trade batch, one TradeResult byte per row; empty otherwise.
    """

    submission_id: str
    status: str
    reason: str
    summary: dict[str, Any]
    codes: bytes = b""

    def encode(self) -> bytes:
        head = canonical_json(
            {"id": self.submission_id, "status": self.status, "reason": self.reason,
             "summary": self.summary}
        )
        return len(head).to_bytes(4, "little") + head + self.codes


@dataclass(frozen=True, slots=True)
class ItemRejection:
    """A rejected item, kept with its reason. Attributes: submission_id, item_id, reason."""

    submission_id: str
    item_id: str
    reason: str


#: what a kind's handler answers: summary, per-item result codes, rejected items, status, reason
Handled = tuple[dict[str, Any], bytes, list[ItemRejection], S, str]
Handler = Callable[[Submission, dt.date], Handled]


@dataclass(slots=True)
class Positions:
    """Open net positions against the CCP: netted, not yet settled (fails included).

    Attributes:
        member, security: indices; day: settlement day number the position is due;
        quantity (> 0 receive), cash (minor units, > 0 receive); first_due: day the oldest part
        of it first fell due (fail age is counted from it).
    """

    member: np.ndarray
    security: np.ndarray
    day: np.ndarray
    quantity: np.ndarray
    cash: np.ndarray
    first_due: np.ndarray

    FIELDS = ("member", "security", "day", "quantity", "cash", "first_due")

    @classmethod
    def empty(cls) -> Positions:
        return cls(*(np.zeros(0, dtype=np.int64) for _ in cls.FIELDS))

    def columns(self) -> list[np.ndarray]:
        return [getattr(self, f) for f in self.FIELDS]

    def __len__(self) -> int:
        return len(self.member)

    def select(self, mask: np.ndarray) -> Positions:
        return Positions(*(c[mask] for c in self.columns()))

    def merged(self, other: Positions, n_participants: int, n_securities: int) -> Positions:
        """Both sets of rows, summed per (day, member, security), sorted, zero rows dropped."""
        cols = [np.concatenate([a, b]) for a, b in zip(self.columns(), other.columns(), strict=True)]
        member, security, day, qty, cash, first = cols
        if len(member) == 0:
            return Positions.empty()
        key = (day * n_participants + member) * n_securities + security
        uniq, inv = np.unique(key, return_inverse=True)
        q = exact_bincount(inv, qty, len(uniq))
        c = exact_bincount(inv, cash, len(uniq))
        f = np.full(len(uniq), np.iinfo(np.int64).max)
        np.minimum.at(f, inv, first)
        keep = (q != 0) | (c != 0)
        u = uniq[keep]
        return Positions(
            member=(u // n_securities) % n_participants,
            security=u % n_securities,
            day=u // (n_securities * n_participants),
            quantity=q[keep],
            cash=c[keep],
            first_due=f[keep],
        )


@dataclass(frozen=True, slots=True)
class PendingTrades:
    """Accepted trades awaiting the next cut-off, only the columns netting needs, compactly.

    Attributes: buyer, seller, security (int32 indices); quantity, value (int64);
    settlement_day (int32 day number); partial_allowed (bool).
    """

    buyer: np.ndarray
    seller: np.ndarray
    security: np.ndarray
    quantity: np.ndarray
    value: np.ndarray
    settlement_day: np.ndarray
    partial_allowed: np.ndarray

    @classmethod
    def of(cls, r: IntakeResult) -> PendingTrades:
        return cls(r.buyer.astype(np.int32), r.seller.astype(np.int32), r.security.astype(np.int32),
                   r.quantity, r.value, r.settlement_day.astype(np.int32), r.partial_allowed)

    def __len__(self) -> int:
        return len(self.quantity)


@dataclass(slots=True)
class History:
    """What reports read: every result and every netting and settlement outcome, from the log."""

    submitted: int = 0
    accepted: int = 0
    rejected: list[ItemRejection] = field(default_factory=list)
    reference_rejected: list[ItemRejection] = field(default_factory=list)
    refused: list[Receipt] = field(default_factory=list)
    nettings: list[NetPositions] = field(default_factory=list)
    cycles: list[PartyRecord] = field(default_factory=list)


class StateMachine:
    """The ledger's state and the rules that change it."""

    def __init__(self) -> None:
        self.participants: list[Participant] = []
        self.pindex: dict[str, int] = {}
        self.securities: list[Security] = []
        self.sindex: dict[str, int] = {}
        self.currencies: list[str] = []
        self.cindex: dict[str, int] = {}
        self.calendar = BusinessCalendar.of()
        self.sec_bal = np.zeros((0, 0), dtype=np.int64)
        self.cash_bal = np.zeros((0, 0), dtype=np.int64)
        self.issued = np.zeros(0, dtype=np.int64)
        self.deposited = np.zeros(0, dtype=np.int64)
        self.ccp_own_sec = np.zeros(0, dtype=np.int64)
        self.ccp_own_cash = np.zeros(0, dtype=np.int64)
        self.ids = IdIndex()
        self.pending: list[PendingTrades] = []
        self.positions = Positions.empty()
        self.trades_root = ZERO_DIGEST
        self.seen: dict[tuple[str, str], bytes] = {}
        self.ccp = -1
        self.height = -1
        self.history = History()
        self.settlement = SettlementBook()
        self.contracts = ContractEngine()
        self._ref_digest = ZERO_DIGEST
        self._balances_root = ZERO_DIGEST
        self._balances_dirty = True

    # ---------------------------------------------------------------- reference data

    def participant(self, pid: str) -> Participant | None:
        i = self.pindex.get(pid)
        return None if i is None else self.participants[i]

    def role_index(self, role: Role) -> int:
        for i, p in enumerate(self.participants):
            if p.role == role:
                return i
        return -1

    def _add_participant(self, p: Participant) -> None:
        self.pindex[p.id] = len(self.participants)
        self.participants.append(p)
        self.sec_bal = np.vstack([self.sec_bal, np.zeros((1, self.sec_bal.shape[1]), np.int64)])
        self.cash_bal = np.vstack([self.cash_bal, np.zeros((1, self.cash_bal.shape[1]), np.int64)])
        if p.role == Role.ccp and self.ccp < 0:
            self.ccp = self.pindex[p.id]

    def _add_currency(self, ccy: str) -> int:
        if ccy not in self.cindex:
            self.cindex[ccy] = len(self.currencies)
            self.currencies.append(ccy)
            self.cash_bal = np.hstack([self.cash_bal, np.zeros((len(self.participants), 1), np.int64)])
            self.deposited = np.append(self.deposited, np.int64(0))
            self.ccp_own_cash = np.append(self.ccp_own_cash, np.int64(0))
        return self.cindex[ccy]

    def _add_security(self, s: Security) -> None:
        self._add_currency(s.currency)
        self.sindex[s.id] = len(self.securities)
        self.securities.append(s)
        self.sec_bal = np.hstack([self.sec_bal, np.zeros((len(self.participants), 1), np.int64)])
        self.issued = np.append(self.issued, np.int64(0))
        self.ccp_own_sec = np.append(self.ccp_own_sec, np.int64(0))

    def _refresh_ref_digest(self) -> None:
        self._ref_digest = sha256(
            canonical_json(
                {
                    "participants": [[p.id, p.name, str(p.role), p.public_key.hex()] for p in self.participants],
                    "securities": [[s.id, s.currency, s.lot_size] for s in self.securities],
                    "currencies": self.currencies,
                    "holidays": sorted(d.isoformat() for d in self.calendar.holidays),
                }
            )
        )

    @property
    def security_currency(self) -> np.ndarray:
        return np.array([self.cindex[s.currency] for s in self.securities], dtype=np.int64)

    # ---------------------------------------------------------------- applying blocks

    def apply_block(
        self, height: int, business_date: dt.date, submissions: Sequence[Submission]
    ) -> tuple[list[Receipt], list[ItemRejection]]:
        """Apply one block's submissions in order; returns receipts and the rejected items."""
        invariant(height == self.height + 1, f"block {height} applied after {self.height}")
        receipts: list[Receipt] = []
        rejections: list[ItemRejection] = []
        for position, sub in enumerate(submissions):
            receipt, rejected = self._apply(height, position, business_date, sub)
            receipts.append(receipt)
            rejections.extend(rejected)
        self.height = height
        self.check_invariants()
        return receipts, rejections

    def _apply(
        self, height: int, position: int, day: dt.date, sub: Submission
    ) -> tuple[Receipt, list[ItemRejection]]:
        def refuse(status: S, reason: str = "") -> tuple[Receipt, list[ItemRejection]]:
            receipt = Receipt(sub.submission_id, str(status), reason, {})
            self.history.refused.append(receipt)
            return receipt, []

        if not sub.submission_id or len(sub.submission_id) > ID_MAX_LEN:
            return refuse(S.malformed_payload, "submission id must be 1 to 64 characters")
        key = (sub.submitter, sub.submission_id)
        digest = sub.body_digest()
        if key in self.seen:
            same = self.seen[key] == digest
            return refuse(S.exists if same else S.exists_with_different_body)
        if sub.kind == Kind.genesis:
            if height != 0 or position != 0:
                return refuse(S.not_authorised, "genesis is only the first submission of block 0")
            return self._accept(key, digest, sub, self._genesis, day)
        if height == 0 and position == 0:
            return refuse(S.rejected, "block 0 must open with the genesis submission")
        submitter = self.participant(sub.submitter)
        if submitter is None:
            return refuse(S.unknown_submitter, f"no participant {sub.submitter!r}")
        if not verify_signature(submitter.public_key, sub.signing_digest(), sub.signature):
            return refuse(S.bad_signature, f"signature does not verify with {sub.submitter}'s key")
        if sub.kind in BOOK_KINDS:
            return self._accept(key, digest, sub, self._book, day)
        try:
            kind = Kind(sub.kind)
        except ValueError:
            return refuse(S.unknown_kind, f"unknown kind {sub.kind!r}")
        if submitter.role not in AUTHORISED[kind]:
            return refuse(S.not_authorised, f"a {submitter.role} may not submit {kind}")
        handler = {
            Kind.admit: self._admit,
            Kind.register_securities: self._register_securities,
            Kind.issue: self._issue,
            Kind.deposit: self._deposit,
            Kind.trades: self._trades,
            Kind.cutoff: self._cutoff,
            Kind.settle: self._settle,
            Kind.contract: self._contract,
            Kind.observation: self._contract,
        }[kind]
        return self._accept(key, digest, sub, handler, day)

    def _accept(self, key: tuple[str, str], digest: bytes, sub: Submission, handler: Handler,
                day: dt.date) -> tuple[Receipt, list[ItemRejection]]:
        try:
            summary, codes, rejected, status, reason = handler(sub, day)
        except InputError as exc:
            receipt = Receipt(sub.submission_id, str(S.malformed_payload), str(exc), {})
            self.history.refused.append(receipt)
            return receipt, []
        receipt = Receipt(sub.submission_id, str(status), reason, summary, codes)
        if status == S.accepted:
            self.seen[key] = digest
            if sub.kind != Kind.trades:
                self.history.reference_rejected.extend(rejected)
        else:
            self.history.refused.append(receipt)
        return receipt, rejected

    # ---------------------------------------------------------------- kinds

    @staticmethod
    def _json_items(sub: Submission, field_name: str) -> list[dict[str, Any]]:
        body = decode_json(sub.payload)
        items = body.get(field_name) if isinstance(body, dict) else None
        if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
            raise InputError(f"payload needs a list of objects under {field_name!r}")
        if len(items) > JSON_ITEMS_MAX:
            raise InputError(f"more than {JSON_ITEMS_MAX} items")
        return items

    def _genesis(self, sub: Submission, day: dt.date) -> Handled:
        cfg = decode_json(sub.payload)
        try:
            seq = cfg["sequencer"]
            key = bytes.fromhex(seq["public_key"])
            people = cfg["participants"]
            holidays = [dt.date.fromisoformat(h) for h in cfg.get("holidays", [])]
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(f"genesis configuration incomplete: {exc}") from exc
        if sub.submitter != seq.get("id") or not verify_signature(key, sub.signing_digest(), sub.signature):
            return {}, b"", [], S.bad_signature, "genesis must be signed by the sequencer it names"
        self.calendar = BusinessCalendar.of(holidays)
        self.settlement = SettlementBook(SettlementConfig.from_json(cfg.get("settlement")))
        self._add_participant(Participant(seq["id"], seq.get("name", seq["id"]), Role.sequencer, key))
        _, rejected = self._add_participants(sub, people, set(Role))
        invariant(not rejected, f"genesis participants rejected: {rejected}")
        self._refresh_ref_digest()
        return {"participants": len(self.participants)}, b"", [], S.accepted, ""

    def _add_participants(
        self, sub: Submission, items: list[dict[str, Any]], roles: set[Role]
    ) -> tuple[int, list[ItemRejection]]:
        rejected: list[ItemRejection] = []
        added = 0
        for item in items:
            pid = str(item.get("id", ""))
            try:
                role = Role(item.get("role", "member"))
                key = bytes.fromhex(str(item.get("public_key", "")))
            except ValueError:
                rejected.append(ItemRejection(sub.submission_id, pid, "invalid_role_or_key"))
                continue
            if not pid or len(pid) > ID_MAX_LEN:
                reason = "invalid_participant_id"
            elif pid in self.pindex:
                same = self.participants[self.pindex[pid]].public_key == key
                reason = "exists" if same else "exists_with_different_key"
            elif len(key) != 32:
                reason = "invalid_public_key"
            elif role not in roles:
                reason = "role_not_admissible"
            else:
                self._add_participant(Participant(pid, str(item.get("name", pid)), role, key))
                added += 1
                continue
            rejected.append(ItemRejection(sub.submission_id, pid, reason))
        return added, rejected

    def _admit(self, sub: Submission, day: dt.date) -> Handled:
        items = self._json_items(sub, "participants")
        admissible = {Role.member, Role.venue, Role.regulator, Role.oracle}
        added, rejected = self._add_participants(sub, items, admissible)
        self._refresh_ref_digest()
        return {"admitted": added, "rejected": len(rejected)}, b"", rejected, S.accepted, ""

    def _register_securities(self, sub: Submission, day: dt.date) -> Handled:
        items = self._json_items(sub, "securities")
        rejected: list[ItemRejection] = []
        added = 0
        for item in items:
            sid = str(item.get("id", ""))
            ccy = str(item.get("currency", ""))
            lot = item.get("lot_size", 1)
            if not sid or len(sid) > ID_MAX_LEN:
                reason = "invalid_security_id"
            elif sid.startswith(CASH_LINE_PREFIX):
                reason = "reserved_security_id"
            elif not (len(ccy) == 3 and ccy.isalpha() and ccy.isupper()):
                reason = "invalid_currency"
            elif not isinstance(lot, int) or isinstance(lot, bool) or not 1 <= lot <= 10**9:
                reason = "invalid_lot_size"
            elif sid in self.sindex:
                s = self.securities[self.sindex[sid]]
                reason = "exists" if (s.currency, s.lot_size) == (ccy, lot) else "exists_with_different_body"
            else:
                self._add_security(Security(sid, ccy, lot))
                added += 1
                continue
            rejected.append(ItemRejection(sub.submission_id, sid, reason))
        self._refresh_ref_digest()
        self._balances_dirty = True
        return {"registered": added, "rejected": len(rejected)}, b"", rejected, S.accepted, ""

    def _issue(self, sub: Submission, day: dt.date) -> Handled:
        """The CSD credits securities to a participant's account (an issuance: totals grow)."""
        items = self._json_items(sub, "holdings")
        rejected: list[ItemRejection] = []
        done = 0
        for n, item in enumerate(items):
            p = self.pindex.get(str(item.get("participant", "")))
            s = self.sindex.get(str(item.get("security", "")))
            qty = item.get("quantity")
            reason = ""
            if p is None:
                reason = "unknown_participant"
            elif s is None:
                reason = "unknown_security"
            elif not isinstance(qty, int) or isinstance(qty, bool) or not 0 < qty <= 10**15:
                reason = "non_positive_quantity"
            if reason or p is None or s is None or not isinstance(qty, int):
                rejected.append(ItemRejection(sub.submission_id, f"holding#{n}", reason))
                continue
            self.sec_bal[p, s] += qty
            self.issued[s] += qty
            if p == self.ccp:
                self.ccp_own_sec[s] += qty
            done += 1
        self._balances_dirty = True
        return {"issued": done, "rejected": len(rejected)}, b"", rejected, S.accepted, ""

    def _deposit(self, sub: Submission, day: dt.date) -> Handled:
        """The central bank credits (or, negative, debits) central-bank money in minor units."""
        items = self._json_items(sub, "deposits")
        rejected: list[ItemRejection] = []
        done = 0
        for n, item in enumerate(items):
            p = self.pindex.get(str(item.get("participant", "")))
            ccy = str(item.get("currency", ""))
            amount = item.get("amount_minor")
            reason = ""
            if p is None:
                reason = "unknown_participant"
            elif not (len(ccy) == 3 and ccy.isalpha() and ccy.isupper()):
                reason = "invalid_currency"
            elif not isinstance(amount, int) or isinstance(amount, bool) or amount == 0 or abs(amount) > 10**17:
                reason = "invalid_amount"
            elif amount < 0 and (ccy not in self.cindex or self.cash_bal[p, self.cindex[ccy]] + amount < 0):
                reason = "insufficient_cash"
            if reason or p is None or not isinstance(amount, int):
                rejected.append(ItemRejection(sub.submission_id, f"deposit#{n}", reason))
                continue
            c = self._add_currency(ccy)
            self.cash_bal[p, c] += amount
            self.deposited[c] += amount
            if p == self.ccp:
                self.ccp_own_cash[c] += amount
            done += 1
        self._refresh_ref_digest()
        self._balances_dirty = True
        return {"deposits": done, "rejected": len(rejected)}, b"", rejected, S.accepted, ""

    def _trades(self, sub: Submission, day: dt.date) -> Handled:
        frame = decode_trades(sub.payload)
        if frame.height > TRADES_PER_SUBMISSION_MAX:
            return {}, b"", [], S.batch_too_large, f"more than {TRADES_PER_SUBMISSION_MAX} trades"
        submitter = self.pindex[sub.submitter]
        digits = np.array([minor_digits(s.currency) for s in self.securities], dtype=np.int64)
        ctx = IntakeContext(
            participants=self.pindex,
            is_member=np.array([p.role == Role.member for p in self.participants], dtype=bool),
            securities=self.sindex,
            lot_size=np.array([s.lot_size for s in self.securities] or [1], dtype=np.int64),
            value_divisor=(10 ** (PRICE_DECIMALS - digits)) if len(digits) else np.ones(1, np.int64),
            submitter=submitter,
            submitter_is_venue=self.participants[submitter].role == Role.venue,
            business_day=day_number(day),
            calendar=self.calendar,
        )
        result = validate_trades(frame, ctx, self.ids)
        self.ids.insert(result.ids, result.id_hashes, result.body_hashes)
        events: list[dict[str, Any]] = []
        if result.accepted:
            pending = PendingTrades.of(result)
            self.pending.append(pending)
            events = self.settlement.on_accepted(self._accepted(pending), day_number(day), self)
        codes = result.codes
        self.trades_root = sha256(b"trades", self.trades_root, sub.leaf(), codes.tobytes())
        bad = np.flatnonzero(codes != TradeResult.ok)
        names = [r.name for r in TradeResult]
        rejected = [
            ItemRejection(sub.submission_id, str(frame["trade_id"][int(i)]), names[codes[i]])
            for i in bad
        ]
        self.history.submitted += frame.height
        self.history.accepted += result.accepted
        self.history.rejected.extend(rejected)
        summary: dict[str, Any] = {"submitted": frame.height, "accepted": result.accepted, "rejected": len(bad)}
        if events:
            summary["events"] = events
        return summary, codes.tobytes(), rejected, S.accepted, ""

    def _accepted(self, p: PendingTrades) -> AcceptedTrades:
        sec = p.security.astype(np.int64)
        return AcceptedTrades(p.buyer.astype(np.int64), p.seller.astype(np.int64), sec, self.security_currency[sec],
                              p.quantity, p.value, p.settlement_day.astype(np.int64), p.partial_allowed)

    def _contract(self, sub: Submission, day: dt.date) -> Handled:
        """Contracts and oracle observations: the engine decides, its cash flows become positions.

        A payment between two members is a cash-only position for each (payer -, receiver +);
        with the CCP as a party only the member's side is a position (the engine guarantees the
        CCP's flows of one outcome net to zero per currency and date, so the CCP stays flat).
        Positions fall due on the payment date, or the block's date if that has passed, rolled to
        a business day, and net with securities cash in the same currency at settlement.
        """
        role = self.participants[self.pindex[sub.submitter]].role
        roles = {p.id: str(p.role) for p in self.participants}
        outcome = self.contracts.apply(sub.kind, sub.submitter, str(role), sub.payload, day, roles)
        if outcome.status != S.accepted:
            return {}, b"", [], S.rejected, outcome.reason
        rows: list[tuple[int, int, int, int]] = []
        today = day_number(day)
        for flow in outcome.cash_flows:
            invariant(flow.amount_minor >= 0, f"contract flow {flow.reference} has a negative amount")
            line = self._cash_line(flow.currency)
            due = max(day_number(self.calendar.add_business_days(flow.settlement_date, 0)), today)
            for pid, sign in ((flow.payer, -1), (flow.receiver, 1)):
                p = self.pindex.get(pid, -1)
                invariant(p >= 0, f"contract flow {flow.reference} names unknown participant {pid!r}")
                if p != self.ccp and flow.amount_minor:
                    rows.append((p, line, due, sign * flow.amount_minor))
        if rows:
            member, security, due_day, cash = (np.array(c, dtype=np.int64) for c in zip(*rows, strict=True))
            flows = Positions(member, security, due_day, np.zeros(len(rows), np.int64), cash, due_day.copy())
            _, group = np.unique(np.c_[security, due_day], axis=0, return_inverse=True)
            invariant(
                not exact_bincount(group.ravel(), cash, int(group.max()) + 1).any(),
                "contract cash flows do not net to zero per currency and date",
            )
            self.positions = self.positions.merged(flows, len(self.participants), len(self.securities))
        rejected = [ItemRejection(sub.submission_id, item, reason) for item, reason in outcome.rejections]
        summary = dict(outcome.summary)
        summary["cash_flows"] = len(outcome.cash_flows)
        return summary, b"", rejected, S.accepted, ""

    def _book(self, sub: Submission, day: dt.date) -> Handled:
        """A kind the settlement book applies itself (lender offers, collateral policy, ...)."""
        out = self.settlement.apply(sub.kind, self.pindex[sub.submitter], sub.payload, day_number(day), self)
        rejected = [ItemRejection(sub.submission_id, item, reason) for item, reason in out.rejections]
        status = S.accepted if out.status == "accepted" else S(out.status)
        return out.summary, b"", rejected, status, out.reason

    def _cash_line(self, currency: str) -> int:
        """The reserved cash-only 'security' of a currency, registered on first use."""
        sid = f"{CASH_LINE_PREFIX}{currency}"
        if sid not in self.sindex:
            self._add_security(Security(sid, currency, 1))
            self._refresh_ref_digest()
            self._balances_dirty = True
        return self.sindex[sid]

    def _command_day(self, sub: Submission, day: dt.date, name: str) -> str:
        body = decode_json(sub.payload)
        value = body.get(name) if isinstance(body, dict) else None
        if value != day.isoformat():
            return f"{name} {value!r} is not the block's business date {day.isoformat()}"
        return ""

    def _cutoff(self, sub: Submission, day: dt.date) -> Handled:
        """Novate and net every trade accepted since the last cut-off into the open positions."""
        problem = self._command_day(sub, day, "business_date")
        if problem:
            return {}, b"", [], S.rejected, problem
        pend = self.pending
        if pend:
            merged = PendingTrades(*(np.concatenate([getattr(r, f) for r in pend]) for f in PendingTrades.__slots__))
            if self.settlement.takes_trades(self._accepted(merged), day_number(day)):
                self.pending = []
                return {"gross_instructions": len(merged)}, b"", [], S.accepted, ""

        def cat(name: str) -> np.ndarray:
            if not pend:
                return np.zeros(0, dtype=np.int64)
            return np.concatenate([getattr(r, name) for r in pend]).astype(np.int64)

        nets = net_trades(
            cat("buyer"), cat("seller"), cat("security"), cat("quantity"), cat("value"),
            cat("settlement_day"), len(self.participants), len(self.securities),
            self.security_currency, len(self.currencies),
        )
        self._check_zero_sum(nets)
        self.pending = []
        new = Positions(
            nets.member, nets.security, nets.settlement_day, nets.quantity, nets.cash,
            nets.settlement_day.copy(),
        )
        self.positions = self.positions.merged(new, len(self.participants), len(self.securities))
        self.history.nettings.append(nets)
        summary = {
            "gross_obligations": nets.gross_obligations,
            "net_positions": len(nets),
            "netting_digest": digest_arrays(
                nets.member, nets.security, nets.settlement_day, nets.quantity, nets.cash
            ).hex(),
        }
        return summary, b"", [], S.accepted, ""

    def _check_zero_sum(self, nets: NetPositions) -> None:
        """Netting creates nothing: per (security, day) quantities and per (currency, day) cash sum to 0."""
        if not len(nets):
            return
        days, code = np.unique(nets.settlement_day, return_inverse=True)
        qkey = code * len(self.securities) + nets.security
        invariant(
            not exact_bincount(qkey, nets.quantity, len(days) * len(self.securities)).any(),
            "net quantities do not sum to zero per security and date",
        )
        ckey = code * len(self.currencies) + self.security_currency[nets.security]
        invariant(
            not exact_bincount(ckey, nets.cash, len(days) * len(self.currencies)).any(),
            "net cash does not sum to zero per currency and date",
        )

    def _settle(self, sub: Submission, day: dt.date) -> Handled:
        """Settle every open position due on or before the block's date, by the settlement book's rules."""
        problem = self._command_day(sub, day, "settlement_date")
        if problem:
            return {}, b"", [], S.rejected, problem
        today = day_number(day)
        pos = self.positions
        due = pos.day <= today
        # roll every due position (fails of earlier days included) into one per (member, security)
        rolled = pos.select(due)
        rolled.day = np.full(len(rolled), today, dtype=np.int64)
        batch = Positions.empty().merged(rolled, len(self.participants), len(self.securities))
        ccy = self.security_currency[batch.security] if len(batch) else np.zeros(0, np.int64)
        order = np.lexsort((batch.security, batch.member, batch.first_due))
        priority = np.empty(len(batch), dtype=np.int64)
        priority[order] = np.arange(len(batch))
        instructions = CycleInstructions(batch.member, batch.security, ccy, batch.quantity, batch.cash,
                                         batch.first_due, priority)
        result = self.settlement.settle(today, instructions, self.sec_bal, self.cash_bal, self.ccp, self)
        sq, sc = result.settled_quantity, result.settled_cash
        invariant(
            bool(((sq == 0) | (np.sign(sq) == np.sign(batch.quantity))).all())
            and bool((np.abs(sq) <= np.abs(batch.quantity)).all())
            and bool(((sc == 0) | (np.sign(sc) == np.sign(batch.cash))).all())
            and bool((np.abs(sc) <= np.abs(batch.cash)).all()),
            "a settlement cycle moved more than, or against, an instruction",
        )
        # both legs of every instruction move here, in one update, against the CCP
        np.add.at(self.sec_bal, (batch.member, batch.security), sq)
        np.add.at(self.sec_bal[self.ccp], batch.security, -sq)
        np.add.at(self.cash_bal, (batch.member, ccy), sc)
        np.add.at(self.cash_bal[self.ccp], ccy, -sc)
        rest = Positions(batch.member, batch.security, batch.day, batch.quantity - sq, batch.cash - sc,
                         batch.first_due)
        self.positions = Positions.empty().merged(
            Positions(*(np.concatenate([a[~due], b]) for a, b in zip(pos.columns(), rest.columns(), strict=True))),
            len(self.participants), len(self.securities),
        )
        self._balances_dirty = True
        full = (sq == batch.quantity) & (sc == batch.cash)
        none = (sq == 0) & (sc == 0) & ~full
        self.history.cycles.append(
            PartyRecord(today, batch.member, batch.security, batch.quantity, batch.cash,
                        batch.first_due, full, result.reason, sq, sc)
        )
        own = self.settlement.settle_own(today, self.sec_bal, self.cash_bal, self)
        if own is not None:
            self.history.cycles.append(own)
        events = result.events + self.settlement.take_events()
        n_ccy = len(self.currencies)
        summary = {
            "instructions": len(batch),
            "settled": int(full.sum()),
            "partially_settled": int((~full & ~none).sum()),
            "failed": int(none.sum()),
            "settled_value": exact_bincount(ccy, np.abs(sc), n_ccy).tolist(),
            "failed_value": exact_bincount(ccy, np.abs(batch.cash - sc), n_ccy).tolist(),
            "rounds": result.rounds,
            "events": events,
        }
        return summary, b"", [], S.accepted, ""

    # ---------------------------------------------------------------- accounts the settlement book may move

    def move_securities(self, source: int, target: int, security: int, quantity: int) -> None:
        self.sec_bal[source, security] -= quantity
        self.sec_bal[target, security] += quantity
        self._balances_dirty = True

    def move_cash(self, source: int, target: int, currency: int, amount_minor: int) -> None:
        self.cash_bal[source, currency] -= amount_minor
        self.cash_bal[target, currency] += amount_minor
        self._balances_dirty = True

    def central_bank_credit(self, account: int, currency: int, amount_minor: int) -> None:
        self.cash_bal[account, currency] += amount_minor
        self.deposited[currency] += amount_minor
        self._balances_dirty = True

    def participant_index(self, participant_id: str) -> int | None:
        return self.pindex.get(participant_id)

    def participant_id(self, index: int) -> str:
        return self.participants[index].id

    def participant_role(self, index: int) -> str:
        return str(self.participants[index].role)

    def security_index(self, security_id: str) -> int | None:
        return self.sindex.get(security_id)

    def security_id(self, index: int) -> str:
        return self.securities[index].id

    def currency_index(self, currency: str) -> int | None:
        return self.cindex.get(currency)

    def lot_size(self, security: int) -> int:
        return self.securities[security].lot_size

    def central_bank(self) -> int:
        return self.role_index(Role.central_bank)

    # ---------------------------------------------------------------- invariants and roots

    def check_invariants(self) -> None:
        """Conservation and flatness after every block; a breach halts the node.

        Flat means the CCP bears no position: its holdings and cash, less its own funds (what
        was issued or deposited to it directly), equal the open positions it faces.
        """
        invariant(bool((self.sec_bal >= 0).all()), "a securities balance is negative")
        invariant(bool((self.cash_bal >= 0).all()), "a cash balance is negative")
        invariant(
            np.array_equal(self.sec_bal.sum(axis=0), self.issued),
            "securities are not conserved: holdings differ from issuance",
        )
        invariant(
            np.array_equal(self.cash_bal.sum(axis=0), self.deposited),
            "cash is not conserved: balances differ from central-bank deposits",
        )
        if self.ccp >= 0 and len(self.securities):
            pos = self.positions
            open_qty = exact_bincount(pos.security, pos.quantity, len(self.securities))
            invariant(
                np.array_equal(self.sec_bal[self.ccp] - self.ccp_own_sec, open_qty),
                "the CCP is not flat: its holdings differ from the open positions it faces",
            )
            open_cash = exact_bincount(
                self.security_currency[pos.security] if len(pos) else pos.security,
                pos.cash, len(self.currencies),
            )
            invariant(
                np.array_equal(self.cash_bal[self.ccp] - self.ccp_own_cash, open_cash),
                "the CCP is not flat: its cash differs from the open positions it faces",
            )

    def balance_leaves(self) -> list[bytes]:
        """Merkle leaves of every non-zero balance, ordered by (table, owner, asset).

        A leaf is the canonical JSON ``["cash"|"securities", owner, asset, amount]``; ids are
        JSON-encoded once and the rows formatted in bulk.
        """
        pj = [json.dumps(p.id, ensure_ascii=False) for p in self.participants]
        p_rank = np.argsort(np.argsort([p.id for p in self.participants], kind="stable"))
        leaves: list[bytes] = []
        for table, bal, names in (
            ("cash", self.cash_bal, self.currencies),
            ("securities", self.sec_bal, [s.id for s in self.securities]),
        ):
            aj = [json.dumps(n, ensure_ascii=False) for n in names]
            a_rank = np.argsort(np.argsort(names, kind="stable")) if names else np.zeros(0, np.int64)
            p_idx, a_idx = np.nonzero(bal)
            order = np.lexsort((a_rank[a_idx], p_rank[p_idx])) if len(p_idx) else p_idx
            p_idx, a_idx = p_idx[order], a_idx[order]
            values = bal[p_idx, a_idx].tolist()
            leaves.extend(
                f'["{table}",{pj[p]},{aj[a]},{v}]'.encode()
                for p, a, v in zip(p_idx.tolist(), a_idx.tolist(), values, strict=True)
            )
        return leaves

    def state_components(self) -> dict[str, bytes]:
        if self._balances_dirty:
            self._balances_root = merkle_root(self.balance_leaves())
            self._balances_dirty = False
        pos = self.positions
        return {
            "reference": self._ref_digest,
            "balances": self._balances_root,
            "positions": digest_arrays(*pos.columns()),
            "trades": self.trades_root,
            "totals": digest_arrays(self.issued, self.deposited, self.ccp_own_sec, self.ccp_own_cash),
            "settlement": self.settlement.digest(),
            "contracts": self.contracts.digest(),
        }

    def state_root(self) -> bytes:
        comps = self.state_components()
        return sha256(b"clearhouse/state/v1", *(comps[k] for k in sorted(comps)))

    def pending_trades(self) -> int:
        return sum(len(r) for r in self.pending)
