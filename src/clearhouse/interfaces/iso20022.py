"""ISO 20022 securities settlement messages: sese.023 read, sese.024, sese.025 and semt.002 written.

What lives here:

- :func:`parse_sese023` reads settlement instructions (``SctiesSttlmTxInstr``) wherever they sit
  in a document (bare ``Document``, a business envelope such as ``RequestPayload``/``DataPDU``,
  any sese.023 namespace version) into instruction rows of string columns
  (:data:`INSTRUCTION_COLUMNS`), and reports instructions it cannot read. Never raises on hostile
  bytes.
- :func:`instructions_to_trades` turns a matched pair of instructions, or one instruction naming
  both parties, into the trade rows of the core's intake (:data:`TRADE_COLUMNS`).
- Writers with lxml: :func:`write_sese024` (status advice), :func:`write_sese025` (settlement
  confirmation), :func:`write_semt002` (statement of holdings), each returning the bytes of one
  ``Document`` in the namespace of :data:`SESE024_NAMESPACE`, :data:`SESE025_NAMESPACE`,
  :data:`SEMT002_NAMESPACE`. The business application header (head.001) is the transport's
  concern and is not written. Readers of the same three messages (:func:`parse_sese024`,
  :func:`parse_sese025`, :func:`parse_semt002`) accept any version of them.

No clock is read: every date is passed in. External entities and DTDs are never loaded.

May import lxml, polars, the standard library and ``clearhouse.core`` only; never the state
machine, storage, sequencing or another interface.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Literal

import polars as pl
from lxml import etree

from clearhouse.clearing.batch import REQUIRED_COLUMNS
from clearhouse.core.errors import InputError
from clearhouse.core.money import format_minor, to_minor

#: Namespaces of the messages written (the versions whose schema structure the tests check).
SESE024_NAMESPACE = "urn:iso:std:iso:20022:tech:xsd:sese.024.001.12"
SESE025_NAMESPACE = "urn:iso:std:iso:20022:tech:xsd:sese.025.001.11"
SEMT002_NAMESPACE = "urn:iso:std:iso:20022:tech:xsd:semt.002.001.11"

#: The trade intake columns a message fills, all strings, in order (``settlement_date`` may be ``""``).
TRADE_COLUMNS: tuple[str, ...] = (*REQUIRED_COLUMNS, "settlement_date")

#: One row per settlement instruction, all strings (``""`` when the message leaves it out).
INSTRUCTION_COLUMNS: tuple[str, ...] = (
    "instruction_id",  # TxId
    "common_id",  # SttlmTpAndAddtlParams/CmonId
    "linked_id",  # Lnkgs/Ref/<any reference>: the other leg's id
    "movement",  # SttlmTpAndAddtlParams/SctiesMvmntTp: DELI or RECE
    "payment",  # SttlmTpAndAddtlParams/Pmt: FREE or APMT
    "trade_date",  # TradDtls/TradDt/Dt/(Dt|DtTm), date part
    "settlement_date",  # TradDtls/SttlmDt/Dt/(Dt|DtTm), date part
    "security_id",  # FinInstrmId/ISIN, else FinInstrmId/OthrId/Id
    "quantity",  # QtyAndAcctDtls/SttlmQty/Qty/(Unit|FaceAmt|AmtsdVal|DgtlTknUnit)
    "amount",  # SttlmAmt/Amt (against payment)
    "currency",  # SttlmAmt/Amt/@Ccy
    "deal_price",  # TradDtls/DealPric/Val/(Amt|Rate)
    "deal_price_currency",  # TradDtls/DealPric/Val/Amt/@Ccy
    "delivering_party",  # DlvrgSttlmPties/Pty1/Id (AnyBIC, PrtryId/Id, NmAndAdr/Nm) or LEI
    "receiving_party",  # RcvgSttlmPties/Pty1/Id, same choices
    "account_owner",  # QtyAndAcctDtls/AcctOwnr/Id, same choices
    "safekeeping_account",  # QtyAndAcctDtls/SfkpgAcct/Id
)

#: Elements an instruction must have to be read at all (sese.023 makes them mandatory).
_REQUIRED = ("instruction_id", "movement", "payment", "settlement_date", "security_id", "quantity")
_REQUIRED_ELEMENT = {
    "instruction_id": "TxId",
    "movement": "SctiesMvmntTp",
    "payment": "Pmt",
    "settlement_date": "SttlmDt",
    "security_id": "FinInstrmId",
    "quantity": "SttlmQty",
}

#: Reason codes allowed with each status (ISO 20022 code sets PendingReason24Code,
#: FailingReason4Code, UnmatchedReason11Code and RejectionReason75Code of sese.024).
PENDING_REASONS = frozenset(
    "AWMO ADEA CAIS REFU AWSH PHSE TAMM DOCY DOCC BLOC CHAS NEWI CLAC MUNO GLOB PREA PART NMAS "
    "NOFX CMON YCOL COLL DEPO FLIM INCA LINK FUTU LACK LALO MONY NCON REFS SDUT BATC SBLO CPEC "
    "MINO IAAD OTHR PHCK".split()
)
FAILING_REASONS = frozenset(
    "AWMO BYIY CLAT ADEA CANR CAIS OBJT AWSH PHSE STCD DOCY MLAT DOCC BLOC CHAS NEWI CLAC MUNO "
    "GLOB PREA PART NOFX CMON YCOL COLL DEPO FLIM INCA LINK LACK LALO MONY NCON REFS SDUT BATC "
    "CYCL SBLO CPEC MINO".split()
)
UNMATCHED_REASONS = frozenset(
    "ADEA ACRU IIND CPCA CLAT NCRR DDEA DMCT DCMX DSEC DQUA INVE LEOG LATE MIME CMIS NMAS DTRA "
    "OTHR FRAP PHYS PLIS INPS PLCE PODU DEPT ICAG ICUS IEXE REGD RTGS SAFE DMON DDAT SETS SETR "
    "TXST DTRD DELN UNBR".split()
)
REJECTED_REASONS = frozenset(
    "SAFE DQUA ADEA DSEC LATE CASH DDEA DTRD PLCE RTGS NCRR PHYS REFE DMON MINO BATC MUNO TXST SETS "
    "IIND CAEV CASY DDAT SETR SDUT INPS OTHR ICUS ICAG DEPT IEXE INVB INVL INVN VALR INVE PLIS".split()
)
_REASONS_BY_STATUS = {
    "matched": frozenset(),
    "rejected": REJECTED_REASONS,
    "unmatched": UNMATCHED_REASONS,
    "pending": PENDING_REASONS,
    "failing": FAILING_REASONS,
}

_ISIN = re.compile(r"[A-Z]{2}[A-Z0-9]{9}[0-9]")
_CURRENCY = re.compile(r"[A-Z]{3}")

_PARSER_OPTIONS = {
    "resolve_entities": False,
    "no_network": True,
    "load_dtd": False,
    "huge_tree": False,
    "remove_comments": True,
    "remove_pis": True,
}


class Iso20022RejectReason(StrEnum):
    """Why a document or instruction did not become an instruction row or a trade.

    ``not_xml``: the bytes are not well-formed XML. ``no_instruction``: no
    ``SctiesSttlmTxInstr`` in the document. ``missing_field``: a mandatory element is absent,
    written ``missing_field:<Element>``. ``missing_buyer`` / ``missing_seller``: neither the
    instruction(s) nor their account owner name that party. ``no_price``: no deal price, and no
    settlement amount that divides exactly by the quantity. ``pair_mismatch``: the two legs
    disagree, written ``pair_mismatch:<column>``. ``ambiguous_pair``: more than two instructions
    share a common id or link.
    """

    not_xml = "not_xml"
    no_instruction = "no_instruction"
    missing_field = "missing_field"
    missing_buyer = "missing_buyer"
    missing_seller = "missing_seller"
    no_price = "no_price"
    pair_mismatch = "pair_mismatch"
    ambiguous_pair = "ambiguous_pair"


@dataclass(frozen=True)
class Iso20022Rejection:
    """One instruction (or a whole document) that could not be used.

    Attributes:
        position: 1-based position of the instruction in the document or frame; 0 for the
            whole document.
        ref: the instruction id where one could be read, else ``""``.
        reason: an :class:`Iso20022RejectReason` value, or ``missing_field:<Element>`` /
            ``pair_mismatch:<column>``.
        text: a human-readable detail.
    """

    position: int
    ref: str
    reason: str
    text: str


@dataclass(frozen=True)
class Iso20022Intake:
    """What a sese.023 document yielded.

    Attributes:
        instructions: one row per instruction read, the string columns of
            :data:`INSTRUCTION_COLUMNS`.
        rejections: instructions (or the document) that could not be read.
    """

    instructions: pl.DataFrame
    rejections: list[Iso20022Rejection] = field(default_factory=list)


@dataclass(frozen=True)
class InstructionTrades:
    """Trades made from settlement instructions.

    Attributes:
        trades: one row per trade, the string columns of :data:`TRADE_COLUMNS`.
        rejections: instructions that did not become a trade, ``position`` being the row.
        trade_ids: per instruction row, the ``trade_id`` of the trade it became part of, ``""``
            when it was rejected.
    """

    trades: pl.DataFrame
    rejections: list[Iso20022Rejection] = field(default_factory=list)
    trade_ids: tuple[str, ...] = ()


# --------------------------------------------------------------------------------------------
# Reading helpers (namespace-agnostic: elements are found by local name).


def _local(element: etree._Element) -> str:
    tag = element.tag
    if not isinstance(tag, str):
        return ""
    return tag.rsplit("}", 1)[-1]


def _child(element: etree._Element | None, *path: str) -> etree._Element | None:
    """The first element along ``path`` of local names, or ``None``."""
    for name in path:
        if element is None:
            return None
        element = next((c for c in element if _local(c) == name), None)
    return element


def _children(element: etree._Element | None, name: str) -> Iterator[etree._Element]:
    if element is None:
        return iter(())
    return (c for c in element if _local(c) == name)


def _text(element: etree._Element | None, *path: str) -> str:
    found = _child(element, *path)
    if found is None:
        return ""
    return "".join(found.itertext()).strip()


def _first_text(element: etree._Element | None, names: tuple[str, ...]) -> str:
    """The text of the first child named in ``names`` (in that order of preference)."""
    for name in names:
        value = _text(element, name)
        if value:
            return value
    return ""


def _date_choice(element: etree._Element | None) -> str:
    """The date of a DateAndDateTime choice: ``Dt``, or the date part of ``DtTm``."""
    return _text(element, "Dt") or _text(element, "DtTm")[:10]


def _party(element: etree._Element | None) -> str:
    """A party's identification: AnyBIC, proprietary id, name, or LEI."""
    ident = _child(element, "Id")
    return (
        _text(ident, "AnyBIC")
        or _text(ident, "PrtryId", "Id")
        or _text(ident, "NmAndAdr", "Nm")
        or _text(element, "LEI")
    )


