"""The CCP's node behind the API: every write cuts one block, every read answers from the node.

``LedgerService`` opens a data directory's node (replayed to its head), holds the sequencer's and
the CCP's keys from ``DATA/keys``, and serialises every request on one lock, so the state
machine only ever sees one block at a time. The business date is the last block's date; the CCP
operator opens the next one with an empty block at the new date, so every node agrees on it.
Block timestamps derive from the business date and the block's rank within that day exactly as
``clearhouse.cycle.run`` derives them; nothing here reads the clock. An invariant breach or a
storage failure halts the service: it then refuses everything but ``/health``.
Imports clearhouse.core, ledger, clearing, state, node, cycle and the API's own modules only.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from clearhouse.clearing.batch import decode_trades
from clearhouse.core.calendar import from_day_number
from clearhouse.core.errors import ClearhouseError, InputError
from clearhouse.core.exact import exact_bincount
from clearhouse.core.money import format_minor
from clearhouse.core.results import SubmissionStatus, TradeResult
from clearhouse.cycle.run import LEDGER_FILE, SEQUENCER, TRADES_PER_SUBMISSION, open_node, sign
from clearhouse.interfaces.api.errors import ApiError, not_found
from clearhouse.ledger.crypto import KeyPair, KeyStore, verify_signature
from clearhouse.ledger.merkle import merkle_proof
from clearhouse.ledger.records import BlockHeader, Submission
from clearhouse.ledger.verify import verify_store
from clearhouse.node.node import Node
from clearhouse.settlement.dvp import REASONS
from clearhouse.state.kinds import Kind, encode_json
from clearhouse.state.machine import Participant, Positions, StateMachine

PAYLOAD_MAX = 8 * 1024 * 1024
NEXT_DAY_MAX = dt.timedelta(days=366)
_PLAN_SECONDS = 61_200  # 07:00:00 + n seconds stays before midnight for n below this
_DAY_BLOCKS_MAX = _PLAN_SECONDS + 999_998  # the last one at 23:59:59.999999
_TRADE_RESULTS = [r.name for r in TradeResult]


def block_timestamp(day: dt.date, n: int) -> str:
    """The n-th block of a business day (n >= 1): 07:00:00 + n s, as ``cycle.run`` stamps it.

    Past 23:59:59 the further blocks of the day count on in microseconds.
    """
    if n < _PLAN_SECONDS:
        return f"{day.isoformat()}T{7 + n // 3600:02d}:{n // 60 % 60:02d}:{n % 60:02d}Z"
    return f"{day.isoformat()}T23:59:59.{n - _PLAN_SECONDS + 1:06d}Z"


def decode_receipt(raw: bytes) -> tuple[dict[str, Any], bytes]:
    """A stored receipt (``Receipt.encode``) back into its head and its trade result bytes."""
    size = int.from_bytes(raw[:4], "little")
    return json.loads(raw[4 : 4 + size]), raw[4 + size :]


@dataclass(frozen=True, slots=True)
class BlockView:
    """What reads need of a stored block, without its payloads (blocks never change)."""

    header: BlockHeader
    hash: str
    signature: str
    items: tuple[dict[str, Any], ...]

    @property
    def day(self) -> dt.date:
        return dt.date.fromisoformat(self.header.business_date)

    def summary(self) -> dict[str, Any]:
        h = self.header
        return {
            "height": h.height, "hash": self.hash, "prev_hash": h.prev_hash.hex(),
            "business_date": h.business_date, "timestamp": h.timestamp,
            "merkle_root": h.merkle_root.hex(), "state_root": h.state_root.hex(),
            "results_root": h.results_root.hex(), "sequencer": h.sequencer,
            "submissions": len(self.items),
        }


@dataclass(slots=True)
class VerificationState:
    """Outcome of the full verification run when the service opened."""

    status: str
    verified_height: int | None
    reason: str | None


class _Figures:
    """Per-day accumulators for the day view and the charts, in minor units per currency."""

    def __init__(self, n_ccy: int) -> None:
        self.blocks = 0
        self.trades = [0, 0, 0]
        self.cutoffs = 0
        self.gross_obligations = 0
        self.net_obligations = 0
        self.gross = np.zeros(n_ccy, dtype=np.int64)
        self.net = np.zeros(n_ccy, dtype=np.int64)
        self.cycles = 0
        self.settled = 0
        self.failed = 0
        self.settled_v = np.zeros(n_ccy, dtype=np.int64)
        self.failed_v = np.zeros(n_ccy, dtype=np.int64)


@dataclass(slots=True)
class _Tally:
    """The per-day figures folded in up to a height, so each new block adds only itself."""

    n_ccy: int
    height: int = -1
    nettings: int = 0
    cycles: int = 0
    days: dict[dt.date, _Figures] = field(default_factory=dict)


class LedgerService:
    """One data directory's node, its operator keys, and the API's reads and writes on it."""

    def __init__(self, data_dir: Path, verify: bool = True) -> None:
        if not (data_dir / LEDGER_FILE).is_file():
            raise InputError(f"no ledger at {data_dir / LEDGER_FILE}; run `clearhouse demo` or `run` first")
        keys = KeyStore(data_dir / "keys")
        if not keys.has(SEQUENCER):
            raise InputError(f"no sequencer key under {data_dir / 'keys'}: this is not the CCP's node")
        self.data_dir = data_dir
        self.node: Node = open_node(data_dir)
        try:
            self.ccp_id, self.ccp_key = self._operator_key(keys)
        except InputError:
            self.node.store.close()
            raise
        self.lock = threading.RLock()
        self.halted: str | None = None
        self._views: dict[int, BlockView] = {}
        self._leaves: tuple[int, list[bytes], dict[tuple[str, str, str], int]] | None = None
        self._tally: _Tally | None = None
        head = self._view(self.node.height)
        self.business_date = head.day
        self.blocks_today = sum(1 for _ in self._blocks_of_day(self.business_date))
        if verify:
            report = verify_store(self.node.store)
            self.verification = VerificationState(
                "verified" if report.verified else "failed",
                report.height if report.verified else None,
                None if report.verified else f"block {report.first_bad_height}: {report.reason}",
            )
        else:
            self.verification = VerificationState("not_checked", None, None)

    def _operator_key(self, keys: KeyStore) -> tuple[str, KeyPair]:
        """The CCP's id and key, after checking both the sequencer's and the CCP's keys match the ledger."""
        m = self.node.machine
        if self.node.height < 0:
            raise InputError(f"the ledger at {self.data_dir / LEDGER_FILE} is empty")
        sequencer = m.participant(SEQUENCER)
        if sequencer is None or self.node.sequencer_key is None or (
            self.node.sequencer_key.public_key != sequencer.public_key
        ):
            raise InputError("the sequencer key under DATA/keys is not the one the ledger registered")
        if m.ccp < 0:
            raise InputError("the ledger has no CCP")
        ccp = m.participants[m.ccp]
        if not keys.has(ccp.id) or keys.load(ccp.id).public_key != ccp.public_key:
            raise InputError(f"no key of {ccp.id} under DATA/keys matching the ledger")
        return ccp.id, keys.load(ccp.id)

    @property
    def machine(self) -> StateMachine:
        return self.node.machine

    def participant(self, participant_id: str) -> Participant | None:
        with self.lock:
            return self.machine.participant(participant_id)

    def close(self) -> None:
        with self.lock:
            self.node.store.close()

    # ---------------------------------------------------------------- blocks

    def _view(self, height: int) -> BlockView:
        view = self._views.get(height)
        if view is None:
            block = self.node.store.block(height)
            receipts = [decode_receipt(r)[0] for r in self.node.store.receipts(height)]
            items = tuple(
                {"submission_id": s.submission_id, "kind": s.kind, "submitter": s.submitter,
                 "payload_bytes": len(s.payload), "status": r.get("status", ""),
                 "reason": r.get("reason", ""), "summary": r.get("summary", {})}
                for s, r in zip(block.submissions, receipts, strict=True)
            )
            view = BlockView(block.header, block.header.hash().hex(), block.signature.hex(), items)
            self._views[height] = view
        return view

    def _blocks_of_day(self, day: dt.date) -> Iterator[BlockView]:
        height = self.node.height
        while height >= 0 and (view := self._view(height)).day == day:
            yield view
            height -= 1

    def _check_running(self) -> None:
        if self.halted is not None:
            raise ApiError(503, "node_halted", f"the node halted and serves nothing more: {self.halted}")

    def _seal(self, submissions: list[Submission], day: dt.date) -> tuple[BlockView, list[dict[str, Any]]]:
        """Cut one block of the submissions at the day; returns its view and the receipts."""
        self._check_running()
        if self.verification.status == "failed":
            raise ApiError(503, "ledger_not_verified",
                           f"the ledger failed verification ({self.verification.reason}); no writes")
        n = (self.blocks_today if day == self.business_date else 0) + 1
        if n > _DAY_BLOCKS_MAX:
            raise ApiError(503, "day_full", f"{day.isoformat()} holds the most blocks a day can hold")
        for sub in submissions:
            self.node.submit(sub)
        try:
            self.node.seal(day, block_timestamp(day, n))
        except ClearhouseError as exc:
            self.halted = f"{type(exc).__name__}: {exc}"
            raise ApiError(503, "node_halted", f"the node halted: {self.halted}") from exc
        self.business_date, self.blocks_today = day, n
        view = self._view(self.node.height)
        return view, [dict(i) for i in view.items]

    # ---------------------------------------------------------------- writes

    @staticmethod
    def _payload(text: str, encoding: str) -> bytes:
        if encoding == "base64":
            try:
                payload = base64.b64decode(text, validate=True)
            except (binascii.Error, ValueError) as exc:
                raise ApiError(400, "malformed_payload", f"payload is not base64: {exc}") from exc
        else:
            payload = text.encode("utf-8")
        if len(payload) > PAYLOAD_MAX:
            raise ApiError(413, "payload_too_large", f"a payload holds at most {PAYLOAD_MAX} bytes")
        return payload

    def _signed(self, participant_id: str, submission_id: str, kind: str, payload: bytes,
                signature_hex: str) -> Submission:
        sub = Submission(submission_id, kind, participant_id, payload, bytes.fromhex(signature_hex))
        p = self.machine.participant(participant_id)
        if p is None or not verify_signature(p.public_key, sub.signing_digest(), sub.signature):
            raise ApiError(400, "bad_signature",
                           f"the signature does not verify with {participant_id}'s key over "
                           f"Submission.digest_for(submission_id, {kind!r}, submitter, payload)")
        return sub

    def submit_trades(self, participant_id: str, submission_id: str, payload_text: str,
                      encoding: str, signature_hex: str) -> dict[str, Any]:
        payload = self._payload(payload_text, encoding)
        try:
            frame = decode_trades(payload)
        except InputError as exc:
            raise ApiError(400, "malformed_payload", str(exc)) from exc
        if frame.height == 0:
            raise ApiError(400, "empty_batch", "the batch holds no trade")
        if frame.height > TRADES_PER_SUBMISSION:
            raise ApiError(413, "batch_too_large", f"at most {TRADES_PER_SUBMISSION} trades per submission")
        trade_ids = frame["trade_id"].to_list()
        with self.lock:
            self._check_running()
            head, height, status = self._sequence(participant_id, submission_id, Kind.trades, payload,
                                                  signature_hex)
            _, codes = decode_receipt(self._receipt(height, participant_id, submission_id))
            view = self._view(height)
        summary = head["summary"]
        return {
            "submission_id": submission_id, "status": status, "reason": head.get("reason", ""),
            "height": height, "block_hash": view.hash, "submitted": summary["submitted"],
            "accepted": summary["accepted"], "rejected": summary["rejected"],
            "results": [{"trade_id": t, "result": _TRADE_RESULTS[c]}
                        for t, c in zip(trade_ids, codes, strict=True)],
        }

    def _sequence(self, submitter: str, submission_id: str, kind: Kind, payload: bytes,
                  signature_hex: str) -> tuple[dict[str, Any], int, str]:
        """Cut a block of the caller's signed submission, or find the one that already holds it.

        Returns the receipt's head, the block height and ``accepted`` or ``exists``; a
        submission the state machine refuses is kept in its block and answered with 400.
        """
        sub = self._signed(submitter, submission_id, str(kind), payload, signature_hex)
        before = self.machine.seen.get((submitter, submission_id))
        if before is not None:
            if before != sub.body_digest():
                raise ApiError(409, "exists_with_different_body",
                               f"submission {submission_id!r} was accepted earlier with another body")
            height, index = self._find_accepted(submitter, submission_id)
            return dict(self._view(height).items[index]), height, str(SubmissionStatus.exists)
        view, receipts = self._seal([sub], self.business_date)
        head = receipts[0]
        if head["status"] != SubmissionStatus.accepted:
            raise ApiError(400, head["status"], f"{head['reason']} (kept in block {view.header.height})")
        return head, view.header.height, str(SubmissionStatus.accepted)

    def _receipt(self, height: int, submitter: str, submission_id: str) -> bytes:
        for index, item in enumerate(self._view(height).items):
            if (item["submitter"], item["submission_id"]) == (submitter, submission_id):
                return self.node.store.receipts(height)[index]
        raise ApiError(500, "receipt_missing", f"no stored receipt of {submission_id!r} at {height}")

    def _find_accepted(self, submitter: str, submission_id: str) -> tuple[int, int]:
        """Block height and position of the accepted submission of that submitter and id."""
        first = self.node.store.submission_height(submission_id)
        for height in range(first if first is not None else 0, self.node.height + 1):
            for index, item in enumerate(self._view(height).items):
                if (item["submitter"], item["submission_id"]) == (submitter, submission_id) and (
                    item["status"] == SubmissionStatus.accepted
                ):
                    return height, index
        raise ApiError(500, "receipt_missing", f"no stored receipt of accepted {submission_id!r}")

    def command(self, name: str) -> dict[str, Any]:
        """The CCP's cut-off or settlement run on the current business date (once each per day)."""
        kind, field = {"cutoff": (Kind.cutoff, "business_date"),
                       "settle": (Kind.settle, "settlement_date")}[name]
        with self.lock:
            self._check_running()
            day = self.business_date
            sid = f"{name}-{day.isoformat()}"
            if (self.ccp_id, sid) in self.machine.seen:
                height, _ = self._find_accepted(self.ccp_id, sid)
                raise ApiError(409, "already_done",
                               f"the {name} of {day.isoformat()} is on the ledger at height {height}; "
                               "open the next business day first")
            sub = sign(self.ccp_key, self.ccp_id, sid, kind, encode_json({field: day.isoformat()}))
            view, receipts = self._seal([sub], day)
        r = receipts[0]
        return {"command": name, "submission_id": sid, "status": r["status"], "reason": r["reason"],
                "business_date": day, "height": view.header.height, "block_hash": view.hash,
                "summary": r["summary"]}

    def next_day(self, requested: dt.date | None) -> dict[str, Any]:
        with self.lock:
            self._check_running()
            current = self.business_date
            calendar = self.machine.calendar
            target = requested or calendar.add_business_days(current, 1)
            if target <= current:
                raise ApiError(409, "not_later", f"{target} is not after the business date {current}")
            if target - current > NEXT_DAY_MAX:
                raise ApiError(409, "too_far", f"{target} is more than a year after {current}")
            if not calendar.is_business_day(target):
                raise ApiError(409, "not_a_business_day", f"{target} is a weekend day or a holiday")
            view, _ = self._seal([], target)
            return {"previous_business_date": current, "business_date": target,
                    "height": view.header.height, "block_hash": view.hash,
                    "pending_trades": self.machine.pending_trades()}

    def publish_observations(self, oracle_id: str, submission_id: str, payload_text: str,
                             encoding: str, signature_hex: str) -> dict[str, Any]:
        """Sequence an oracle's signed ``observation`` submission: a batch, or one correction."""
        payload = self._payload(payload_text, encoding)
        try:
            body = json.loads(payload.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            raise ApiError(400, "malformed_payload", f"payload is not JSON: {exc}") from exc
        publish = isinstance(body, dict) and set(body) == {"observations"} and isinstance(
            body["observations"], list)
        if not publish and not (isinstance(body, dict) and set(body) == {"correct", "rate"}):
            raise ApiError(400, "malformed_payload",
                           'observations are {"observations": [...]} or a correction {"correct": id, "rate": r}')
        with self.lock:
            self._check_running()
            head, height, status = self._sequence(oracle_id, submission_id, Kind.observation, payload,
                                                  signature_hex)
            rejections = [r for r in self.node.store.rejections(submission_id=submission_id, height=height)]
        results = []
        if publish:
            pending = iter(rejections)
            refusal = next(pending, None)
            for n, item in enumerate(body["observations"]):
                item_id = item.get("id") if isinstance(item, dict) and isinstance(item.get("id"), str) else f"#{n}"
                if refusal is not None and refusal.item_id == item_id:
                    results.append({"observation_id": item_id, "result": refusal.reason})
                    refusal = next(pending, None)
                else:
                    results.append({"observation_id": item_id, "result": "ok"})
        return {"submission_id": submission_id, "status": status, "reason": head.get("reason", ""),
                "height": height, "block_hash": self._view(height).hash, "summary": head["summary"],
                "results": results}

    def observations(self, index: str | None, limit: int) -> list[dict[str, Any]]:
        """Published observations on the ledger, newest fixing first."""
        with self.lock:
            self._check_running()
            found = []
            for record in self.machine.contracts.contracts(template="observation"):
                o = record.state
                if index is not None and o.index != index:
                    continue
                found.append({"observation_id": o.observation_id, "index": o.index,
                              "fixing_date": o.fixing_date, "rate": str(o.rate), "publisher": o.publisher,
                              "published_on": o.published_on, "version": o.version,
                              "contract_id": record.contract_id})
        found.sort(key=lambda x: (x["fixing_date"], x["contract_id"]), reverse=True)
        return found[:limit]

    # ---------------------------------------------------------------- reads

    def _member_index(self, participant_id: str) -> int:
        i = self.machine.pindex.get(participant_id)
        if i is None:
            raise not_found("unknown_participant", f"no participant {participant_id!r} on the ledger")
        return i

    def participants(self) -> list[dict[str, str]]:
        with self.lock:
            self._check_running()
            return [{"participant_id": p.id, "name": p.name, "role": str(p.role),
                     "public_key": p.public_key.hex()} for p in self.machine.participants]

    def positions(self, participant_id: str) -> dict[str, Any]:
        """Balances and open positions from the stored head rows; an open position is failing
        once its settlement date has passed, or is today and today's settlement has run."""
        with self.lock:
            self._check_running()
            self._member_index(participant_id)
            as_of, rows = self.node.store.state_rows(participant_id)
            today = self.business_date.isoformat()
            settled_today = (self.ccp_id, f"settle-{today}") in self.machine.seen
            body: dict[str, Any] = {"participant_id": participant_id, "height": self.node.height,
                                    "as_of_height": as_of, "securities": [], "cash": [],
                                    "open_positions": []}
        for r in rows:
            if r.table == "securities":
                body["securities"].append({"security_id": r.asset, "quantity": int(r.value)})
            elif r.table == "cash":
                body["cash"].append({"currency": r.asset, "amount": r.value})
            elif r.table == "position":
                sec, due = r.asset.split("|")
                qty, cash, ccy, first = r.value.split("|")
                body["open_positions"].append({
                    "security_id": sec, "settlement_date": due, "quantity": int(qty), "cash": cash,
                    "currency": ccy, "first_due": first,
                    "failing": due < today or (due == today and settled_today),
                })
        return body

    def obligations(self, participant_id: str) -> dict[str, Any]:
        """The member's net obligations from every cut-off, per (settlement date, security)."""
        with self.lock:
            self._check_running()
            m = self.machine
            idx = self._member_index(participant_id)
            acc = Positions.empty()
            for nets in m.history.nettings:
                mine = nets.member == idx
                if mine.any():
                    acc = acc.merged(
                        Positions(nets.member[mine], nets.security[mine], nets.settlement_day[mine],
                                  nets.quantity[mine], nets.cash[mine], nets.settlement_day[mine]),
                        len(m.participants), len(m.securities))
            obligations, cash = [], {}
            order = sorted(range(len(acc)), key=lambda i: (int(acc.day[i]), m.securities[int(acc.security[i])].id))
            for sec_i, day, qty, amount in zip(acc.security[order].tolist(), acc.day[order].tolist(),
                                               acc.quantity[order].tolist(), acc.cash[order].tolist(),
                                               strict=True):
                sec = m.securities[sec_i]
                date = from_day_number(day).isoformat()
                obligations.append({"settlement_date": date, "security_id": sec.id, "quantity": qty,
                                    "cash": format_minor(amount, sec.currency), "currency": sec.currency})
                cash[(date, sec.currency)] = cash.get((date, sec.currency), 0) + amount
            return {"participant_id": participant_id, "height": self.node.height,
                    "obligations": obligations,
                    "net_cash": [{"settlement_date": d, "currency": c, "amount": format_minor(v, c)}
                                 for (d, c), v in sorted(cash.items())]}

    def instructions(self, participant_id: str, failed_only: bool = False) -> dict[str, Any]:
        """The member's settlement instructions of every cycle with their outcome; with
        ``failed_only`` the fails: every instruction not settled in full."""
        with self.lock:
            self._check_running()
            m = self.machine
            idx = self._member_index(participant_id)
            rows = []
            for cyc in m.history.cycles:
                mine = cyc.member == idx
                if failed_only:
                    mine &= ~cyc.settled
                date = from_day_number(cyc.day).isoformat()
                for i in np.flatnonzero(mine).tolist():
                    sec = m.securities[int(cyc.security[i])]
                    full = bool(cyc.settled[i])
                    moved_q, moved_c = int(cyc.settled_quantity[i]), int(cyc.settled_cash[i])
                    rows.append({
                        "settlement_date": date,
                        "due_date": from_day_number(int(cyc.first_due[i])).isoformat(),
                        "security_id": sec.id, "quantity": int(cyc.quantity[i]),
                        "cash": format_minor(int(cyc.cash[i]), sec.currency), "currency": sec.currency,
                        "settled_quantity": moved_q, "settled_cash": format_minor(moved_c, sec.currency),
                        "status": "settled" if full else "partial" if moved_q or moved_c else "failed",
                        "reason": None if full else str(REASONS[int(cyc.reason[i])]),
                    })
            return {"participant_id": participant_id, "height": self.node.height,
                    "fails" if failed_only else "instructions": rows}

    def proof(self, participant_id: str, table: str, asset: str) -> dict[str, Any]:
        """A balance's Merkle inclusion proof and everything needed to recompute the state root."""
        with self.lock:
            self._check_running()
            self._member_index(participant_id)
            m = self.machine
            if self._leaves is None or self._leaves[0] != self.node.height:
                leaves = m.balance_leaves()
                index = {tuple(json.loads(leaf)[:3]): i for i, leaf in enumerate(leaves)}
                self._leaves = (self.node.height, leaves, index)
            _, leaves, index = self._leaves
            i = index.get((table, participant_id, asset))
            if i is None:
                raise not_found("no_balance", f"{participant_id} holds no {table} balance of {asset!r} "
                                "(a zero balance has no leaf)")
            proof = merkle_proof(leaves, i)
            comps = m.state_components()
            head = self._view(self.node.height)
            return {
                "participant_id": participant_id, "table": table, "asset": asset,
                "amount": str(json.loads(leaves[i])[3]), "leaf": leaves[i].decode(),
                "index": proof.index, "size": proof.size,
                "path": [{"hash": h.hex(), "side": "left" if left else "right"} for h, left in proof.path],
                "balances_root": comps["balances"].hex(),
                "components": {k: v.hex() for k, v in sorted(comps.items())},
                "state_root": m.state_root().hex(), "height": self.node.height, "block_hash": head.hash,
            }

    def blocks(self, before: int | None, limit: int) -> dict[str, Any]:
        with self.lock:
            self._check_running()
            top = self.node.height if before is None else min(before - 1, self.node.height)
            heights = range(top, max(top - limit, -1), -1)
            return {"height": self.node.height, "blocks": [self._view(h).summary() for h in heights]}

    def block(self, height: int) -> dict[str, Any]:
        with self.lock:
            self._check_running()
            if not 0 <= height <= self.node.height:
                raise not_found("no_block", f"no block at height {height} (head is {self.node.height})")
            view = self._view(height)
            return {**view.summary(), "signature": view.signature, "items": [dict(i) for i in view.items]}

    # ---------------------------------------------------------------- the day and the charts

    def _value(self, amounts: np.ndarray) -> dict[str, Any]:
        ccys = self.machine.currencies
        by = {c: format_minor(int(amounts[i]), c) for i, c in enumerate(ccys)}
        used = [i for i, a in enumerate(amounts[: len(ccys)]) if a]
        single = len(ccys) == 1 or len(used) <= 1
        i = used[0] if used else 0
        value = (format_minor(int(amounts[i]), ccys[i]) if ccys else "0.00") if single else None
        return {"value": value, "by_currency": by}

    def _day_body(self, day: dt.date, f: _Figures) -> dict[str, Any]:
        gross, net = int(f.gross.sum()), int(f.net.sum())
        return {
            "business_date": day, "blocks": f.blocks,
            "trades": dict(zip(("submitted", "accepted", "rejected"), f.trades, strict=True)),
            "netting": {
                "cutoffs": f.cutoffs, "gross_obligations": f.gross_obligations,
                "net_obligations": f.net_obligations, "gross_value": self._value(f.gross),
                "net_value": self._value(f.net),
                "reduction_pct": round(100.0 * (1 - net / gross), 2) if gross else None,
            },
            "settlement": {
                "cycles": f.cycles, "settled": f.settled, "failed": f.failed,
                "settled_value": self._value(f.settled_v), "failed_value": self._value(f.failed_v),
            },
        }

    def daily(self) -> list[dict[str, Any]]:
        """Figures per business date: trades, netting (per cut-off) and settlement (per cycle)."""
        with self.lock:
            self._check_running()
            m = self.machine
            n_ccy = max(len(m.currencies), 1)
            if self._tally is None or self._tally.n_ccy != n_ccy:
                self._tally = _Tally(n_ccy)
            t = self._tally
            ccy_of = m.security_currency
            for height in range(t.height + 1, self.node.height + 1):
                view = self._view(height)
                f = t.days.setdefault(view.day, _Figures(n_ccy))
                f.blocks += 1
                for item in view.items:
                    if item["status"] != SubmissionStatus.accepted:
                        continue
                    s = item["summary"]
                    if item["kind"] == Kind.trades:
                        f.trades[0] += s["submitted"]
                        f.trades[1] += s["accepted"]
                        f.trades[2] += s["rejected"]
                    elif item["kind"] == Kind.cutoff:
                        f.cutoffs += 1
                        # only a cut-off that netted adds a netting (the book may take trades gross)
                        if "net_positions" not in s or t.nettings >= len(m.history.nettings):
                            continue
                        nets = m.history.nettings[t.nettings]
                        t.nettings += 1
                        f.gross_obligations += nets.gross_obligations
                        f.net_obligations += len(nets)
                        f.gross[: len(nets.gross_value)] += nets.gross_value
                        if len(nets):
                            f.net += exact_bincount(ccy_of[nets.security], np.abs(nets.cash), n_ccy)
            t.height = self.node.height
            for cyc in m.history.cycles[t.cycles:]:
                f = t.days.setdefault(from_day_number(cyc.day), _Figures(n_ccy))
                ccy = ccy_of[cyc.security] if len(cyc.security) else cyc.security
                f.cycles += 1
                f.settled += int(cyc.settled.sum())
                f.failed += int((~cyc.settled).sum())
                f.settled_v += exact_bincount(ccy, np.abs(cyc.settled_cash), n_ccy)
                f.failed_v += exact_bincount(ccy, np.abs(cyc.cash - cyc.settled_cash), n_ccy)
            t.cycles = len(m.history.cycles)
            return [self._day_body(d, t.days[d]) for d in sorted(t.days)]

    def day(self) -> dict[str, Any]:
        with self.lock:
            today = next((d for d in self.daily() if d["business_date"] == self.business_date),
                         None) or self._day_body(self.business_date, _Figures(max(len(self.machine.currencies), 1)))
            m = self.machine
            v = self.verification
            sealed_since = self.node.height - v.verified_height if v.verified_height is not None else 0
            return {
                **today, "height": self.node.height, "head_hash": self.node.head_hash.hex(),
                "state_root": m.state_root().hex(), "pending_trades": m.pending_trades(),
                "open_positions": len(m.positions),
                "verification": {"status": v.status, "verified_height": v.verified_height,
                                 "reason": v.reason, "sealed_since": sealed_since},
            }

    def health(self) -> dict[str, Any]:
        return {"status": "halted" if self.halted else "ok", "height": self.node.height,
                "business_date": self.business_date, "reason": self.halted}
