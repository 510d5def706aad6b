"""FIX intake: Trade Capture Reports in, acknowledgements out, and a minimal FIX session.

What lives here:

- :func:`parse_trade_capture_reports` reads FIX tag=value messages (SOH-separated, or ``|``
  standing for SOH in files) and :func:`parse_fixml_trade_capture` reads FIXML ``TrdCaptRpt``;
  both turn Trade Capture Reports (35=AE) into trade rows of string columns
  (:data:`TRADE_COLUMNS`) for the core to validate, and report every message they cannot use as a
  :class:`FixRejection`. They never raise on hostile bytes.
- :func:`trade_capture_ack` writes a TradeCaptureReportAck (35=AR).
- :class:`FixSession` is the FIX session layer as a pure state machine (bytes in, bytes out; time
  comes from an injected clock), and :func:`serve_fix` runs it behind an asyncio TCP server.

How a report becomes a trade (documented once here):

- ``trade_id``: TradeReportID(571), else ExecID(17). A one-sided report (one side named) is paired
  with the report of the other side from the same input that carries the same TradeID(1003), or
  TrdMatchID(880) when no TradeID is given; the pair becomes one trade whose ``trade_id`` is that
  shared id.
- ``trade_date``: TradeDate(75), else the date of TransactTime(60); ``settlement_date``:
  SettlDate(64) or ``""`` (the default cycle). FIX dates ``YYYYMMDD`` are written ``YYYY-MM-DD``;
  any other text is passed on as it stands for the core to reject.
- ``security_id``: SecurityID(48) when its source (22) is ISIN (4), else Symbol(55), else
  SecurityID(48). ``quantity``: LastQty(32); ``price``: LastPx(31), as written.
- ``buyer`` / ``seller``: the sides of NoSides(552); Side(54) 1 or 3 buys, 2, 4, 5 or 6 sells.
  Within a side, the party (448 with its PartyRole 452) is taken in the order of
  :data:`PARTY_ROLE_PRIORITY`: executing firm, clearing firm, entering firm, order origination
  firm. Parties (448/452) belong to the side (54) they follow.

Rejection reasons (:class:`FixRejectReason`; ``missing_field`` is written ``missing_field:<tag>``).

May import simplefix, lxml, polars, the standard library and ``clearhouse.core`` only; never the
state machine, storage, sequencing or another interface.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from enum import StrEnum
from typing import Literal

import polars as pl
import simplefix
from lxml import etree

from clearhouse.clearing.batch import REQUIRED_COLUMNS

#: The trade intake columns a message fills, all strings, in order (``settlement_date`` may be ``""``).
TRADE_COLUMNS: tuple[str, ...] = (*REQUIRED_COLUMNS, "settlement_date")

#: Largest message body accepted; bigger ones are rejected as ``too_large`` unread.
MAX_MESSAGE_BYTES = 65_536

#: Party roles (452) that name a side's participant, most preferred first: executing firm,
#: clearing firm, entering firm, order origination firm.
PARTY_ROLE_PRIORITY: tuple[str, ...] = ("1", "4", "7", "13")

BUY_SIDES = frozenset({"1", "3"})
SELL_SIDES = frozenset({"2", "4", "5", "6"})

SOH = b"\x01"
_BEGIN = b"8=FIX"


class FixRejectReason(StrEnum):
    """Why a FIX or FIXML message did not become a trade.

    ``garbled``: the bytes are not a readable message (no framing, non-numeric tag, empty value,
    truncated, not well-formed XML). ``bad_body_length``: BodyLength(9) does not point at the
    CheckSum field. ``bad_checksum``: CheckSum(10) is not the sum of the bytes modulo 256.
    ``too_large``: body longer than :data:`MAX_MESSAGE_BYTES`. ``unsupported_msg_type``: not a
    Trade Capture Report. ``missing_field``: a required field is absent, written
    ``missing_field:<tag>``. ``missing_buyer`` / ``missing_seller``: no side names that party.
    ``unpaired_side``: a one-sided report whose other side is not in the same input.
    ``mismatched_sides``: the one-sided reports sharing a trade id disagree, or are not one buy
    and one sell.
    """

    garbled = "garbled"
    bad_body_length = "bad_body_length"
    bad_checksum = "bad_checksum"
    too_large = "too_large"
    unsupported_msg_type = "unsupported_msg_type"
    missing_field = "missing_field"
    missing_buyer = "missing_buyer"
    missing_seller = "missing_seller"
    unpaired_side = "unpaired_side"
    mismatched_sides = "mismatched_sides"


def missing_field(tag: int) -> str:
    """The rejection reason for an absent required field, e.g. ``missing_field:571``."""
    return f"{FixRejectReason.missing_field}:{tag}"


@dataclass(frozen=True)
class FixRejection:
    """One message that did not become a trade.

    Attributes:
        msg_seq: 1-based position of the message in the input; 0 for bytes outside any message.
        ref: the message's own reference where one could be read (TradeReportID, else ExecID,
            else MsgSeqNum), else ``""``.
        reason: a :class:`FixRejectReason` value, or ``missing_field:<tag>``.
        text: a human-readable detail.
    """

    msg_seq: int
    ref: str
    reason: str
    text: str


@dataclass(frozen=True)
class TradeCaptureReport:
    """The fields of one Trade Capture Report as read, before it becomes a trade.

    Attributes:
        msg_seq: 1-based position of the message in the input.
        seq_num: MsgSeqNum(34) (FIXML: ``Hdr/@SeqNum``), as written.
        sender: SenderCompID(49) (FIXML: ``Hdr/@SID``).
        target: TargetCompID(56) (FIXML: ``Hdr/@TID``).
        begin_string: BeginString(8) (FIXML: ``"FIXT.1.1"``).
        trade_report_id: TradeReportID(571) (FIXML: ``RptID``).
        exec_id: ExecID(17).
        trade_id: TradeID(1003) (FIXML: ``TrdID``), the id both sides share.
        match_id: TrdMatchID(880) (FIXML: ``MtchID``).
        trans_type: TradeReportTransType(487) (FIXML: ``TransTyp``).
        report_type: TradeReportType(856) (FIXML: ``RptTyp``).
        trade_date: as in the trade row (see the module docstring).
        settlement_date: as in the trade row.
        security_id: as in the trade row.
        security_id_source: SecurityIDSource(22) (FIXML: ``Instrmt/@Src``).
        symbol: Symbol(55) (FIXML: ``Instrmt/@Sym``).
        quantity: LastQty(32).
        price: LastPx(31).
        currency: Currency(15) (FIXML: ``Ccy``).
        buyer: the buying side's participant, ``""`` when no side names one.
        seller: the selling side's participant, ``""`` when no side names one.
        side_count: how many sides the report carries.
        poss_dup: PossDupFlag(43) is ``Y``.
        clearing_trade_id: the ``trade_id`` of the trade row it became, ``""`` when rejected.
    """

    msg_seq: int
    seq_num: str = ""
    sender: str = ""
    target: str = ""
    begin_string: str = ""
    trade_report_id: str = ""
    exec_id: str = ""
    trade_id: str = ""
    match_id: str = ""
    trans_type: str = ""
    report_type: str = ""
    trade_date: str = ""
    settlement_date: str = ""
    security_id: str = ""
    security_id_source: str = ""
    symbol: str = ""
    quantity: str = ""
    price: str = ""
    currency: str = ""
    buyer: str = ""
    seller: str = ""
    side_count: int = 0
    poss_dup: bool = False
    clearing_trade_id: str = ""

    @property
    def ref(self) -> str:
        """The report's own reference: TradeReportID, else ExecID, else MsgSeqNum."""
        return self.trade_report_id or self.exec_id or self.seq_num