def _security(element: etree._Element | None) -> str:
    return _text(element, "ISIN") or _text(element, "OthrId", "Id")


def _quantity(element: etree._Element | None) -> str:
    return _first_text(element, ("Unit", "FaceAmt", "AmtsdVal", "DgtlTknUnit"))


def _parse_xml(xml: bytes) -> etree._Element:
    """Parse bytes safely; raises :class:`InputError` when they are not well-formed XML."""
    try:
        parser = etree.XMLParser(**_PARSER_OPTIONS)
        root = etree.fromstring(bytes(xml), parser)
    except (etree.XMLSyntaxError, ValueError) as exc:
        raise InputError(f"not well-formed XML: {exc}"[:200]) from exc
    if root is None:
        raise InputError("empty XML document")
    return root


def _find_all(root: etree._Element, name: str) -> list[etree._Element]:
    """Every element with local name ``name``, the root included, in document order."""
    return [e for e in root.iter() if _local(e) == name]


# --------------------------------------------------------------------------------------------
# sese.023 in.


def _instruction_row(instr: etree._Element) -> dict[str, str]:
    params = _child(instr, "SttlmTpAndAddtlParams")
    trade = _child(instr, "TradDtls")
    amount = _child(instr, "SttlmAmt", "Amt")
    price = _child(trade, "DealPric", "Val")
    price_amount = _child(price, "Amt")
    accounts = _child(instr, "QtyAndAcctDtls")
    reference = _child(instr, "Lnkgs", "Ref")
    linked = "" if reference is None or not len(reference) else "".join(reference[0].itertext())
    settlement = _child(trade, "SttlmDt", "Dt")
    return {
        "instruction_id": _text(instr, "TxId"),
        "common_id": _text(params, "CmonId"),
        "linked_id": linked.strip(),
        "movement": _text(params, "SctiesMvmntTp"),
        "payment": _text(params, "Pmt"),
        "trade_date": _date_choice(_child(trade, "TradDt", "Dt")),
        "settlement_date": _date_choice(settlement),
        "security_id": _security(_child(instr, "FinInstrmId")),
        "quantity": _quantity(_child(accounts, "SttlmQty", "Qty")),
        "amount": "" if amount is None else "".join(amount.itertext()).strip(),
        "currency": "" if amount is None else amount.get("Ccy", ""),
        "deal_price": _first_text(price, ("Amt", "Rate")),
        "deal_price_currency": "" if price_amount is None else price_amount.get("Ccy", ""),
        "delivering_party": _party(_child(instr, "DlvrgSttlmPties", "Pty1")),
        "receiving_party": _party(_child(instr, "RcvgSttlmPties", "Pty1")),
        "account_owner": _party(_child(accounts, "AcctOwnr")),
        "safekeeping_account": _text(accounts, "SfkpgAcct", "Id"),
    }


