"""FIX and ISO 20022 messages at the API's doors: the trade batch a message stands for, its faults,
and the answers to it (35=AR acknowledgements, sese.024 status advices).

A client and the server derive the same canonical JSON trade batch from the same message bytes
(:func:`read_fix`, :func:`read_sese023`): the client signs that batch, the server derives it
again from the message it receives and checks the signature against what it derived, so the
ledger holds exactly the trades the message says.

A message is *malformed* when it cannot be read as a whole (FIX: bad framing, body length or
checksum, garbled, unsupported message type; XML: not well-formed, no instruction): the API
refuses it with the reader's reasons and cuts no block. A message that reads but holds items the
reader cannot turn into trades (a missing field, an unpaired side, two legs that disagree) is
answered item by item: those items are rejected with their reason, the others go to the ledger.

Imports clearhouse.clearing.batch, clearhouse.interfaces.fix and clearhouse.interfaces.iso20022.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import polars as pl

from clearhouse.clearing.batch import encode_trades_json
from clearhouse.interfaces.fix import (
    FixIntake,
    FixRejection,
    FixRejectReason,
    missing_field,
    parse_fixml_trade_capture,
    parse_trade_capture_reports,
    trade_capture_ack,
)
from clearhouse.interfaces.iso20022 import (
    InstructionTrades,
    Iso20022Intake,
    Iso20022Rejection,
    Iso20022RejectReason,
    Status,
    StatusAdvice,
    instructions_to_trades,
    parse_sese023,
    write_sese024,
)

#: FIX reader reasons that make a whole message malformed.
MALFORMED_FIX = frozenset({
    FixRejectReason.garbled, FixRejectReason.bad_body_length, FixRejectReason.bad_checksum,
    FixRejectReason.too_large, FixRejectReason.unsupported_msg_type, missing_field(35),
})
#: ISO 20022 reader reasons that make a whole document malformed.
MALFORMED_XML = frozenset({Iso20022RejectReason.not_xml, Iso20022RejectReason.no_instruction})
#: Trade results that leave the trade on the ledger (``exists``: accepted earlier, same body).
ON_LEDGER = frozenset({"ok", "exists"})
#: Our CompID on acknowledgements (SenderCompID), as the FIX session uses it.
CLEARHOUSE_COMP_ID = "CLEARHOUSE"
#: The sese.024 AcctOwnrTxId of an instruction without a usable TxId.
NO_REFERENCE = "NONREF"

_BOM = b"\xef\xbb\xbf"


@dataclass(frozen=True)
class FixBatch:
    """What a FIX or FIXML message yields.

    Attributes:
        intake: the reader's reports, trades and rejections.
        payload: the canonical JSON trade batch of the trades (what the submitter signs).
        faults: the rejections that make the message malformed (empty when it reads).
    """

    intake: FixIntake
    payload: bytes
    faults: tuple[FixRejection, ...]


@dataclass(frozen=True)
class Sese023Batch:
    """What a sese.023 document yields.

    Attributes:
        intake: the instructions read and the reader's rejections.
        paired: the trades made of the instructions and the instructions that made none.
        payload: the canonical JSON trade batch of the trades (what the submitter signs).
        faults: the rejections that make the document malformed (empty when it reads).
    """

    intake: Iso20022Intake
    paired: InstructionTrades
    payload: bytes
    faults: tuple[Iso20022Rejection, ...]


def batch_payload(trades: pl.DataFrame) -> bytes:
    """The canonical JSON trade batch (``encode_trades_json``) of a reader's trade rows."""
    return encode_trades_json(trades.to_dicts())


def read_fix(message: bytes) -> FixBatch:
    """Read FIX tag=value messages (SOH or ``|``) or a FIXML document (text starting with ``<``)."""
    text = bytes(message).lstrip().removeprefix(_BOM).lstrip()
    xml = text[:1] == b"<"
    intake = parse_fixml_trade_capture(text) if xml else parse_trade_capture_reports(message)
    faults = tuple(r for r in intake.rejections if r.reason in MALFORMED_FIX)
    return FixBatch(intake, batch_payload(intake.trades), faults)


def read_sese023(message: bytes) -> Sese023Batch:
    """Read a sese.023 document and pair its instructions into trades."""
    intake = parse_sese023(message)
    paired = instructions_to_trades(intake.instructions)
    faults = tuple(r for r in intake.rejections if r.reason in MALFORMED_XML)
    return Sese023Batch(intake, paired, batch_payload(paired.trades), faults)


def fix_rejections(rejections: Sequence[FixRejection]) -> list[dict[str, Any]]:
    """The reader's rejections as response items (``position``: the message's place in the input)."""
    return [{"position": r.msg_seq, "ref": r.ref, "reason": r.reason, "text": r.text} for r in rejections]


def iso_rejections(rejections: Sequence[Iso20022Rejection]) -> list[dict[str, Any]]:
    """The reader's rejections as response items (``position``: the instruction's place, 0 the document)."""
    return [{"position": r.position, "ref": r.ref, "reason": r.reason, "text": r.text} for r in rejections]


def trade_outcomes(results: Sequence[Mapping[str, str]]) -> dict[str, str]:
    """Per trade id, the result to answer with: ``ok`` or ``exists`` when a row with that id is on
    the ledger after the batch, else the result of its first row."""
    outcome: dict[str, str] = {}
    for r in results:
        if r["trade_id"] not in outcome or r["result"] in ON_LEDGER:
            outcome[r["trade_id"]] = r["result"]
    return outcome