@dataclass(frozen=True)
class FixIntake:
    """What a FIX or FIXML input yielded.

    Attributes:
        trades: one row per trade, the string columns of :data:`TRADE_COLUMNS`.
        rejections: every message (or stray bytes) that did not become a trade.
        reports: every Trade Capture Report that could be read, accepted or not, in input order.
    """

    trades: pl.DataFrame
    rejections: list[FixRejection] = field(default_factory=list)
    reports: list[TradeCaptureReport] = field(default_factory=list)


# --------------------------------------------------------------------------------------------
# Framing: split bytes into messages and check BodyLength and CheckSum.


@dataclass(frozen=True)
class _Frame:
    """A framed message, or a stretch of stray bytes between messages.

    Attributes:
        raw: the message bytes, BeginString through the CheckSum field (empty when unframed).
        fault: ``None`` when framing, length and checksum are right, else a reject reason.
        text: detail for a fault.
        stray: the bytes lie outside any message (no BeginString starts them).
    """

    raw: bytes
    fault: str | None = None
    text: str = ""
    stray: bool = False


_TRAILER_SHAPE = b"10=000\x01"


def _find_begin(buf: bytes, pos: int) -> int:
    """Index of the next ``8=FIX`` at or after ``pos``, or -1. Like other FIX engines this
    resynchronises on ``8=FIX`` wherever it appears; inside a well-framed message the bytes are
    never searched, so only stray or broken bytes can yield a false start."""
    return buf.find(_BEGIN, pos)


def _trailer_end(buf: bytes, at: int, final: bool) -> int:
    """End of the ``10=nnn<SOH>`` field that should start at ``at``.

    Returns -1 when it is not there and -2 when the data stops before it could be (stream).
    At the very end of a final input the closing SOH may be missing.
    """
    n = len(buf)
    if at > n:
        return -1 if final else -2
    if at < 1 or buf[at - 1] != 1:
        return -1
    head = buf[at : at + 7]
    for i, byte in enumerate(head):
        if i < 3 or i == 6:
            if byte != _TRAILER_SHAPE[i]:
                return -1
        elif not 48 <= byte <= 57:
            return -1
    if len(head) == 7:
        return at + 7
    if len(head) == 6 and final:
        return n
    return -1 if final else -2


def _next_trailer_end(buf: bytes, start: int, final: bool) -> int:
    """End of the first complete CheckSum field after ``start`` and before the next BeginString
    (within one message's reach), or -1."""
    limit = min(len(buf), start + MAX_MESSAGE_BYTES + 64)
    begin = _find_begin(buf, start)
    if begin >= 0:
        limit = min(limit, begin)
    trailer = buf.find(b"\x0110=", start, limit)
    while trailer >= 0:
        end = _trailer_end(buf, trailer + 1, final)
        if end >= 0:
            return end
        trailer = buf.find(b"\x0110=", trailer + 1, limit)
    return -1


def _resync(buf: bytes, start: int, final: bool) -> int:
    """Where to go on after a bad message starting at ``start``: past its CheckSum field or at
    the next BeginString, whichever comes first; the bytes skipped belong to the bad message."""
    trailer_end = _next_trailer_end(buf, start + 2, final)
    if trailer_end >= 0:
        return trailer_end
    begin = _find_begin(buf, start + 2)
    if begin >= 0:
        return begin
    return len(buf) if final else max(start + 2, len(buf) - len(_BEGIN))