def _frame(rows: dict[str, list[str]], columns: tuple[str, ...]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema={c: pl.String for c in columns})


def parse_sese023(xml: bytes) -> Iso20022Intake:
    """Read the settlement instructions of a sese.023 document into instruction rows.

    Every ``SctiesSttlmTxInstr`` element is read, wherever it sits and whatever its namespace
    (see :data:`INSTRUCTION_COLUMNS` for where each column comes from). Dates keep only their
    date part; amounts, quantities and prices keep their text for the core to parse. An
    instruction lacking TxId, SctiesMvmntTp, Pmt, SttlmDt, FinInstrmId or SttlmQty is rejected
    with ``missing_field:<Element>``. Never raises on hostile bytes.
    """
    rows: dict[str, list[str]] = {c: [] for c in INSTRUCTION_COLUMNS}
    rejections: list[Iso20022Rejection] = []
    try:
        root = _parse_xml(xml)
    except InputError as exc:
        rejections.append(Iso20022Rejection(0, "", Iso20022RejectReason.not_xml, str(exc)))
        return Iso20022Intake(_frame(rows, INSTRUCTION_COLUMNS), rejections)
    instructions = _find_all(root, "SctiesSttlmTxInstr")
    if not instructions:
        rejections.append(Iso20022Rejection(0, "", Iso20022RejectReason.no_instruction, "no SctiesSttlmTxInstr"))
    for position, instr in enumerate(instructions, start=1):
        row = _instruction_row(instr)
        absent = next((c for c in _REQUIRED if not row[c]), None)
        if absent is not None:
            element = _REQUIRED_ELEMENT[absent]
            rejections.append(
                Iso20022Rejection(
                    position,
                    row["instruction_id"],
                    f"{Iso20022RejectReason.missing_field}:{element}",
                    f"{element} is absent or empty",
                )
            )
            continue
        for column in INSTRUCTION_COLUMNS:
            rows[column].append(row[column])
    return Iso20022Intake(_frame(rows, INSTRUCTION_COLUMNS), rejections)


# --------------------------------------------------------------------------------------------
# Instructions -> trades.


#: Magnitude beyond which a number in a message is not taken as one (``Decimal.adjusted``):
#: ISO 20022 amounts and quantities have at most 18 digits (30 for digital token units).
_MAX_ADJUSTED = 30