def fix_sending_time(block_timestamp: str) -> str:
    """A block timestamp (``2026-01-08T07:00:03Z``, maybe with a fraction) as a FIX UTCTimestamp
    with milliseconds (``20260108-07:00:03.000``)."""
    fraction = block_timestamp[20:23] if block_timestamp[19:20] == "." else ""
    return f"{block_timestamp[:10].replace('-', '')}-{block_timestamp[11:19]}.{fraction.ljust(3, '0')}"


def fix_acks(intake: FixIntake, outcomes: Mapping[str, str], submitter: str, sending_time: str) -> list[dict[str, Any]]:
    """One 35=AR per report read: rejected with the reader's reason, or with the ledger's result
    for its trade; accepted when its trade is on the ledger. SOH is written ``|`` in ``message``."""
    refused = {r.msg_seq: r.reason for r in intake.rejections}
    acks = []
    for seq, report in enumerate(intake.reports, start=1):
        reason = refused.get(report.msg_seq)
        result = outcomes.get(report.clearing_trade_id, "") if reason is None else ""
        accepted = reason is None and result in ON_LEDGER
        if reason is None and not accepted:
            reason = result or "rejected"
        raw = trade_capture_ack(report, "accepted" if accepted else "rejected", reason, seq,
                                CLEARHOUSE_COMP_ID, report.sender or submitter, sending_time)
        acks.append({"report_ref": report.ref, "trade_id": report.clearing_trade_id,
                     "status": "accepted" if accepted else "rejected", "reason": reason,
                     "message": raw.replace(b"\x01", b"|").decode("utf-8", "replace")})
    return acks


# ISO 20022 reason codes (sese.024 RejectionReason / UnmatchedReason) for our reasons; the
# reason itself always goes along as the additional reason information.
_REJECTED_CODES = {
    "invalid_trade_id": "REFE", "exists_with_different_body": "REFE", "duplicate_in_batch": "REFE",
    "bad_trade_date": "DTRD", "trade_date_in_future": "DTRD", "trade_date_not_business_day": "DTRD",
    "bad_settlement_date": "DDAT", "settlement_date_before_trade_date": "DDAT",
    "settlement_date_not_business_day": "DDAT", "settlement_date_passed": "DDAT",
    "invalid_quantity": "DQUA", "non_positive_quantity": "DQUA", "quantity_not_lot_multiple": "DQUA",
    "invalid_price": "DDEA", "non_positive_price": "DDEA", "value_too_large": "DMON",
    "unknown_security": "DSEC", "unknown_buyer": "SAFE", "unknown_seller": "SAFE",
    "not_a_clearing_member": "SAFE", "missing_buyer": "SAFE", "missing_seller": "SAFE", "no_price": "DDEA",
    # missing_field:<Element>
    "TxId": "REFE", "SttlmDt": "DDAT", "FinInstrmId": "DSEC", "SttlmQty": "DQUA",
}
_UNMATCHED_CODES = {
    "quantity": "DQUA", "security_id": "DSEC", "settlement_date": "DDAT", "trade_date": "DTRD",
    "amount": "DMON", "currency": "NCRR", "deal_price": "DDEA",
}


def _refusal(reason: str) -> tuple[Status, str]:
    """The sese.024 status and reason code of an instruction refused for ``reason``."""
    head, _, detail = reason.partition(":")
    if head in (Iso20022RejectReason.pair_mismatch, Iso20022RejectReason.ambiguous_pair):
        return "unmatched", _UNMATCHED_CODES.get(detail, "OTHR")
    return "rejected", _REJECTED_CODES.get(detail or head, "OTHR")


def _reference(text: str) -> str:
    return text if 1 <= len(text) <= 35 else NO_REFERENCE


def _status_item(instruction_id: str, trade_id: str, reason: str | None, pending: bool) -> dict[str, Any]:
    servicer = trade_id if 1 <= len(trade_id) <= 35 else ""
    if reason is None:
        status: Status = "pending" if pending else "matched"
        advice = StatusAdvice(_reference(instruction_id), status, ("FUTU",) if pending else (), servicer)
    else:
        status, code = _refusal(reason)
        advice = StatusAdvice(_reference(instruction_id), status, (code,), servicer, reason[:210])
    return {"instruction_id": instruction_id, "trade_id": trade_id, "status": status,
            "reasons": list(advice.reasons), "reason": reason,
            "sese024": write_sese024(advice).decode("utf-8")}


def sese024_statuses(batch: Sese023Batch, outcomes: Mapping[str, str], business_date: str) -> list[dict[str, Any]]:
    """One sese.024 per instruction, in document order: ``rejected`` (with a RejectionReason code)
    when the reader or the ledger refused it, ``unmatched`` when its legs disagree, ``pending``
    (FUTU) when its trade is on the ledger and settles after ``business_date``, else ``matched``."""
    rows = batch.intake.instructions.to_dicts()
    read_refused = {r.position: r for r in batch.intake.rejections if r.position > 0}
    pair_refused = {r.position - 1: r.reason for r in batch.paired.rejections}
    settles = dict(zip(batch.paired.trades["trade_id"].to_list(),
                       batch.paired.trades["settlement_date"].to_list(), strict=True))
    row_numbers = iter(range(len(rows)))
    statuses = []
    for position in range(1, len(rows) + len(read_refused) + 1):
        if position in read_refused:
            refused = read_refused[position]
            statuses.append(_status_item(refused.ref, "", refused.reason, False))
            continue
        i = next(row_numbers)
        trade_id = batch.paired.trade_ids[i]
        reason = pair_refused.get(i)
        if reason is None:
            result = outcomes.get(trade_id, "")
            reason = None if result in ON_LEDGER else result or "rejected"
        statuses.append(_status_item(rows[i]["instruction_id"], trade_id, reason,
                                     reason is None and settles.get(trade_id, "") > business_date))
    return statuses