def _split_frames(buf: bytes, final: bool) -> tuple[list[_Frame], int]:
    """Frame ``buf`` into messages; returns the frames and how many bytes were consumed.

    With ``final`` false (a stream), an incomplete message at the end is left unconsumed for the
    next call, unless a CheckSum field already shows its BodyLength wrong; with ``final`` true it
    is reported. Work is linear in ``len(buf)``: every search is bounded or moves forward.
    """
    frames: list[_Frame] = []
    n = len(buf)
    pos = 0
    while pos < n:
        start = _find_begin(buf, pos)
        if start < 0:
            if not final and n - pos <= MAX_MESSAGE_BYTES:
                return frames, pos
            stop = n if final else n - len(_BEGIN) + 1
            if buf[pos:stop].strip():
                frames.append(_Frame(b"", FixRejectReason.garbled, "bytes outside any message", True))
            return frames, stop
        if buf[pos:start].strip():
            frames.append(_Frame(b"", FixRejectReason.garbled, "bytes outside any message", True))
        pos = start
        begin_end = buf.find(SOH, start, start + 40)
        if begin_end < 0:
            if not final and n - start < 40:
                return frames, start
            frames.append(_Frame(b"", FixRejectReason.garbled, "BeginString(8) not terminated"))
            pos = _resync(buf, start, final)
            continue
        length_end = buf.find(SOH, begin_end + 1, begin_end + 16)
        if length_end < 0 and not final and n - begin_end < 16:
            return frames, start
        if length_end < 0 or buf[begin_end + 1 : begin_end + 3] != b"9=":
            frames.append(_Frame(b"", FixRejectReason.garbled, "BodyLength(9) must follow BeginString(8)"))
            pos = _resync(buf, start, final)
            continue
        digits = buf[begin_end + 3 : length_end]
        if not digits.isdigit():
            frames.append(_Frame(b"", FixRejectReason.bad_body_length, "BodyLength(9) not a number"))
            pos = _resync(buf, start, final)
            continue
        length = int(digits)
        if length > MAX_MESSAGE_BYTES:
            frames.append(_Frame(b"", FixRejectReason.too_large, f"BodyLength {length} > {MAX_MESSAGE_BYTES}"))
            pos = _resync(buf, start, final)
            continue
        body_end = length_end + 1 + length
        end = _trailer_end(buf, body_end, final)
        if end < 0:
            early = _next_trailer_end(buf, length_end, final)
            if end == -2 and early < 0:
                return frames, start
            if final and early < 0 and body_end + 7 > n:
                frames.append(_Frame(b"", FixRejectReason.garbled, "message cut short"))
            else:
                frames.append(
                    _Frame(
                        b"",
                        FixRejectReason.bad_body_length,
                        f"BodyLength {length} does not end at CheckSum(10)",
                    )
                )
            pos = _resync(buf, start, final)
            continue
        raw = buf[start:end]
        declared = int(buf[body_end + 3 : body_end + 6])
        actual = sum(buf[start:body_end]) % 256
        if declared != actual:
            text = f"CheckSum {declared:03d}, computed {actual:03d}"
            frames.append(_Frame(raw, FixRejectReason.bad_checksum, text))
        else:
            frames.append(_Frame(raw))
        pos = end
    return frames, n


def _decode(raw: bytes) -> list[tuple[int, str]] | None:
    """The (tag, value) pairs of one framed message via simplefix, or ``None`` if unreadable."""
    parser = simplefix.FixParser(allow_empty_values=False)
    parser.append_buffer(raw)
    try:
        message = parser.get_message()
    except Exception:  # simplefix raises several error types on hostile bytes
        return None
    if message is None or parser.get_buffer():
        return None
    return [(int(tag), value.decode("utf-8", "replace")) for tag, value in message.pairs]


def _first(pairs: Sequence[tuple[int, str]], tag: int) -> str:
    for t, value in pairs:
        if t == tag:
            return value
    return ""


# --------------------------------------------------------------------------------------------
# Report fields -> trades.


def _fix_date(value: str) -> str:
    """``YYYYMMDD`` -> ``YYYY-MM-DD``; any other text unchanged."""
    if len(value) == 8 and value.isascii() and value.isdigit():
        return f"{value[:4]}-{value[4:6]}-{value[6:]}"
    return value


def _date_of_timestamp(value: str) -> str:
    """The date of a FIX ``YYYYMMDD-HH:MM:SS`` or ISO ``YYYY-MM-DDTHH:MM:SS`` timestamp."""
    if len(value) >= 10 and value[4:5] == "-" and value[7:8] == "-":
        return value[:10]
    return _fix_date(value[:8])


def _pick_party(parties: Sequence[tuple[str, str]]) -> str:
    """The side's participant: the party of the most preferred role, ``""`` if none."""
    for role in PARTY_ROLE_PRIORITY:
        for party_id, party_role in parties:
            if party_role == role and party_id:
                return party_id
    return ""


def _resolve_sides(sides: Sequence[tuple[str, list[tuple[str, str]]]]) -> tuple[str, str]:
    buyer = seller = ""
    for side, parties in sides:
        party = _pick_party(parties)
        if side in BUY_SIDES and not buyer:
            buyer = party
        elif side in SELL_SIDES and not seller:
            seller = party
    return buyer, seller


def _security(security_id: str, source: str, symbol: str) -> str:
    if security_id and source == "4":
        return security_id
    return symbol or security_id


def _report_from_pairs(msg_seq: int, pairs: Sequence[tuple[int, str]]) -> TradeCaptureReport:
    sides: list[tuple[str, list[tuple[str, str]]]] = []
    in_sides = False
    for tag, value in pairs:
        if tag == 552:
            in_sides = True
        elif in_sides and tag == 54:
            sides.append((value, []))
        elif sides and tag == 448:
            sides[-1][1].append((value, ""))
        elif sides and tag == 452 and sides[-1][1]:
            party_id, _ = sides[-1][1][-1]
            sides[-1][1][-1] = (party_id, value)
    buyer, seller = _resolve_sides(sides)
    trade_date = _fix_date(_first(pairs, 75)) or _date_of_timestamp(_first(pairs, 60))
    return TradeCaptureReport(
        msg_seq=msg_seq,
        seq_num=_first(pairs, 34),
        sender=_first(pairs, 49),
        target=_first(pairs, 56),
        begin_string=_first(pairs, 8),
        trade_report_id=_first(pairs, 571),
        exec_id=_first(pairs, 17),
        trade_id=_first(pairs, 1003),
        match_id=_first(pairs, 880),
        trans_type=_first(pairs, 487),
        report_type=_first(pairs, 856),
        trade_date=trade_date,
        settlement_date=_fix_date(_first(pairs, 64)),
        security_id=_security(_first(pairs, 48), _first(pairs, 22), _first(pairs, 55)),
        security_id_source=_first(pairs, 22),
        symbol=_first(pairs, 55),
        quantity=_first(pairs, 32),
        price=_first(pairs, 31),
        currency=_first(pairs, 15),
        buyer=buyer,
        seller=seller,
        side_count=len(sides),
        poss_dup=_first(pairs, 43) == "Y",
    )


def _missing(report: TradeCaptureReport) -> int | None:
    """The tag of the first required field the report lacks, or ``None``."""
    checks = (
        (571, report.trade_report_id or report.exec_id),
        (75, report.trade_date),
        (48, report.security_id),
        (32, report.quantity),
        (31, report.price),
        (552, report.side_count),
    )
    for tag, value in checks:
        if not value:
            return tag
    return None


_PAIR_FIELDS = ("trade_date", "settlement_date", "security_id", "quantity", "price")