def _decimal(text: str) -> Decimal | None:
    """The finite decimal a text spells, of sane magnitude, or ``None``."""
    try:
        value = Decimal(text)
    except (InvalidOperation, ValueError):
        return None
    if not value.is_finite() or (value and abs(value.adjusted()) > _MAX_ADJUSTED):
        return None
    return value


def _integral_text(text: str) -> str:
    """``"10.00"`` -> ``"10"``; anything not an exact integer stays as written."""
    value = _decimal(text)
    if value is None or value != value.to_integral_value():
        return text
    return str(int(value))


def _price(row: dict[str, str]) -> str:
    """Deal price, else settlement amount / quantity when that division is exact, else ``""``."""
    if row["deal_price"]:
        return row["deal_price"]
    amount, quantity = _decimal(row["amount"]), _decimal(row["quantity"])
    if row["payment"] != "APMT" or amount is None or not quantity:
        return ""
    price = amount / quantity
    if price * quantity != amount:
        return ""
    return format(price.normalize(), "f")


def _seller(row: dict[str, str]) -> str:
    own = row["account_owner"] if row["movement"] == "DELI" else ""
    return row["delivering_party"] or own


def _buyer(row: dict[str, str]) -> str:
    own = row["account_owner"] if row["movement"] == "RECE" else ""
    return row["receiving_party"] or own


