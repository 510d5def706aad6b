"""The CCP's node behind the API: every write cuts one block, every read answers from the node.

``LedgerService`` opens a data directory's node (replayed to its head), holds the sequencer's and
the CCP's keys from ``DATA/keys``, and serialises every request on one lock, so the state
machine only ever sees one block at a time. The business date is the last block's date; the CCP
operator opens the next one with an empty block at the new date, so every node agrees on it.
Block timestamps derive from the business date and the block's rank within that day exactly as
``clearhouse.cycle.run`` derives them; nothing here reads the clock (the journal notes when a
submission arrived). An invariant breach or a storage failure halts the service: it then refuses
everything but ``/health``.

Trades come through four doors: signed JSON batches (``POST /trades``), FIX Trade Capture
Reports and ISO 20022 sese.023 instructions, each signed by its submitter over the batch the
message yields (``messages``), and the venue's FIX session, signed with the venue's key the
server holds. Every submission is journalled with its door (``journal``). Holdings go out as
semt.002 statements and settled instructions as sese.025 confirmations.
Imports clearhouse.core, ledger, clearing, settlement, state, node, cycle, the FIX and ISO 20022
interfaces and the API's own modules only.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from clearhouse.clearing.batch import decode_trades
from clearhouse.contracts.oracle import OracleObservation
from clearhouse.core.calendar import day_number, from_day_number
from clearhouse.core.errors import ClearhouseError, InputError
from clearhouse.core.exact import exact_bincount
from clearhouse.core.money import format_minor
from clearhouse.core.results import SubmissionStatus, TradeResult
from clearhouse.cycle.run import (
    EXCHANGE,
    LEDGER_FILE,
    SEQUENCER,
    TRADES_PER_SUBMISSION,
    block_timestamp,
    open_node,
    sign,
)
from clearhouse.interfaces.api.errors import ApiError, not_found
from clearhouse.interfaces.api.journal import JOURNAL_FILE, Journal
from clearhouse.interfaces.api.messages import (
    ON_LEDGER,
    batch_payload,
    fix_acks,
    fix_rejections,
    fix_sending_time,
    iso_rejections,
    read_fix,
    read_sese023,
    sese024_statuses,
    trade_outcomes,
)
from clearhouse.interfaces.fix import FixIntake
from clearhouse.interfaces.iso20022 import (
    HoldingsStatement,
    SettlementConfirmation,
    write_semt002,
    write_sese025,
)
from clearhouse.ledger.crypto import KeyPair, KeyStore, verify_signature
from clearhouse.ledger.merkle import merkle_proof
from clearhouse.ledger.records import BlockHeader, Submission
from clearhouse.ledger.verify import verify_store
from clearhouse.node.node import Node
from clearhouse.node.rows import holdings_view
from clearhouse.settlement.dvp import REASONS
from clearhouse.state.kinds import Kind, Role, encode_json
from clearhouse.state.machine import CASH_LINE_PREFIX, Participant, Positions, StateMachine

PAYLOAD_MAX = 8 * 1024 * 1024
NEXT_DAY_MAX = dt.timedelta(days=366)
_DAY_BLOCKS_MAX = 17 * 3600 + 999_998  # block_timestamp's last one of a day, 23:59:59.999999
_TRADE_RESULTS = [r.name for r in TradeResult]


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
        self.journal = Journal(data_dir / JOURNAL_FILE)
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
        """A signed trade batch from ``POST /trades``: one block, each trade's result."""

        def submit() -> dict[str, Any]:
            payload = self._payload(payload_text, encoding)
            return self._submit_batch(participant_id, submission_id, payload, signature_hex)[0]

        return self._journaled("REST", participant_id, submission_id, None, submit)

    def _submit_batch(self, participant_id: str, submission_id: str, payload: bytes,
                      signature_hex: str) -> tuple[dict[str, Any], BlockView]:
        """Sequence a signed trade batch; the answer and the block that holds it."""
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
        }, view

    def _journaled(self, door: str, submitter: str, submission_id: str, message: bytes | None,
                   submit: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        """Run a submission and journal how it ended, refusals included."""
        try:
            body = submit()
        except ApiError as exc:
            self._journal_refusal(door, submitter, submission_id, exc)
            raise
        self.journal.add(door, submitter, submission_id, self.business_date, body, message)
        return body

    def _journal_refusal(self, door: str, submitter: str, submission_id: str, exc: ApiError) -> None:
        detail = exc.detail if isinstance(exc.detail, str) else ", ".join(
            sorted({str(item.get("reason")) for item in exc.detail if isinstance(item, dict)}))
        self.journal.add(door, submitter, submission_id, self.business_date,
                         {"status": "refused", "reason": f"{exc.error}: {detail}"[:300]})

    # ---------------------------------------------------------------- FIX and ISO 20022 doors

    def _message_door(self, door: str, submitter: str, submission_id: str, message_b64: str,
                      submit: Callable[[bytes], dict[str, Any]]) -> dict[str, Any]:
        """Decode a base64 message and submit what it yields, journalled under its door."""
        try:
            message = self._payload(message_b64, "base64")
        except ApiError as exc:
            self._journal_refusal(door, submitter, submission_id, exc)
            raise
        return self._journaled(door, submitter, submission_id, message, lambda: submit(message))

    def _submit_derived(self, submitter: str, submission_id: str, payload: bytes, payload_sha256: str,
                        signature_hex: str) -> tuple[dict[str, Any], BlockView]:
        """Submit the batch the server derived from a message, if it is the batch the client signed."""
        derived = hashlib.sha256(payload).hexdigest()
        if derived != payload_sha256.lower():
            raise ApiError(400, "payload_mismatch",
                           f"the message yields the trade batch with sha256 {derived}, not the signed one "
                           f"({payload_sha256}); derive and sign it with client.sign_fix or client.sign_sese023")
        return self._submit_batch(submitter, submission_id, payload, signature_hex)

    def submit_fix(self, participant_id: str, submission_id: str, message_b64: str, payload_sha256: str,
                   signature_hex: str) -> dict[str, Any]:
        """FIX Trade Capture Reports (tag=value or FIXML) as one signed batch; 35=AR per report."""

        def submit(message: bytes) -> dict[str, Any]:
            batch = read_fix(message)
            rejections = fix_rejections(batch.intake.rejections)
            if batch.faults:
                raise ApiError(422, "malformed_message", rejections)
            if batch.intake.trades.is_empty():
                raise ApiError(422, "no_trades", rejections)
            body, view = self._submit_derived(participant_id, submission_id, batch.payload, payload_sha256,
                                              signature_hex)
            acks = fix_acks(batch.intake, trade_outcomes(body["results"]), participant_id,
                            fix_sending_time(view.header.timestamp))
            return {**body, "message_sha256": hashlib.sha256(message).hexdigest(), "rejections": rejections,
                    "acks": acks}

        return self._message_door("FIX", participant_id, submission_id, message_b64, submit)

    def submit_sese023(self, participant_id: str, submission_id: str, message_b64: str, payload_sha256: str,
                       signature_hex: str) -> dict[str, Any]:
        """ISO 20022 sese.023 settlement instructions as one signed batch; a sese.024 per instruction."""

        def submit(message: bytes) -> dict[str, Any]:
            batch = read_sese023(message)
            rejections = iso_rejections([*batch.intake.rejections, *batch.paired.rejections])
            if batch.faults:
                raise ApiError(422, "malformed_message", rejections)
            if batch.paired.trades.is_empty():
                raise ApiError(422, "no_trades", rejections)
            body, view = self._submit_derived(participant_id, submission_id, batch.payload, payload_sha256,
                                              signature_hex)
            statuses = sese024_statuses(batch, trade_outcomes(body["results"]), view.header.business_date)
            return {**body, "message_sha256": hashlib.sha256(message).hexdigest(), "rejections": rejections,
                    "statuses": statuses}

        return self._message_door("ISO 20022", participant_id, submission_id, message_b64, submit)

    def fix_session_handler(self) -> tuple[str, Callable[[FixIntake], dict[str, str]]]:
        """The venue the FIX session serves and the handler of the trades it reports.

        The server signs for no member, so the session is the venue's (``EXCHANGE``, whose key
        is under ``DATA/keys``): its trades are submitted and signed as the venue's. The
        handler answers, per trade id the ledger refused, the result code (what ``serve_fix``
        acknowledges as rejected). Raises ``InputError`` when the key is missing or not the
        ledger's.
        """
        venue = self.participant(EXCHANGE)
        keys = KeyStore(self.data_dir / "keys")
        if venue is None or venue.role != Role.venue:
            raise InputError(f"the ledger has no venue {EXCHANGE}: nobody to hold a FIX session for")
        if not keys.has(EXCHANGE) or keys.load(EXCHANGE).public_key != venue.public_key:
            raise InputError(f"no key of {EXCHANGE} under {self.data_dir / 'keys'} matching the ledger")
        key = keys.load(EXCHANGE)

        def on_trades(intake: FixIntake) -> dict[str, str]:
            if intake.trades.is_empty():
                return {}
            payload = batch_payload(intake.trades)
            sid = f"fix-session-{hashlib.sha256(payload).hexdigest()[:32]}"
            signature = key.sign(Submission.digest_for(sid, str(Kind.trades), EXCHANGE, payload)).hex()
            try:
                body = self._journaled("FIX session", EXCHANGE, sid, None,
                                       lambda: self._submit_batch(EXCHANGE, sid, payload, signature)[0])
            except ApiError as exc:
                return dict.fromkeys(intake.trades["trade_id"].to_list(), exc.error)
            return {t: r for t, r in trade_outcomes(body["results"]).items() if r not in ON_LEDGER}

        return EXCHANGE, on_trades

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
                if not isinstance(o, OracleObservation):
                    continue
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
                                    "as_of_height": as_of, **holdings_view(rows)}
        for p in body["open_positions"]:
            due = p["settlement_date"]
            p["failing"] = due < today or (due == today and settled_today)
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
            obligations: list[dict[str, Any]] = []
            cash: dict[tuple[str, str], int] = {}
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

    def semt002(self, participant_id: str) -> bytes:
        """The participant's statement of holdings (semt.002) from its stored head rows, dated the
        business date; 422 when a holding cannot be written (a security id that is not an ISIN)."""
        with self.lock:
            self._check_running()
            self._member_index(participant_id)
            as_of, rows = self.node.store.state_rows(participant_id)
            day = self.business_date.isoformat()
        holdings = tuple((r.asset, int(r.value)) for r in rows if r.table == "securities")
        try:
            statement = HoldingsStatement(participant_id, day, holdings, f"HEIGHT-{as_of}")
        except ValueError as exc:
            raise ApiError(422, "not_representable", f"no semt.002 for {participant_id}: {exc}") from exc
        return write_semt002(statement)

    def sese025(self, participant_id: str, settlement_date: dt.date | None) -> dict[str, Any]:
        """A sese.025 confirmation per settlement instruction of the participant that moved
        securities or cash (settled, or partly), of every cycle or one settlement date. The
        reserved cash-only lines (contract payments) are payments, not securities settlements,
        and have none; 422 when an instruction cannot be written (a security id not an ISIN)."""
        with self.lock:
            self._check_running()
            m = self.machine
            idx = self._member_index(participant_id)
            wanted = None if settlement_date is None else day_number(settlement_date)
            moved = []
            for number, cyc in enumerate(m.history.cycles):
                if wanted is not None and cyc.day != wanted:
                    continue
                mine = (cyc.member == idx) & ((cyc.settled_quantity != 0) | (cyc.settled_cash != 0))
                date = from_day_number(cyc.day)
                for i in np.flatnonzero(mine).tolist():
                    sec = m.securities[int(cyc.security[i])]
                    if not sec.id.startswith(CASH_LINE_PREFIX):
                        moved.append((f"{date:%Y%m%d}-{number}-{sec.id}", date, sec.id, sec.currency,
                                      int(cyc.quantity[i]), int(cyc.cash[i]), int(cyc.settled_quantity[i]),
                                      int(cyc.settled_cash[i]), bool(cyc.settled[i])))
            height = self.node.height
        confirmations = []
        for instruction_id, date, security_id, currency, quantity, cash, settled_qty, settled_cash, full in moved:
            movement: Literal["DELI", "RECE"] = "DELI" if quantity < 0 else "RECE"
            unusual = bool(cash) and (movement == "DELI") != (cash > 0)  # a delivery that pays, or the reverse
            try:
                confirmation = SettlementConfirmation(
                    instruction_id, security_id, movement, "APMT" if cash else "FREE", abs(settled_qty),
                    date.isoformat(), abs(settled_cash) if cash else None, currency if cash else "",
                    safekeeping_account=participant_id if len(participant_id) <= 35 else "",
                    cash_direction=("CRDT" if cash > 0 else "DBIT") if unusual else None,
                )
            except ValueError as exc:
                raise ApiError(422, "not_representable", f"no sese.025 for {instruction_id}: {exc}") from exc
            confirmations.append({"instruction_id": instruction_id, "settlement_date": date,
                                  "security_id": security_id, "status": "settled" if full else "partial",
                                  "sese025": write_sese025(confirmation).decode("utf-8")})
        return {"participant_id": participant_id, "height": height, "confirmations": confirmations}

    def messages(self, business_date: dt.date | None, submitter: str | None, limit: int) -> dict[str, Any]:
        """The journal's entries of a business date (today's by default), newest first."""
        day = business_date or self.business_date
        return {"business_date": day, "messages": self.journal.entries(day, submitter, limit)}

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