def _assemble(reports: list[TradeCaptureReport], rejections: list[FixRejection]) -> FixIntake:
    """Turn read reports into trades: two-sided ones directly, one-sided ones by pairing."""
    rows: dict[str, list[str]] = {c: [] for c in TRADE_COLUMNS}
    done: dict[int, TradeCaptureReport] = {}

    def emit(trade_id: str, base: TradeCaptureReport, buyer: str, seller: str) -> None:
        values = (
            trade_id,
            base.trade_date,
            buyer,
            seller,
            base.security_id,
            base.quantity,
            base.price,
            base.settlement_date,
        )
        for column, value in zip(TRADE_COLUMNS, values, strict=True):
            rows[column].append(value)

    def reject(report: TradeCaptureReport, reason: str, text: str) -> None:
        rejections.append(FixRejection(report.msg_seq, report.ref, reason, text))
        done[report.msg_seq] = report

    one_sided: dict[str, list[TradeCaptureReport]] = {}
    for report in reports:
        tag = _missing(report)
        if tag is not None:
            reject(report, missing_field(tag), f"required field {tag} is absent")
        elif report.buyer and report.seller:
            trade_id = report.trade_report_id or report.exec_id
            emit(trade_id, report, report.buyer, report.seller)
            done[report.msg_seq] = replace(report, clearing_trade_id=trade_id)
        elif not report.buyer and not report.seller:
            reject(report, FixRejectReason.missing_buyer, "no side names a buyer or a seller")
        elif not (report.trade_id or report.match_id):
            reason = FixRejectReason.missing_seller if report.buyer else FixRejectReason.missing_buyer
            reject(report, reason, "one-sided report without TradeID(1003) to pair it by")
        else:
            one_sided.setdefault(report.trade_id or report.match_id, []).append(report)

    for key, group in one_sided.items():
        distinct = list({(r.ref, r.buyer, r.seller): r for r in group}.values())  # resends count once
        buys = [r for r in distinct if r.buyer]
        sells = [r for r in distinct if r.seller]
        if len(distinct) == 1:
            for report in group:
                reject(report, FixRejectReason.unpaired_side, f"no other side for trade {key}")
            continue
        differing = [name for name in _PAIR_FIELDS if len({getattr(r, name) for r in distinct}) > 1]
        if len(buys) != 1 or len(sells) != 1 or differing:
            detail = ", ".join(differing) or f"{len(buys)} buy and {len(sells)} sell reports"
            for report in group:
                reject(report, FixRejectReason.mismatched_sides, f"trade {key}: {detail}")
            continue
        emit(key, buys[0], buys[0].buyer, sells[0].seller)
        for report in group:
            done[report.msg_seq] = replace(report, clearing_trade_id=key)

    trades = pl.DataFrame(rows, schema={c: pl.String for c in TRADE_COLUMNS})
    ordered = [done[r.msg_seq] for r in reports]
    rejections.sort(key=lambda r: r.msg_seq)
    return FixIntake(trades=trades, rejections=rejections, reports=ordered)


# --------------------------------------------------------------------------------------------
# Public parsers.


def _normalise_separators(data: bytes) -> bytes:
    """Files write SOH as ``|``; on the wire it is SOH. Only a text without SOH is converted."""
    if SOH not in data and b"|" in data:
        return data.replace(b"|", SOH)
    return data


def parse_trade_capture_reports(data: bytes) -> FixIntake:
    """Read one or many FIX tag=value messages and turn the Trade Capture Reports into trades.

    Messages may be separated by whitespace or newlines; ``|`` stands for SOH when the input
    holds no SOH. Each message is framed by BodyLength(9) and checked against CheckSum(10)
    before simplefix decodes it. Never raises on hostile bytes; work is linear in the input.
    """
    frames, _ = _split_frames(_normalise_separators(bytes(data)), final=True)
    rejections: list[FixRejection] = []
    reports: list[TradeCaptureReport] = []
    msg_seq = 0
    for frame in frames:
        if frame.stray:
            rejections.append(FixRejection(0, "", FixRejectReason.garbled, frame.text))
            continue
        msg_seq += 1
        if frame.fault is not None:
            pairs = _decode(frame.raw) if frame.raw else None
            ref = (_first(pairs, 571) or _first(pairs, 17) or _first(pairs, 34)) if pairs else ""
            rejections.append(FixRejection(msg_seq, ref, frame.fault, frame.text))
            continue
        pairs = _decode(frame.raw)
        if pairs is None:
            rejections.append(FixRejection(msg_seq, "", FixRejectReason.garbled, "not tag=value fields"))
            continue
        msg_type = _first(pairs, 35)
        if msg_type != "AE":
            ref = _first(pairs, 34)
            if not msg_type:
                rejections.append(FixRejection(msg_seq, ref, missing_field(35), "no MsgType"))
            else:
                rejections.append(
                    FixRejection(msg_seq, ref, FixRejectReason.unsupported_msg_type, f"MsgType {msg_type}")
                )
            continue
        reports.append(_report_from_pairs(msg_seq, pairs))
    return _assemble(reports, rejections)


_FIXML_PARSER_OPTIONS = {
    "resolve_entities": False,
    "no_network": True,
    "load_dtd": False,
    "huge_tree": False,
    "remove_comments": True,
    "remove_pis": True,
}


def _local(element: etree._Element) -> str:
    tag = element.tag
    if not isinstance(tag, str):
        return ""
    return tag.rsplit("}", 1)[-1]


def _fixml_messages(
    root: etree._Element,
) -> list[tuple[etree._Element, etree._Element | None]]:
    """The message elements of a FIXML document, each with the batch header that applies."""
    if _local(root) != "FIXML":
        return [(root, None)]
    found: list[tuple[etree._Element, etree._Element | None]] = []
    for child in root:
        if _local(child) == "Batch":
            header = next((c for c in child if _local(c) == "Hdr"), None)
            found.extend((m, header) for m in child if _local(m) not in ("Hdr", ""))
        elif _local(child):
            found.append((child, None))
    return found