def _groups(rows: list[dict[str, str]]) -> list[list[int]]:
    """Rows grouped by shared common id or by a link naming another row's instruction id."""
    parent = list(range(len(rows)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    def union(a: int, b: int) -> None:
        parent[find(a)] = find(b)

    by_common: dict[str, int] = {}
    by_id: dict[str, int] = {}
    for i, row in enumerate(rows):
        if row["common_id"]:
            union(i, by_common.setdefault(row["common_id"], i))
        by_id.setdefault(row["instruction_id"], i)
    for i, row in enumerate(rows):
        other = by_id.get(row["linked_id"]) if row["linked_id"] else None
        if other is not None and other != i:
            union(i, other)
    grouped: dict[int, list[int]] = {}
    for i in range(len(rows)):
        grouped.setdefault(find(i), []).append(i)
    return list(grouped.values())


def _numbers_differ(a: str, b: str) -> bool:
    x, y = _decimal(a), _decimal(b)
    if x is None or y is None:
        return a != b
    return x != y


def _pair_mismatch(deli: dict[str, str], rece: dict[str, str]) -> str | None:
    """The first column on which two legs of one trade disagree, or ``None``."""
    for column in ("security_id", "settlement_date", "payment"):
        if deli[column] != rece[column]:
            return column
    if _numbers_differ(deli["quantity"], rece["quantity"]):
        return "quantity"
    if deli["trade_date"] and rece["trade_date"] and deli["trade_date"] != rece["trade_date"]:
        return "trade_date"
    if deli["payment"] == "APMT":
        if deli["currency"] != rece["currency"]:
            return "currency"
        if _numbers_differ(deli["amount"], rece["amount"]):
            return "amount"
    if deli["deal_price"] and rece["deal_price"]:
        if _numbers_differ(deli["deal_price"], rece["deal_price"]):
            return "deal_price"
    if deli["receiving_party"] and deli["receiving_party"] != _buyer(rece):
        return "receiving_party"
    if rece["delivering_party"] and rece["delivering_party"] != _seller(deli):
        return "delivering_party"
    return None


def instructions_to_trades(instructions: pl.DataFrame) -> InstructionTrades:
    """Turn settlement instructions (rows of :data:`INSTRUCTION_COLUMNS`) into trade rows.

    Instructions are grouped by a shared ``common_id`` or by a ``linked_id`` naming another
    instruction; identical repeats of an instruction count once. How a group becomes one trade:

    - a **matched pair** (one DELI, one RECE) must agree on security, quantity, settlement date,
      payment type, trade date (when both give one), amount and currency (against payment) and
      deal price (when both give one), and each leg's named counterparty must be the other leg's
      own party; the seller is the delivering leg's own party and the buyer the receiving leg's;
    - a **single instruction** must name both parties itself;
    - a party is ``Pty1`` of the delivering (seller) or receiving (buyer) settlement parties; an
      instruction's account owner stands in for its own side when that ``Pty1`` is absent.

    ``trade_id`` is the common id when there is one (so both legs, sent apart, give the same
    trade and the core's idempotency absorbs the repeat), else the delivering instruction's id.
    ``price`` is the deal price, else the settlement amount divided by the quantity when exact;
    ``quantity`` is written as an integer when it is one (``"10.00"`` -> ``"10"``). Values are
    not validated here: the core does that. A frame without the instruction columns raises
    :class:`InputError`.
    """
    missing = [c for c in INSTRUCTION_COLUMNS if c not in instructions.columns]
    if missing:
        raise InputError(f"instruction rows lack column(s): {', '.join(missing)}")
    rows = instructions.select([pl.col(c).cast(pl.String).fill_null("") for c in INSTRUCTION_COLUMNS]).to_dicts()
    trades: dict[str, list[str]] = {c: [] for c in TRADE_COLUMNS}
    rejections: list[Iso20022Rejection] = []
    trade_ids = [""] * len(rows)

    def reject(indices: list[int], reason: str, text: str) -> None:
        for i in indices:
            rejections.append(Iso20022Rejection(i + 1, rows[i]["instruction_id"], reason, text))

    for group in _groups(rows):
        first_of: dict[tuple[str, ...], int] = {}
        for i in group:
            first_of.setdefault(tuple(rows[i].values()), i)  # a repeated instruction counts once
        if len(first_of) > 2:
            reject(group, Iso20022RejectReason.ambiguous_pair, f"{len(first_of)} legs linked")
            continue
        legs = [rows[i] for i in first_of.values()]
        if len(legs) == 2:
            by_movement = {leg["movement"]: leg for leg in legs}
            if set(by_movement) != {"DELI", "RECE"}:
                reject(group, f"{Iso20022RejectReason.pair_mismatch}:movement", "not DELI+RECE")
                continue
            deli, rece = by_movement["DELI"], by_movement["RECE"]
            column = _pair_mismatch(deli, rece)
            if column is not None:
                reject(group, f"{Iso20022RejectReason.pair_mismatch}:{column}", "legs disagree")
                continue
            common = deli["common_id"] if deli["common_id"] == rece["common_id"] else ""
            trade_id = common or deli["instruction_id"]
            base, buyer, seller = deli, _buyer(rece), _seller(deli)
            trade_date = deli["trade_date"] or rece["trade_date"]
            price = _price(deli) or _price(rece)
        else:
            base = legs[0]
            trade_id = base["common_id"] or base["instruction_id"]
            buyer, seller = _buyer(base), _seller(base)
            trade_date, price = base["trade_date"], _price(base)
        if not seller:
            reject(group, Iso20022RejectReason.missing_seller, "no delivering party")
            continue
        if not buyer:
            reject(group, Iso20022RejectReason.missing_buyer, "no receiving party")
            continue
        if not price:
            reject(group, Iso20022RejectReason.no_price, "no deal price nor exact amount/qty")
            continue
        values = (
            trade_id,
            trade_date,
            buyer,
            seller,
            base["security_id"],
            _integral_text(base["quantity"]),
            price,
            base["settlement_date"],
        )
        for column, value in zip(TRADE_COLUMNS, values, strict=True):
            trades[column].append(value)
        for i in group:
            trade_ids[i] = trade_id
    rejections.sort(key=lambda r: r.position)
    return InstructionTrades(_frame(trades, TRADE_COLUMNS), rejections, tuple(trade_ids))


# --------------------------------------------------------------------------------------------
# Outbound records.


def _check_id(name: str, value: str, max_length: int = 35) -> None:
    if not 1 <= len(value) <= max_length:
        raise ValueError(f"{name} must have 1 to {max_length} characters, got {value!r}")


def _check_date(name: str, value: str) -> None:
    try:
        valid = len(value) == 10 and date.fromisoformat(value).isoformat() == value
    except ValueError:
        valid = False
    if not valid:
        raise ValueError(f"{name} must be a YYYY-MM-DD date, got {value!r}")


def _check_isin(value: str) -> None:
    if not _ISIN.fullmatch(value):
        raise ValueError(f"not an ISIN: {value!r}")


Status = Literal["matched", "unmatched", "pending", "failing", "rejected"]


@dataclass(frozen=True)
class StatusAdvice:
    """The status of one settlement instruction, for a sese.024.

    Attributes:
        instruction_id: the instructing party's id (its sese.023 TxId), 1-35 characters.
        status: ``matched``; ``unmatched``; ``pending`` (matched, settlement pending);
            ``failing`` (matched, settlement failing on or after its date); ``rejected`` (not
            accepted for processing).
        reasons: ISO reason codes for the status (e.g. LACK lack of securities, MONY
            insufficient money, CYCL awaiting next cycle, DQUA invalid quantity), from
            :data:`PENDING_REASONS`, :data:`FAILING_REASONS`, :data:`UNMATCHED_REASONS` or
            :data:`REJECTED_REASONS`; empty means no specified reason (NORE). ``matched``
            takes none.
        servicer_tx_id: the account servicer's own reference, ``""`` to leave it out.
        text: additional reason information (at most 210 characters), on the first reason.
    """

    instruction_id: str
    status: Status
    reasons: tuple[str, ...] = ()
    servicer_tx_id: str = ""
    text: str = ""

    def __post_init__(self) -> None:
        _check_id("instruction_id", self.instruction_id)
        if self.servicer_tx_id:
            _check_id("servicer_tx_id", self.servicer_tx_id)
        if self.status not in _REASONS_BY_STATUS:
            raise ValueError(f"unknown status {self.status!r}")
        allowed = _REASONS_BY_STATUS[self.status]
        wrong = [r for r in self.reasons if r not in allowed]
        if wrong:
            raise ValueError(f"reason(s) {wrong} not allowed with status {self.status}")
        if len(self.text) > 210 or (self.text and not self.reasons):
            raise ValueError("text needs a reason and at most 210 characters")


@dataclass(frozen=True)
class SettlementConfirmation:
    """A settled (or partly settled) instruction, for a sese.025.

    Attributes:
        instruction_id: the instructing party's id (its sese.023 TxId), 1-35 characters.
        security_id: the ISIN.
        movement: ``DELI`` (securities delivered) or ``RECE`` (received).
        payment: ``APMT`` (against payment) or ``FREE`` (free of payment).
        settled_quantity: units settled, an integer >= 0.
        settlement_date: effective settlement date, ``YYYY-MM-DD``.
        amount_minor: cash settled in minor units, >= 0 (against payment only); the direction is
            credit for DELI and debit for RECE unless ``cash_direction`` says otherwise.
        currency: ISO 4217 code of ``amount_minor``.
        trade_date: ``YYYY-MM-DD``, ``""`` to leave it out.
        safekeeping_account: the participant's securities account, ``""`` to leave it out.
        transaction_type: securities transaction type code, TRAD for a trade.
        cash_direction: ``CRDT`` or ``DBIT`` when the cash moves against the usual direction
            (a delivery that pays, a receipt that is paid: net settlement may give either);
            ``None`` for the usual direction.
    """

    instruction_id: str
    security_id: str
    movement: Literal["DELI", "RECE"]
    payment: Literal["APMT", "FREE"]
    settled_quantity: int
    settlement_date: str
    amount_minor: int | None = None
    currency: str = ""
    trade_date: str = ""
    safekeeping_account: str = ""
    transaction_type: str = "TRAD"
    cash_direction: Literal["CRDT", "DBIT"] | None = None

    def __post_init__(self) -> None:
        _check_id("instruction_id", self.instruction_id)
        _check_isin(self.security_id)
        if self.movement not in ("DELI", "RECE") or self.payment not in ("APMT", "FREE"):
            raise ValueError(f"movement/payment {self.movement}/{self.payment} unknown")
        if isinstance(self.settled_quantity, bool) or not isinstance(self.settled_quantity, int):
            raise ValueError("settled_quantity must be an int")
        if not 0 <= self.settled_quantity < 10**18:
            raise ValueError(f"settled_quantity out of range: {self.settled_quantity}")
        _check_date("settlement_date", self.settlement_date)
        if self.trade_date:
            _check_date("trade_date", self.trade_date)
        if self.safekeeping_account:
            _check_id("safekeeping_account", self.safekeeping_account)
        if self.payment == "APMT":
            if self.amount_minor is None or not _CURRENCY.fullmatch(self.currency):
                raise ValueError("against payment needs amount_minor and a currency")
            if self.amount_minor < 0:
                raise ValueError("amount_minor must be >= 0; the direction is cash_direction's")
            if self.cash_direction not in (None, "CRDT", "DBIT"):
                raise ValueError(f"cash_direction {self.cash_direction!r} unknown")
            if self.cash_direction == _usual_direction(self.movement):
                raise ValueError("cash_direction is given only against the usual direction")
        elif self.amount_minor is not None or self.cash_direction is not None:
            raise ValueError("a free-of-payment confirmation carries no amount")


@dataclass(frozen=True)
class HoldingsStatement:
    """One participant's securities holdings on a date, for a semt.002.

    Attributes:
        account: the safekeeping (securities) account, 1-35 characters.
        statement_date: ``YYYY-MM-DD``.
        holdings: (ISIN, quantity) pairs; a negative quantity is a short position.
        statement_id: the statement's reference, ``""`` to leave it out.
    """

    account: str
    statement_date: str
    holdings: tuple[tuple[str, int], ...]
    statement_id: str = ""

    def __post_init__(self) -> None:
        _check_id("account", self.account)
        _check_date("statement_date", self.statement_date)
        if self.statement_id:
            _check_id("statement_id", self.statement_id)
        for isin, quantity in self.holdings:
            _check_isin(isin)
            if isinstance(quantity, bool) or not isinstance(quantity, int):
                raise ValueError(f"quantity of {isin} must be an int")
            if abs(quantity) >= 10**18:
                raise ValueError(f"quantity of {isin} out of range")


# --------------------------------------------------------------------------------------------
# Writing.


class _Writer:
    """Builds one ``Document`` in a namespace, elements created in schema order by the caller."""

    def __init__(self, namespace: str, message: str) -> None:
        self._ns = namespace
        self.root = etree.Element(f"{{{namespace}}}Document", nsmap={None: namespace})
        self.body = self.sub(self.root, message)

    def sub(self, parent: etree._Element, *path: str, text: str | None = None) -> etree._Element:
        """Append the chain of new elements ``path`` under ``parent``; text on the last."""
        element = parent
        for name in path:
            element = etree.SubElement(element, f"{{{self._ns}}}{name}")
        if text is not None:
            element.text = text
        return element

    def tobytes(self) -> bytes:
        return etree.tostring(self.root, xml_declaration=True, encoding="UTF-8", pretty_print=True)


def _reasons(writer: _Writer, parent: etree._Element, reasons: tuple[str, ...], text: str) -> None:
    if not reasons:
        writer.sub(parent, "NoSpcfdRsn", text="NORE")
        return
    for index, code in enumerate(reasons):
        reason = writer.sub(parent, "Rsn")
        writer.sub(reason, "Cd", "Cd", text=code)
        if index == 0 and text:
            writer.sub(reason, "AddtlRsnInf", text=text)


def write_sese024(advice: StatusAdvice) -> bytes:
    """A SecuritiesSettlementTransactionStatusAdvice (sese.024) for one instruction.

    ``rejected`` writes PrcgSts/Rjctd with its reasons and nothing more. Otherwise the processing
    status is acknowledged/accepted: ``matched`` writes MtchgSts/Mtchd; ``unmatched``
    MtchgSts/Umtchd with its reasons; ``pending`` and ``failing`` write the instruction as
    matched and SttlmSts/Pdg or SttlmSts/Flng with their reasons.
    """
    writer = _Writer(SESE024_NAMESPACE, "SctiesSttlmTxStsAdvc")
    tx_id = writer.sub(writer.body, "TxId")
    writer.sub(tx_id, "AcctOwnrTxId", text=advice.instruction_id)
    if advice.servicer_tx_id:
        writer.sub(tx_id, "AcctSvcrTxId", text=advice.servicer_tx_id)
    if advice.status == "rejected":
        _reasons(writer, writer.sub(writer.body, "PrcgSts", "Rjctd"), advice.reasons, advice.text)
        return writer.tobytes()
    writer.sub(writer.body, "PrcgSts", "AckdAccptd", "NoSpcfdRsn", text="NORE")
    matching = writer.sub(writer.body, "MtchgSts")
    if advice.status == "unmatched":
        _reasons(writer, writer.sub(matching, "Umtchd"), advice.reasons, advice.text)
    else:
        writer.sub(matching, "Mtchd")
    if advice.status in ("pending", "failing"):
        name = "Pdg" if advice.status == "pending" else "Flng"
        status = writer.sub(writer.body, "SttlmSts", name)
        _reasons(writer, status, advice.reasons, advice.text)
    return writer.tobytes()


def _usual_direction(movement: str) -> Literal["CRDT", "DBIT"]:
    """The cash direction of an against-payment instruction: a delivery is paid, a receipt pays."""
    return "CRDT" if movement == "DELI" else "DBIT"


def write_sese025(confirmation: SettlementConfirmation) -> bytes:
    """A SecuritiesSettlementTransactionConfirmation (sese.025) for one settled instruction."""
    c = confirmation
    writer = _Writer(SESE025_NAMESPACE, "SctiesSttlmTxConf")
    ids = writer.sub(writer.body, "TxIdDtls")
    writer.sub(ids, "AcctOwnrTxId", text=c.instruction_id)
    writer.sub(ids, "SctiesMvmntTp", text=c.movement)
    writer.sub(ids, "Pmt", text=c.payment)
    trade = writer.sub(writer.body, "TradDtls")
    if c.trade_date:
        writer.sub(trade, "TradDt", "Dt", "Dt", text=c.trade_date)
    writer.sub(trade, "FctvSttlmDt", "Dt", "Dt", text=c.settlement_date)
    writer.sub(writer.body, "FinInstrmId", "ISIN", text=c.security_id)
    accounts = writer.sub(writer.body, "QtyAndAcctDtls")
    writer.sub(accounts, "SttldQty", "Qty", "Unit", text=str(c.settled_quantity))
    if c.safekeeping_account:
        writer.sub(accounts, "SfkpgAcct", "Id", text=c.safekeeping_account)
    writer.sub(writer.body, "SttlmParams", "SctiesTxTp", "Cd", text=c.transaction_type)
    if c.payment == "APMT" and c.amount_minor is not None:
        settled = writer.sub(writer.body, "SttldAmt")
        amount = writer.sub(settled, "Amt", text=format_minor(c.amount_minor, c.currency))
        amount.set("Ccy", c.currency)
        writer.sub(settled, "CdtDbtInd", text=c.cash_direction or _usual_direction(c.movement))
    return writer.tobytes()


def write_semt002(statement: HoldingsStatement) -> bytes:
    """A SecuritiesBalanceCustodyReport (semt.002): one page, complete, settled-position basis."""
    s = statement
    writer = _Writer(SEMT002_NAMESPACE, "SctiesBalCtdyRpt")
    pages = writer.sub(writer.body, "Pgntn")
    writer.sub(pages, "PgNb", text="1")
    writer.sub(pages, "LastPgInd", text="true")
    general = writer.sub(writer.body, "StmtGnlDtls")
    if s.statement_id:
        writer.sub(general, "StmtId", text=s.statement_id)
    writer.sub(general, "StmtDtTm", "Dt", text=s.statement_date)
    writer.sub(general, "Frqcy", "Cd", text="ADHO")
    writer.sub(general, "UpdTp", "Cd", text="COMP")
    writer.sub(general, "StmtBsis", "Cd", text="SETT")
    writer.sub(general, "ActvtyInd", text="true" if s.holdings else "false")
    writer.sub(general, "SubAcctInd", text="false")
    writer.sub(writer.body, "SfkpgAcct", "Id", text=s.account)
    for isin, quantity in s.holdings:
        balance = writer.sub(writer.body, "BalForAcct")
        writer.sub(balance, "FinInstrmId", "ISIN", text=isin)
        aggregate = writer.sub(balance, "AggtBal")
        writer.sub(aggregate, "ShrtLngInd", text="SHOR" if quantity < 0 else "LONG")
        writer.sub(aggregate, "Qty", "Qty", "Qty", "Unit", text=str(abs(quantity)))
    return writer.tobytes()


# --------------------------------------------------------------------------------------------
# Reading the three outbound messages back (any version); unreadable input raises InputError.


def _whole(text: str, what: str) -> int:
    value = _decimal(text)
    if value is None or value != value.to_integral_value():
        raise InputError(f"{what} is not a whole number: {text!r}")
    return int(value)


def _amount_minor(text: str, currency: str) -> int:
    if _decimal(text) is None:
        raise InputError(f"settled amount is not a number: {text!r}")
    return to_minor(text, currency)


@contextmanager
def _readable(what: str) -> Iterator[None]:
    """Turn a record's validation error while reading a document into :class:`InputError`."""
    try:
        yield
    except ValueError as exc:
        raise InputError(f"{what}: {exc}") from exc


def _status_of(advice: etree._Element) -> tuple[Status, etree._Element | None]:
    rejected = _child(advice, "PrcgSts", "Rjctd")
    if rejected is not None:
        return "rejected", rejected
    settlement = _child(advice, "SttlmSts")
    if _child(settlement, "Flng") is not None:
        return "failing", _child(settlement, "Flng")
    if _child(settlement, "Pdg") is not None:
        return "pending", _child(settlement, "Pdg")
    unmatched = _child(advice, "MtchgSts", "Umtchd")
    if unmatched is not None:
        return "unmatched", unmatched
    if _child(advice, "MtchgSts", "Mtchd") is not None:
        return "matched", None
    raise InputError("status advice without matching or settlement status")


def parse_sese024(xml: bytes) -> list[StatusAdvice]:
    """The status advices of a sese.024 document (any version, any envelope)."""
    advices: list[StatusAdvice] = []
    for element in _find_all(_parse_xml(xml), "SctiesSttlmTxStsAdvc"):
        status, holder = _status_of(element)
        reasons = tuple(_text(r, "Cd", "Cd") for r in _children(holder, "Rsn"))
        first = next(_children(holder, "Rsn"), None)
        with _readable("status advice"):
            advice = StatusAdvice(
                instruction_id=_text(element, "TxId", "AcctOwnrTxId"),
                status=status,
                reasons=tuple(r for r in reasons if r),
                servicer_tx_id=_text(element, "TxId", "AcctSvcrTxId"),
                text=_text(first, "AddtlRsnInf"),
            )
        advices.append(advice)
    if not advices:
        raise InputError("no SctiesSttlmTxStsAdvc in the document")
    return advices


def parse_sese025(xml: bytes) -> list[SettlementConfirmation]:
    """The settlement confirmations of a sese.025 document (any version, any envelope)."""
    confirmations: list[SettlementConfirmation] = []
    for element in _find_all(_parse_xml(xml), "SctiesSttlmTxConf"):
        ids = _child(element, "TxIdDtls")
        trade = _child(element, "TradDtls")
        amount = _child(element, "SttldAmt", "Amt")
        payment = _text(ids, "Pmt")
        currency = "" if amount is None else amount.get("Ccy", "")
        amount_minor = None
        if amount is not None and payment == "APMT":
            amount_minor = _amount_minor("".join(amount.itertext()).strip(), currency)
        quantity = _quantity(_child(element, "QtyAndAcctDtls", "SttldQty", "Qty"))
        movement = _text(ids, "SctiesMvmntTp")
        direction = _text(element, "SttldAmt", "CdtDbtInd")
        unusual = amount_minor is not None and direction in ("CRDT", "DBIT") and (
            direction != _usual_direction(movement)
        )
        with _readable("settlement confirmation"):
            confirmation = SettlementConfirmation(
                instruction_id=_text(ids, "AcctOwnrTxId"),
                security_id=_text(element, "FinInstrmId", "ISIN"),
                movement=movement,  # type: ignore[arg-type]
                payment=payment,  # type: ignore[arg-type]
                settled_quantity=_whole(quantity, "settled quantity"),
                settlement_date=_date_choice(_child(trade, "FctvSttlmDt", "Dt")),
                amount_minor=amount_minor,
                currency=currency if amount_minor is not None else "",
                trade_date=_date_choice(_child(trade, "TradDt", "Dt")),
                safekeeping_account=_text(element, "QtyAndAcctDtls", "SfkpgAcct", "Id"),
                transaction_type=_text(element, "SttlmParams", "SctiesTxTp", "Cd") or "TRAD",
                cash_direction=direction if unusual else None,  # type: ignore[arg-type]
            )
        confirmations.append(confirmation)
    if not confirmations:
        raise InputError("no SctiesSttlmTxConf in the document")
    return confirmations


def parse_semt002(xml: bytes) -> HoldingsStatement:
    """The statement of holdings of a semt.002 document (any version, any envelope).

    Quantities are read from ``AggtBal/Qty/Qty/Qty`` (Unit, FaceAmt or AmtsdVal) and must be
    whole numbers; a ``SHOR`` position comes back negative.
    """
    reports = _find_all(_parse_xml(xml), "SctiesBalCtdyRpt")
    if not reports:
        raise InputError("no SctiesBalCtdyRpt in the document")
    report = reports[0]
    holdings: list[tuple[str, int]] = []
    for balance in _children(report, "BalForAcct"):
        isin = _security(_child(balance, "FinInstrmId"))
        aggregate = _child(balance, "AggtBal")
        quantity = _whole(_quantity(_child(aggregate, "Qty", "Qty", "Qty")), f"quantity of {isin}")
        sign = -1 if _text(aggregate, "ShrtLngInd") == "SHOR" else 1
        holdings.append((isin, sign * quantity))
    with _readable("holdings statement"):
        return HoldingsStatement(
            account=_text(report, "SfkpgAcct", "Id"),
            statement_date=_date_choice(_child(report, "StmtGnlDtls", "StmtDtTm")),
            holdings=tuple(holdings),
            statement_id=_text(report, "StmtGnlDtls", "StmtId"),
        )