def _report_from_fixml(
    msg_seq: int, message: etree._Element, batch_header: etree._Element | None
) -> TradeCaptureReport:
    header = next((c for c in message if _local(c) == "Hdr"), batch_header)
    instrument = next((c for c in message if _local(c) == "Instrmt"), None)
    sides: list[tuple[str, list[tuple[str, str]]]] = []
    for side in message:
        if _local(side) == "RptSide":
            parties = [(p.get("ID", ""), p.get("R", "")) for p in side if _local(p) == "Pty"]
            sides.append((side.get("Side", ""), parties))
    buyer, seller = _resolve_sides(sides)

    def attr(element: etree._Element | None, name: str) -> str:
        return "" if element is None else element.get(name, "")

    trade_date = attr(message, "TrdDt") or _date_of_timestamp(attr(message, "TxnTm"))
    return TradeCaptureReport(
        msg_seq=msg_seq,
        seq_num=attr(header, "SeqNum"),
        sender=attr(header, "SID"),
        target=attr(header, "TID"),
        begin_string="FIXT.1.1",
        trade_report_id=attr(message, "RptID"),
        exec_id=attr(message, "ExecID"),
        trade_id=attr(message, "TrdID"),
        match_id=attr(message, "MtchID"),
        trans_type=attr(message, "TransTyp"),
        report_type=attr(message, "RptTyp"),
        trade_date=trade_date,
        settlement_date=attr(message, "SettlDt"),
        security_id=_security(attr(instrument, "ID"), attr(instrument, "Src"), attr(instrument, "Sym")),
        security_id_source=attr(instrument, "Src"),
        symbol=attr(instrument, "Sym"),
        quantity=attr(message, "LastQty"),
        price=attr(message, "LastPx"),
        currency=attr(message, "Ccy"),
        buyer=buyer,
        seller=seller,
        side_count=len(sides),
        poss_dup=attr(header, "PosDup") == "Y",
    )


def parse_fixml_trade_capture(xml: bytes) -> FixIntake:
    """Read a FIXML document (``FIXML/Batch/TrdCaptRpt``, ``FIXML/TrdCaptRpt`` or a bare
    ``TrdCaptRpt``, any namespace) and turn its Trade Capture Reports into trades.

    Attributes map as the tags of the module docstring: ``RptID``, ``ExecID``, ``TrdID``,
    ``MtchID``, ``TrdDt``, ``SettlDt``, ``LastQty``, ``LastPx``, ``Instrmt/@ID``/``@Src``/``@Sym``,
    ``RptSide/@Side`` with ``Pty/@ID``/``@R``. External entities and DTDs are never loaded.
    Never raises on hostile bytes.
    """
    try:
        parser = etree.XMLParser(**_FIXML_PARSER_OPTIONS)
        root = etree.fromstring(bytes(xml), parser)
    except (etree.XMLSyntaxError, ValueError) as exc:
        rejection = FixRejection(0, "", FixRejectReason.garbled, f"not FIXML: {exc}"[:200])
        return _assemble([], [rejection])
    rejections: list[FixRejection] = []
    reports: list[TradeCaptureReport] = []
    for msg_seq, (message, batch_header) in enumerate(_fixml_messages(root), start=1):
        name = _local(message)
        if name != "TrdCaptRpt":
            rejections.append(FixRejection(msg_seq, "", FixRejectReason.unsupported_msg_type, f"FIXML {name}"))
            continue
        reports.append(_report_from_fixml(msg_seq, message, batch_header))
    return _assemble(reports, rejections)


# --------------------------------------------------------------------------------------------
# Writing.


def _encode(
    begin_string: str,
    msg_type: str,
    sender: str,
    target: str,
    seq: int,
    sending_time: str,
    body: Iterable[tuple[int, str]],
    *,
    poss_dup: bool = False,
    orig_sending_time: str = "",
) -> bytes:
    """One FIX message with header, BodyLength and CheckSum computed by simplefix.

    Empty values are left out (FIX forbids them) and an SOH inside a value becomes a space.
    """
    message = simplefix.FixMessage()
    header: list[tuple[int, str]] = [
        (8, begin_string),
        (35, msg_type),
        (49, sender),
        (56, target),
        (34, str(seq)),
    ]
    if poss_dup:
        header.append((43, "Y"))
    header.append((52, sending_time))
    if orig_sending_time:
        header.append((122, orig_sending_time))
    for tag, value in (*header, *body):
        if value != "":
            message.append_pair(tag, value.replace("\x01", " "))
    return message.encode()


#: TradeReportRejectReason (751) for the rejection reasons it has a code for; others are 99.
_REJECT_REASON_CODES: Mapping[str, str] = {
    "unknown_security": "2",
    "unknown_buyer": "1",
    "unknown_seller": "1",
    "missing_buyer": "1",
    "missing_seller": "1",
    "not_a_clearing_member": "1",
    "buyer_equals_seller": "1",
    "not_party_to_trade": "3",
}


def _ack_body(
    report: TradeCaptureReport, status: Literal["accepted", "rejected"], reason: str | None
) -> list[tuple[int, str]]:
    if status not in ("accepted", "rejected"):
        raise ValueError(f"status must be accepted or rejected, not {status!r}")
    rejected = status == "rejected"
    from_security_id = report.security_id != report.symbol
    body: list[tuple[int, str]] = [
        (571, report.trade_report_id or report.ref or "UNKNOWN"),
        (487, report.trans_type),
        (856, report.report_type),
        (150, "8" if rejected else "F"),
        (939, "1" if rejected else "0"),
    ]
    if rejected:
        body.append((751, _REJECT_REASON_CODES.get((reason or "").split(":")[0], "99")))
    body += [
        (880, report.match_id),
        (17, report.exec_id),
        (55, report.symbol or report.security_id or "[N/A]"),
        (48, report.security_id if from_security_id else ""),
        (22, report.security_id_source if from_security_id and report.security_id else ""),
    ]
    if rejected:
        body.append((58, reason or "rejected"))
    return body


def trade_capture_ack(
    report_fields: TradeCaptureReport,
    status: Literal["accepted", "rejected"],
    reason: str | None,
    seq: int,
    sender: str,
    target: str,
    sending_time: str,
    *,
    begin_string: str = "FIX.4.4",
) -> bytes:
    """A TradeCaptureReportAck (35=AR) answering one report.

    TrdRptStatus(939) is 0 when accepted, 1 when rejected; a rejection carries
    TradeReportRejectReason(751) and the reason in Text(58); ExecType(150) is F (trade) or 8
    (rejected). The report's identifiers (571, 487, 856, 880, 17) and instrument (55, 48, 22)
    are echoed, in the field order of the FIX 4.4 message. ``sending_time`` is the
    SendingTime(52) text, e.g. ``20240102-10:00:00.000``: no clock is read here.
    """
    body = _ack_body(report_fields, status, reason)
    return _encode(begin_string, "AR", sender, target, seq, sending_time, body)


# --------------------------------------------------------------------------------------------
# Session layer.


class SessionState(StrEnum):
    """Where a FIX session stands."""

    awaiting_logon = "awaiting_logon"
    active = "active"
    logout_sent = "logout_sent"
    closed = "closed"


@dataclass(frozen=True)
class SessionConfig:
    """How our side of a FIX session behaves (we are the acceptor).

    Attributes:
        sender_comp_id: our CompID: SenderCompID(49) on what we send, TargetCompID(56) expected.
        target_comp_id: the counterparty CompID we accept; ``""`` accepts the first that logs on.
        begin_string: the FIX version we answer with, e.g. ``FIX.4.4``.
        heartbeat_interval: seconds; the counterparty's Logon HeartBtInt(108) replaces it.
        max_stored: outbound application messages kept for resending; older ones are gap-filled.
    """

    sender_comp_id: str = "CLEARHOUSE"
    target_comp_id: str = ""
    begin_string: str = "FIX.4.4"
    heartbeat_interval: int = 30
    max_stored: int = 10_000


@dataclass(frozen=True)
class InboundMessage:
    """An application message the session accepted, in sequence, for the caller.

    Attributes:
        seq_num: its MsgSeqNum(34).
        msg_type: its MsgType(35).
        poss_dup: PossDupFlag(43) was ``Y`` (a resend; the core's idempotency absorbs repeats).
        raw: the message bytes as received.
    """

    seq_num: int
    msg_type: str
    poss_dup: bool
    raw: bytes


@dataclass(frozen=True)
class _Stored:
    """An outbound application message kept for resend.

    Attributes:
        msg_type: MsgType(35).
        body: the fields after the standard header.
        sending_time: its original SendingTime(52).
    """

    msg_type: str
    body: tuple[tuple[int, str], ...]
    sending_time: str


_ADMIN_TYPES = frozenset({"0", "1", "2", "3", "4", "5", "A"})


def _format_time(moment: datetime) -> str:
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    return moment.strftime("%Y%m%d-%H:%M:%S.") + f"{moment.microsecond // 1000:03d}"


def _int_or_none(value: str) -> int | None:
    if value.isascii() and value.isdigit() and len(value) <= 18:
        return int(value)
    return None


class FixSession:
    """The FIX session layer of an acceptor as a pure state machine.

    Feed it received bytes with :meth:`on_bytes` and call :meth:`on_timer` about once a second;
    both return the bytes to send. It handles Logon (35=A), Heartbeat (0), TestRequest (1),
    ResendRequest (2), SequenceReset (4, gap fill and reset) and Logout (5); tracks inbound and
    outbound MsgSeqNum; on a gap it sends one ResendRequest (BeginSeqNo = expected, EndSeqNo = 0)
    and drops the early messages until the resends arrive; a message below the expected number is
    ignored when it is a PossDup resend and ends the session otherwise. Garbled, bad-length and
    bad-checksum messages are ignored (recorded in :attr:`faults`), as FIX prescribes.
    Application messages accepted in sequence are queued for :meth:`take_messages`.

    Time comes only from the injected ``clock`` (an aware or UTC datetime); sequence numbers
    start at 1 for each session object (a new connection is a new session).
    """

    def __init__(self, config: SessionConfig, clock: Callable[[], datetime]) -> None:
        self._config = config
        self._clock = clock
        self._state = SessionState.awaiting_logon
        self._buffer = b""
        self._next_in = 1
        self._next_out = 1
        self._target = config.target_comp_id
        self._heartbeat = config.heartbeat_interval
        self._resend_target = 0
        self._test_request: str | None = None
        self._test_counter = 0
        started = clock()
        self._last_in = started
        self._last_out = started
        self._store: dict[int, _Stored] = {}
        self._inbound: list[InboundMessage] = []
        self._faults: list[FixRejection] = []

    # -- read-only state --------------------------------------------------------------------

    @property
    def state(self) -> SessionState:
        return self._state

    @property
    def closed(self) -> bool:
        return self._state == SessionState.closed

    @property
    def next_inbound_seq(self) -> int:
        return self._next_in

    @property
    def next_outbound_seq(self) -> int:
        return self._next_out

    @property
    def counterparty(self) -> str:
        return self._target

    @property
    def faults(self) -> list[FixRejection]:
        """Messages ignored as garbled, bad length or bad checksum, oldest first."""
        return list(self._faults)

    def take_messages(self) -> list[InboundMessage]:
        """The application messages accepted since the last call, in sequence."""
        messages, self._inbound = self._inbound, []
        return messages

    # -- sending ----------------------------------------------------------------------------

    def _send(self, msg_type: str, body: Sequence[tuple[int, str]]) -> bytes:
        now = self._clock()
        sending_time = _format_time(now)
        seq = self._next_out
        self._next_out += 1
        self._last_out = now
        if msg_type not in _ADMIN_TYPES:
            self._store[seq] = _Stored(msg_type, tuple(body), sending_time)
            if len(self._store) > self._config.max_stored:
                del self._store[next(iter(self._store))]  # the oldest: numbers only grow
        return _encode(
            self._config.begin_string,
            msg_type,
            self._config.sender_comp_id,
            self._target,
            seq,
            sending_time,
            body,
        )

    def ack(
        self,
        report: TradeCaptureReport,
        status: Literal["accepted", "rejected"],
        reason: str | None = None,
    ) -> bytes:
        """A TradeCaptureReportAck for ``report`` with the next outbound sequence number."""
        return self._send("AR", _ack_body(report, status, reason))

    def business_reject(self, ref_seq: int, ref_msg_type: str, reason_code: str, text: str) -> bytes:
        """A BusinessMessageReject (35=j): 380 is e.g. 3 (unsupported message type) or
        5 (conditionally required field missing)."""
        body = [(45, str(ref_seq)), (372, ref_msg_type), (380, reason_code), (58, text)]
        return self._send("j", body)

    def logout(self, text: str = "") -> bytes:
        """Start a logout from our side; the session closes when the counterparty answers."""
        self._state = SessionState.logout_sent
        return self._send("5", [(58, text)])

    def _reject(self, ref_seq: int, ref_msg_type: str, reason: str, text: str) -> bytes:
        body = [(45, str(ref_seq)), (372, ref_msg_type), (373, reason), (58, text)]
        return self._send("3", body)

    def _close_with_logout(self, text: str) -> list[bytes]:
        out = [self._send("5", [(58, text)])]
        self._state = SessionState.closed
        return out

    # -- receiving --------------------------------------------------------------------------

    def on_bytes(self, data: bytes) -> list[bytes]:
        """Take received bytes; returns the messages to send, in order."""
        if self.closed:
            return []
        self._buffer += bytes(data)
        frames, consumed = _split_frames(self._buffer, final=False)
        self._buffer = self._buffer[consumed:]
        out: list[bytes] = []
        for frame in frames:
            if self.closed:
                break
            if frame.fault is not None:
                self._faults.append(FixRejection(0, "", frame.fault, frame.text))
                continue
            pairs = _decode(frame.raw)
            if pairs is None or not _first(pairs, 35):
                self._faults.append(FixRejection(0, "", FixRejectReason.garbled, "not tag=value fields"))
                continue
            self._last_in = self._clock()
            out.extend(self._on_message(pairs, frame.raw))
        return out

    def _on_message(self, pairs: list[tuple[int, str]], raw: bytes) -> list[bytes]:
        msg_type = _first(pairs, 35)
        seq = _int_or_none(_first(pairs, 34))
        if seq is None:
            return self._close_with_logout("MsgSeqNum(34) missing or not a number")
        if self._state == SessionState.awaiting_logon:
            return self._on_logon(pairs, seq)
        if _first(pairs, 49) != self._target or _first(pairs, 56) != self._config.sender_comp_id:
            out = [self._reject(seq, msg_type, "9", "CompID problem")]
            return out + self._close_with_logout("CompID problem")
        poss_dup = _first(pairs, 43) == "Y"
        if msg_type == "4" and _first(pairs, 123) != "Y":
            return self._on_sequence_reset(pairs, seq)
        if seq > self._next_in:
            return self._on_gap(pairs, msg_type, seq)
        if seq < self._next_in:
            if poss_dup:
                return []
            return self._close_with_logout(f"MsgSeqNum too low, expecting {self._next_in} but received {seq}")
        self._next_in += 1
        if self._resend_target and self._next_in > self._resend_target:
            self._resend_target = 0
        return self._dispatch(pairs, msg_type, seq, poss_dup, raw)

    def _on_logon(self, pairs: list[tuple[int, str]], seq: int) -> list[bytes]:
        if _first(pairs, 35) != "A":
            return self._close_with_logout("first message must be Logon")
        sender = _first(pairs, 49)
        expected = self._target
        self._target = sender  # whoever logged on is who we answer, if only to refuse
        if (expected and sender != expected) or _first(pairs, 56) != self._config.sender_comp_id:
            return self._close_with_logout("unknown CompID")
        heartbeat = _int_or_none(_first(pairs, 108))
        if heartbeat is not None and 0 < heartbeat <= 3600:
            self._heartbeat = heartbeat
        reset = _first(pairs, 141) == "Y"
        if reset:
            self._next_in = 1
            self._next_out = 1
            self._store.clear()
        body = [(98, "0"), (108, str(self._heartbeat))]
        if reset:
            body.append((141, "Y"))
        out = [self._send("A", body)]
        self._state = SessionState.active
        if seq < self._next_in:
            return out + self._close_with_logout(f"MsgSeqNum too low, expecting {self._next_in} but received {seq}")
        if seq > self._next_in:
            self._resend_target = seq
            out.append(self._send("2", [(7, str(self._next_in)), (16, "0")]))
        else:
            self._next_in += 1
        return out

    def _on_gap(self, pairs: list[tuple[int, str]], msg_type: str, seq: int) -> list[bytes]:
        out: list[bytes] = []
        if msg_type == "5":
            return self._dispatch(pairs, msg_type, seq, False, b"")
        if msg_type == "2":
            out.extend(self._on_resend_request(pairs, seq))
        if not self._resend_target:
            out.append(self._send("2", [(7, str(self._next_in)), (16, "0")]))
        self._resend_target = max(self._resend_target, seq)
        return out

    def _on_sequence_reset(self, pairs: list[tuple[int, str]], seq: int) -> list[bytes]:
        new_seq = _int_or_none(_first(pairs, 36))
        if new_seq is None or new_seq < self._next_in:
            return [self._reject(seq, "4", "5", "NewSeqNo(36) missing or lower than expected")]
        self._next_in = new_seq
        if self._resend_target and self._next_in > self._resend_target:
            self._resend_target = 0
        return []

    def _dispatch(
        self, pairs: list[tuple[int, str]], msg_type: str, seq: int, poss_dup: bool, raw: bytes
    ) -> list[bytes]:
        if msg_type == "0":
            if self._test_request is not None and _first(pairs, 112) == self._test_request:
                self._test_request = None
            return []
        if msg_type == "1":
            return [self._send("0", [(112, _first(pairs, 112))])]
        if msg_type == "2":
            return self._on_resend_request(pairs, seq)
        if msg_type == "4":
            new_seq = _int_or_none(_first(pairs, 36))
            if new_seq is None or new_seq <= seq:
                return [self._reject(seq, "4", "5", "GapFill NewSeqNo(36) not above MsgSeqNum")]
            self._next_in = max(self._next_in, new_seq)
            if self._resend_target and self._next_in > self._resend_target:
                self._resend_target = 0
            return []
        if msg_type == "5":
            if self._state == SessionState.logout_sent:
                self._state = SessionState.closed
                return []
            return self._close_with_logout("")
        if msg_type == "A":
            return [self._reject(seq, "A", "99", "already logged on")]
        if msg_type == "3":
            return []
        self._inbound.append(InboundMessage(seq, msg_type, poss_dup, raw))
        return []

    def _on_resend_request(self, pairs: list[tuple[int, str]], seq: int) -> list[bytes]:
        begin = _int_or_none(_first(pairs, 7))
        end = _int_or_none(_first(pairs, 16))
        last = self._next_out - 1
        if begin is None or end is None or begin < 1 or (end and end < begin):
            return [self._reject(seq, "2", "5", "BeginSeqNo(7)/EndSeqNo(16) invalid")]
        if end == 0 or end > last:
            end = last
        out: list[bytes] = []
        now = _format_time(self._clock())
        gap_start = 0
        for number in range(begin, end + 1):
            stored = self._store.get(number)
            if stored is None:
                gap_start = gap_start or number
                continue
            if gap_start:
                out.append(self._gap_fill(gap_start, number, now))
                gap_start = 0
            out.append(
                _encode(
                    self._config.begin_string,
                    stored.msg_type,
                    self._config.sender_comp_id,
                    self._target,
                    number,
                    now,
                    stored.body,
                    poss_dup=True,
                    orig_sending_time=stored.sending_time,
                )
            )
        if gap_start:
            out.append(self._gap_fill(gap_start, end + 1, now))
        return out

    def _gap_fill(self, first: int, new_seq: int, sending_time: str) -> bytes:
        return _encode(
            self._config.begin_string,
            "4",
            self._config.sender_comp_id,
            self._target,
            first,
            sending_time,
            [(123, "Y"), (36, str(new_seq))],
            poss_dup=True,
            orig_sending_time=sending_time,
        )

    # -- timers -----------------------------------------------------------------------------

    def on_timer(self) -> list[bytes]:
        """Heartbeats and liveness: call about once a second; returns the messages to send.

        Sends a Heartbeat after ``heartbeat`` seconds without sending; a TestRequest after
        ``heartbeat`` + 20% without receiving; ends the session when the TestRequest has gone
        unanswered for another ``heartbeat``, a Logout of ours for ``heartbeat`` seconds, or no
        Logon came within ``heartbeat`` seconds of the start.
        """
        if self._state == SessionState.closed:
            return []
        now = self._clock()
        quiet_in = (now - self._last_in).total_seconds()
        quiet_out = (now - self._last_out).total_seconds()
        if self._state == SessionState.awaiting_logon:
            if quiet_in >= self._heartbeat:
                self._state = SessionState.closed
            return []
        if self._state == SessionState.logout_sent:
            if quiet_in >= self._heartbeat:
                self._state = SessionState.closed
            return []
        if self._test_request is not None and quiet_in >= 2.2 * self._heartbeat:
            return self._close_with_logout("heartbeat timeout")
        out: list[bytes] = []
        if self._test_request is None and quiet_in >= 1.2 * self._heartbeat:
            self._test_counter += 1
            self._test_request = f"TEST{self._test_counter}"
            out.append(self._send("1", [(112, self._test_request)]))
        elif quiet_out >= self._heartbeat:
            out.append(self._send("0", []))
        return out


# --------------------------------------------------------------------------------------------
# TCP server.

#: What ``on_trades`` may return: for trades the core refused, trade_id -> reason; ``None`` or an
#: empty mapping accepts all.
TradeVerdicts = Mapping[str, str] | None


def _utc_now() -> datetime:
    return datetime.now(UTC)


async def serve_fix(
    host: str,
    port: int,
    on_trades: Callable[[FixIntake], TradeVerdicts | Awaitable[TradeVerdicts]],
    *,
    config: SessionConfig | None = None,
    clock: Callable[[], datetime] = _utc_now,
    timer_period: float = 1.0,
) -> asyncio.Server:
    """Start a FIX acceptor on ``host:port``; returns the listening :class:`asyncio.Server`.

    Each connection runs its own :class:`FixSession`. Accepted Trade Capture Reports are parsed
    with :func:`parse_trade_capture_reports` and handed to ``on_trades`` (sync or async); every
    report is then acknowledged with a 35=AR: rejected with the intake's reason, or with the
    reason ``on_trades`` returned for its trade id, else accepted. A report without
    TradeReportID or ExecID, and any other application message, gets a BusinessMessageReject.
    ``port`` 0 picks a free port (see ``server.sockets``).
    """
    session_config = config or SessionConfig()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        session = FixSession(session_config, clock)

        def send(messages: Sequence[bytes]) -> None:
            for message in messages:
                writer.write(message)

        async def tick() -> None:
            try:
                while not session.closed:
                    await asyncio.sleep(timer_period)
                    send(session.on_timer())
                    await writer.drain()
            except ConnectionError:
                pass
            writer.close()

        timer = asyncio.create_task(tick())
        try:
            while not session.closed:
                data = await reader.read(65_536)
                if not data:
                    break
                send(session.on_bytes(data))
                messages = session.take_messages()
                if messages:
                    send(await _answer(session, messages, on_trades))
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            timer.cancel()
            writer.close()
            try:
                await writer.wait_closed()
            except ConnectionError:
                pass

    return await asyncio.start_server(handle, host, port)


async def _answer(
    session: FixSession,
    messages: Sequence[InboundMessage],
    on_trades: Callable[[FixIntake], TradeVerdicts | Awaitable[TradeVerdicts]],
) -> list[bytes]:
    """Parse accepted application messages, hand the trades over, and build the answers."""
    out: list[bytes] = []
    reports_in = [m for m in messages if m.msg_type == "AE"]
    for message in messages:
        if message.msg_type != "AE":
            text = f"unsupported MsgType {message.msg_type}"
            out.append(session.business_reject(message.seq_num, message.msg_type, "3", text))
    if not reports_in:
        return out
    intake = parse_trade_capture_reports(b"".join(m.raw for m in reports_in))
    verdicts = on_trades(intake)
    if inspect.isawaitable(verdicts):
        verdicts = await verdicts
    refused: Mapping[str, str] = verdicts or {}
    reasons = {r.msg_seq: r.reason for r in intake.rejections}
    for report in intake.reports:
        if not (report.trade_report_id or report.exec_id):
            seq_num = reports_in[report.msg_seq - 1].seq_num
            out.append(session.business_reject(seq_num, "AE", "5", missing_field(571)))
        elif report.msg_seq in reasons:
            out.append(session.ack(report, "rejected", reasons[report.msg_seq]))
        elif report.clearing_trade_id in refused:
            out.append(session.ack(report, "rejected", refused[report.clearing_trade_id]))
        else:
            out.append(session.ack(report, "accepted"))
    return out
