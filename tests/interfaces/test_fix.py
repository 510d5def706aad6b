"""FIX intake: sample reports, framing faults, fuzzing, acks, the session layer and the server."""

from __future__ import annotations

import asyncio
import queue
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest
import simplefix
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clearhouse.interfaces.fix import (
    TRADE_COLUMNS,
    FixIntake,
    FixRejectReason,
    FixSession,
    SessionConfig,
    SessionState,
    parse_fixml_trade_capture,
    parse_trade_capture_reports,
    serve_fix,
    trade_capture_ack,
)

DATA = Path(__file__).parent / "data"
LSE_SAMPLE = (DATA / "lse_tradecapture_valid_checksum.txt").read_bytes()
CME_SAMPLE = (DATA / "cme_stp_fixml_trdcaptrpt_dedup.xml").read_bytes()
REASONS = {r.value for r in FixRejectReason}


def fix_msg(
    msg_type: str,
    seq: int,
    *body: tuple[int, str],
    sender: str = "MEMBERA",
    target: str = "CLEARHOUSE",
    begin: str = "FIX.4.4",
    poss_dup: bool = False,
) -> bytes:
    """A FIX message encoded by simplefix (BodyLength and CheckSum computed there)."""
    message = simplefix.FixMessage()
    message.append_pair(8, begin)
    message.append_pair(35, msg_type)
    message.append_pair(49, sender)
    message.append_pair(56, target)
    message.append_pair(34, seq)
    if poss_dup:
        message.append_pair(43, "Y")
    message.append_pair(52, "20240102-10:00:00.000")
    for tag, value in body:
        message.append_pair(tag, value)
    return message.encode()


def ae_body(
    report_id: str,
    buyer: str = "MEMBERA",
    seller: str = "MEMBERB",
    quantity: str = "100",
    price: str = "10.50",
) -> list[tuple[int, str]]:
    """A two-sided Trade Capture Report body (FIX 4.4 NoSides with Parties)."""
    return [
        (571, report_id), (487, "0"), (856, "0"), (55, "VOD"), (48, "GB00BH4HKS39"), (22, "4"),
        (32, quantity), (31, price), (75, "20240102"), (64, "20240104"), (552, "2"),
        (54, "1"), (453, "2"), (448, buyer), (447, "D"), (452, "1"),
        (448, "CLEARER1"), (447, "D"), (452, "4"),
        (54, "2"), (453, "1"), (448, seller), (447, "D"), (452, "1"),
    ]  # fmt: skip


def fields(raw: bytes) -> dict[int, str]:
    """The first value of each tag of one encoded message."""
    parser = simplefix.FixParser()
    parser.append_buffer(raw)
    message = parser.get_message()
    assert message is not None and parser.get_buffer() == b""
    found: dict[int, str] = {}
    for tag, value in message.pairs:
        found.setdefault(int(tag), value.decode())
    return found


def rows(intake: FixIntake) -> list[dict[str, str]]:
    return intake.trades.to_dicts()


# -- samples ---------------------------------------------------------------------------------


def test_lse_sample_frames_and_reads_every_field_but_has_no_sides() -> None:
    assert b"9=178|" in LSE_SAMPLE and b"10=206|" in LSE_SAMPLE
    intake = parse_trade_capture_reports(LSE_SAMPLE)
    [report] = intake.reports
    assert report.begin_string == "FIX.4.2"
    assert (report.sender, report.target, report.seq_num) == ("BROKERX", "LSEHub", "2175")
    assert report.trade_report_id == "124"
    assert report.security_id == "GB0007188757"  # 48 with 22=4 (ISIN)
    assert (report.quantity, report.price) == ("6", "89.0000000")
    assert report.settlement_date == "2012-01-26"  # 64=20120126
    assert report.trade_date == "2012-01-26"  # no 75: the date of TransactTime 60
    assert not report.poss_dup  # 43=N
    # A FIX 4.2 hub report names no sides: it cannot become a trade.
    assert intake.trades.is_empty()
    assert [(r.msg_seq, r.ref, r.reason) for r in intake.rejections] == [(1, "124", "missing_field:552")]


def test_lse_sample_with_sides_added_becomes_a_trade() -> None:
    parser = simplefix.FixParser()
    parser.append_buffer(LSE_SAMPLE.replace(b"|", b"\x01"))
    sample = parser.get_message()
    message = simplefix.FixMessage()
    for tag, value in sample.pairs:
        if int(tag) not in (9, 10):
            message.append_pair(int(tag), value)
    for tag, value in [(552, "2"), (54, "1"), (448, "BROKERX"), (452, "1"),
                       (54, "2"), (448, "BROKERY"), (452, "1")]:  # fmt: skip
        message.append_pair(tag, value)
    intake = parse_trade_capture_reports(message.encode())
    assert intake.rejections == []
    assert rows(intake) == [
        {
            "trade_id": "124", "trade_date": "2012-01-26", "buyer": "BROKERX",
            "seller": "BROKERY", "security_id": "GB0007188757", "quantity": "6",
            "price": "89.0000000", "settlement_date": "2012-01-26",
        }
    ]  # fmt: skip


def test_pipe_and_soh_forms_read_the_same() -> None:
    soh = parse_trade_capture_reports(LSE_SAMPLE.replace(b"|", b"\x01"))
    pipe = parse_trade_capture_reports(LSE_SAMPLE)
    assert soh.reports == pipe.reports and soh.rejections == pipe.rejections


def test_cme_fixml_sample_reads_its_single_buy_side() -> None:
    intake = parse_fixml_trade_capture(CME_SAMPLE)
    [report] = intake.reports
    assert report.trade_report_id == "141FDE39DC6AP0001C27A105651377"
    assert report.exec_id == "00000000000000000147"
    assert (report.trade_id, report.match_id) == ("100296", "141FDE39DC7AP0001C288")
    assert (report.trans_type, report.report_type) == ("0", "101")
    assert (report.sender, report.target) == ("CME", "RYAN")
    assert report.trade_date == "2013-10-28"
    assert report.settlement_date == ""
    assert report.security_id == "6AH4"  # Instrmt ID "AD" has source H (not ISIN): Sym wins
    assert (report.quantity, report.price) == ("3000000", "0.9534")
    assert (report.buyer, report.seller, report.side_count) == ("719", "", 1)  # R=1 executing firm
    assert intake.trades.is_empty()
    assert [r.reason for r in intake.rejections] == ["unpaired_side"]


def test_cme_fixml_buy_and_sell_reports_pair_into_one_trade() -> None:
    text = CME_SAMPLE.decode()
    start = text.index("<TrdCaptRpt")
    end = text.index("</TrdCaptRpt>") + len("</TrdCaptRpt>")
    sell = (
        text[start:end]
        .replace('RptID="141FDE39DC6AP0001C27A105651377"', 'RptID="SELLSIDE0001"')
        .replace('Side="1"', 'Side="2"')
        .replace('ID="719"', 'ID="720"')
    )
    both = (text[:end] + sell + text[end:]).encode()
    intake = parse_fixml_trade_capture(both)
    assert intake.rejections == []
    assert rows(intake) == [
        {
            "trade_id": "100296", "trade_date": "2013-10-28", "buyer": "719", "seller": "720",
            "security_id": "6AH4", "quantity": "3000000", "price": "0.9534",
            "settlement_date": "",
        }
    ]  # fmt: skip
    assert [r.clearing_trade_id for r in intake.reports] == ["100296", "100296"]


def test_fixml_other_messages_and_bad_xml_are_rejected() -> None:
    other = b'<FIXML><Batch><TrdCaptRptAck RptID="1"/></Batch></FIXML>'
    assert [r.reason for r in parse_fixml_trade_capture(other).rejections] == ["unsupported_msg_type"]
    external = b"<!DOCTYPE x [<!ENTITY e SYSTEM 'file:///etc/passwd'>]><x>&e;</x>"
    for junk in (b"", b"<FIXML>", b"\x00\xff", external):
        intake = parse_fixml_trade_capture(junk)
        assert intake.trades.is_empty()
        assert intake.rejections and all(r.reason in REASONS for r in intake.rejections)


# -- tag=value reports ------------------------------------------------------------------------


def test_two_sided_report_becomes_a_trade_with_role_priority() -> None:
    intake = parse_trade_capture_reports(fix_msg("AE", 2, *ae_body("R1")))
    assert intake.rejections == []
    assert rows(intake) == [
        {
            "trade_id": "R1", "trade_date": "2024-01-02", "buyer": "MEMBERA",
            "seller": "MEMBERB", "security_id": "GB00BH4HKS39", "quantity": "100",
            "price": "10.50", "settlement_date": "2024-01-04",
        }
    ]  # fmt: skip
    assert intake.reports[0].clearing_trade_id == "R1"


def test_exec_id_stands_in_for_trade_report_id_and_clearing_firm_for_executing_firm() -> None:
    body = [(17, "EXEC9"), (48, "GB00BH4HKS39"), (22, "4"), (32, "5"), (31, "1"),
            (75, "20240102"), (552, "2"), (54, "1"), (448, "CLR-A"), (452, "4"),
            (54, "5"), (448, "EXE-B"), (452, "1")]  # fmt: skip
    [row] = rows(parse_trade_capture_reports(fix_msg("AE", 1, *body)))
    assert (row["trade_id"], row["buyer"], row["seller"]) == ("EXEC9", "CLR-A", "EXE-B")
    assert row["settlement_date"] == ""


def test_missing_fields_are_named() -> None:
    body = [(tag, value) for tag, value in ae_body("R1") if tag != 32]
    intake = parse_trade_capture_reports(fix_msg("AE", 1, *body))
    assert [r.reason for r in intake.rejections] == ["missing_field:32"]


def test_one_sided_reports_pair_by_trade_id_and_mismatches_are_rejected() -> None:
    def side(report_id: str, side: str, party: str, qty: str = "100") -> bytes:
        body = [(571, report_id), (1003, "T77"), (48, "GB00BH4HKS39"), (22, "4"), (32, qty),
                (31, "2.5"), (75, "20240102"), (552, "1"), (54, side), (448, party), (452, "1")]  # fmt: skip
        return fix_msg("AE", 1, *body)

    paired = parse_trade_capture_reports(side("B1", "1", "MEMBERA") + side("S1", "2", "MEMBERB"))
    assert paired.rejections == []
    assert [(r["trade_id"], r["buyer"], r["seller"]) for r in rows(paired)] == [("T77", "MEMBERA", "MEMBERB")]
    differ = parse_trade_capture_reports(side("B1", "1", "MEMBERA") + side("S1", "2", "MEMBERB", qty="99"))
    assert differ.trades.is_empty()
    assert [(r.msg_seq, r.reason) for r in differ.rejections] == [
        (1, "mismatched_sides"),
        (2, "mismatched_sides"),
    ]


def test_checksum_and_body_length_faults_are_rejected_and_the_rest_still_read() -> None:
    good = fix_msg("AE", 1, *ae_body("OK1"))
    bad_sum = LSE_SAMPLE.strip().replace(b"10=206|", b"10=207|")
    short = LSE_SAMPLE.strip().replace(b"9=178|", b"9=177|")
    long = LSE_SAMPLE.strip().replace(b"9=178|", b"9=179|")
    for faulty, reason in ((bad_sum, "bad_checksum"), (short, "bad_body_length"),
                           (long, "bad_body_length")):  # fmt: skip
        data = faulty.replace(b"|", b"\x01") + b"\n" + good
        intake = parse_trade_capture_reports(data)
        assert [(r.msg_seq, r.reason) for r in intake.rejections] == [(1, reason)], reason
        assert rows(intake)[0]["trade_id"] == "OK1"


def test_unsupported_types_garbage_and_truncation() -> None:
    order = fix_msg("D", 7, (11, "C1"))
    data = b"hello" + order + fix_msg("AE", 8, *ae_body("R8")) + fix_msg("AE", 9, *ae_body("R9"))[:40]
    intake = parse_trade_capture_reports(data)
    assert [(r.msg_seq, r.reason) for r in intake.rejections] == [
        (0, "garbled"),
        (1, "unsupported_msg_type"),
        (3, "garbled"),
    ]
    assert intake.rejections[1].ref == "7"
    assert rows(intake)[0]["trade_id"] == "R8"


def test_oversized_and_empty_inputs() -> None:
    huge = b"8=FIX.4.4\x019=99999999\x0135=AE\x01"
    assert [r.reason for r in parse_trade_capture_reports(huge).rejections] == ["too_large"]
    empty = parse_trade_capture_reports(b"")
    assert empty.trades.columns == list(TRADE_COLUMNS) and empty.rejections == []


# -- fuzzing ----------------------------------------------------------------------------------

SEEDS = [
    LSE_SAMPLE,
    fix_msg("AE", 1, *ae_body("R1")) + fix_msg("AE", 2, *ae_body("R2")),
    fix_msg("A", 1, (98, "0"), (108, "30")) + fix_msg("AE", 2, *ae_body("R1")),
]


FRAGMENTS = [b"\x01", b"=", b"|", b"8=FIX.4.4\x01", b"10=000\x01", b"9=5\x01"]


@st.composite
def mutated_fix(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 6))):
        op = draw(st.sampled_from(["flip", "insert", "delete", "truncate", "duplicate"]))
        at = draw(st.integers(0, max(0, len(data) - 1)))
        if op == "flip" and data:
            data[at] = draw(st.integers(0, 255))
        elif op == "insert":
            data[at:at] = draw(st.sampled_from(FRAGMENTS))
        elif op == "delete":
            del data[at : at + draw(st.integers(1, 8))]
        elif op == "truncate":
            del data[at:]
        else:
            data[at:at] = data[at : at + draw(st.integers(1, 64))]
    return bytes(data)


def check_intake(intake: FixIntake) -> None:
    assert isinstance(intake, FixIntake)
    assert intake.trades.columns == list(TRADE_COLUMNS)
    assert all(dtype == pl.String for dtype in intake.trades.dtypes)
    for rejection in intake.rejections:
        base = rejection.reason.split(":")[0]
        assert base in REASONS
        if base == "missing_field":
            assert rejection.reason.split(":")[1].isdigit()
    rejected = {r.msg_seq for r in intake.rejections}
    for report in intake.reports:
        assert bool(report.clearing_trade_id) != (report.msg_seq in rejected)


FUZZ = settings(max_examples=150, deadline=timedelta(seconds=2), suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(st.binary(max_size=2048))
def test_fuzz_random_bytes_never_raise(data: bytes) -> None:
    check_intake(parse_trade_capture_reports(data))
    check_intake(parse_fixml_trade_capture(data))


@FUZZ
@given(mutated_fix())
def test_fuzz_mutated_messages_never_raise(data: bytes) -> None:
    check_intake(parse_trade_capture_reports(data))


@st.composite
def mutated_fixml(draw: st.DrawFn) -> bytes:
    data = bytearray(CME_SAMPLE)
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(data) - 1))
        if draw(st.booleans()):
            data[at] = draw(st.sampled_from(list(b'<>/="& \x00x')))
        else:
            del data[at : at + draw(st.integers(1, 16))]
    return bytes(data)


@FUZZ
@given(mutated_fixml())
def test_fuzz_mutated_fixml_never_raises(data: bytes) -> None:
    check_intake(parse_fixml_trade_capture(data))


@pytest.mark.parametrize(
    "data",
    [
        b"8=FIX" * 100_000,
        b"\x0110=" * 100_000,
        b"8=FIX.4.4\x019=10\x01" * 50_000,
        b"8=FIX.4.4\x019=60000\x01" + b"1=2\x01" * 15_000 + b"10=000\x01",
        (b"1=" + b"9" * 40 + b"\x01") * 20_000,
        fix_msg("AE", 1, *ae_body("R1")) * 2_000,
    ],
    ids=["begins", "trailers", "short-bodies", "many-fields", "no-begin", "many-messages"],
)
def test_hostile_inputs_finish(data: bytes) -> None:
    started = time.perf_counter()
    check_intake(parse_trade_capture_reports(data))
    assert time.perf_counter() - started < 20  # a hang guard, not a performance figure


# -- acknowledgement --------------------------------------------------------------------------


def test_trade_capture_ack_accepted_and_rejected() -> None:
    report = parse_trade_capture_reports(fix_msg("AE", 2, *ae_body("R1"))).reports[0]
    accepted = trade_capture_ack(report, "accepted", None, 5, "CLEARHOUSE", "MEMBERA", "20240102-10:00:01.000")
    f = fields(accepted)
    assert (f[35], f[571], f[939], f[34], f[49], f[56]) == (
        "AR", "R1", "0", "5", "CLEARHOUSE", "MEMBERA",
    )  # fmt: skip
    assert f[52] == "20240102-10:00:01.000" and 58 not in f and f[48] == "GB00BH4HKS39"
    rejected = fields(trade_capture_ack(report, "rejected", "unknown_security", 6, "CH", "M", "20240102-10:00:02"))
    assert (rejected[939], rejected[751], rejected[58]) == ("1", "2", "unknown_security")
    # The ack frames and checksums correctly under our own reader.
    assert [r.reason for r in parse_trade_capture_reports(accepted).rejections] == ["unsupported_msg_type"]
    with pytest.raises(ValueError):
        trade_capture_ack(report, "maybe", None, 1, "A", "B", "t")  # type: ignore[arg-type]


# -- session layer ----------------------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = datetime(2024, 1, 2, 10, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def logged_on(clock: FakeClock | None = None, heartbeat: str = "30") -> FixSession:
    session = FixSession(SessionConfig(target_comp_id="MEMBERA"), clock or FakeClock())
    [reply] = session.on_bytes(fix_msg("A", 1, (98, "0"), (108, heartbeat)))
    f = fields(reply)
    assert (f[35], f[34], f[108], f[49], f[56]) == ("A", "1", heartbeat, "CLEARHOUSE", "MEMBERA")
    assert session.state == SessionState.active and session.next_inbound_seq == 2
    return session


def test_logon_is_required_first() -> None:
    session = FixSession(SessionConfig(), FakeClock())
    [reply] = session.on_bytes(fix_msg("AE", 1, *ae_body("R1")))
    assert fields(reply)[35] == "5" and session.closed
    assert session.on_bytes(fix_msg("A", 2)) == []


def test_unknown_comp_id_is_refused() -> None:
    session = FixSession(SessionConfig(target_comp_id="MEMBERA"), FakeClock())
    [reply] = session.on_bytes(fix_msg("A", 1, (108, "30"), sender="INTRUDER"))
    assert fields(reply)[35] == "5" and session.closed


def test_messages_in_sequence_are_queued_and_test_requests_answered() -> None:
    session = logged_on()
    assert session.on_bytes(fix_msg("AE", 2, *ae_body("R1"))) == []
    [heartbeat] = session.on_bytes(fix_msg("1", 3, (112, "PING")))
    assert (fields(heartbeat)[35], fields(heartbeat)[112]) == ("0", "PING")
    [message] = session.take_messages()
    assert (message.seq_num, message.msg_type, message.poss_dup) == (2, "AE", False)
    assert parse_trade_capture_reports(message.raw).reports[0].trade_report_id == "R1"
    assert session.take_messages() == []


def test_gap_sends_one_resend_request_and_resends_fill_it() -> None:
    session = logged_on()
    session.on_bytes(fix_msg("AE", 2, *ae_body("R2")))
    [resend] = session.on_bytes(fix_msg("AE", 5, *ae_body("R5")))
    f = fields(resend)
    assert (f[35], f[7], f[16]) == ("2", "3", "0")
    assert session.on_bytes(fix_msg("AE", 6, *ae_body("R6"))) == []  # no second request
    assert [m.seq_num for m in session.take_messages()] == [2]
    # The counterparty resends 3..6; 4 is an admin message it replaces with a gap fill.
    replies = session.on_bytes(
        fix_msg("AE", 3, *ae_body("R3"), poss_dup=True)
        + fix_msg("4", 4, (123, "Y"), (36, "5"), poss_dup=True)
        + fix_msg("AE", 5, *ae_body("R5"), poss_dup=True)
        + fix_msg("AE", 6, *ae_body("R6"), poss_dup=True)
    )
    assert replies == []
    assert [(m.seq_num, m.poss_dup) for m in session.take_messages()] == [
        (3, True), (5, True), (6, True),
    ]  # fmt: skip
    assert session.next_inbound_seq == 7
    # After the gap closed, a new gap asks again.
    [again] = session.on_bytes(fix_msg("0", 9))
    assert (fields(again)[35], fields(again)[7]) == ("2", "7")


def test_duplicates_below_the_expected_number() -> None:
    session = logged_on()
    session.on_bytes(fix_msg("AE", 2, *ae_body("R2")))
    assert session.on_bytes(fix_msg("AE", 2, *ae_body("R2"), poss_dup=True)) == []
    assert [m.seq_num for m in session.take_messages()] == [2]
    [logout] = session.on_bytes(fix_msg("AE", 2, *ae_body("R2")))
    assert fields(logout)[35] == "5" and "too low" in fields(logout)[58] and session.closed


def test_sequence_reset_modes() -> None:
    session = logged_on()
    assert session.on_bytes(fix_msg("4", 99, (36, "10"))) == []  # reset mode ignores 34
    assert session.next_inbound_seq == 10
    [reject] = session.on_bytes(fix_msg("4", 10, (36, "3")))
    assert (fields(reject)[35], fields(reject)[373]) == ("3", "5")


def test_resend_request_from_the_counterparty_replays_application_messages() -> None:
    clock = FakeClock()
    session = logged_on(clock)
    session.on_bytes(fix_msg("AE", 2, *ae_body("R2")) + fix_msg("AE", 3, *ae_body("R3")))
    reports = parse_trade_capture_reports(b"".join(m.raw for m in session.take_messages()))
    first_sent = [session.ack(r, "accepted") for r in reports.reports]
    assert [fields(m)[34] for m in first_sent] == ["2", "3"]
    clock.advance(5)
    replies = session.on_bytes(fix_msg("2", 4, (7, "1"), (16, "0")))
    decoded = [fields(m) for m in replies]
    assert [(f[35], f[34]) for f in decoded] == [("4", "1"), ("AR", "2"), ("AR", "3")]
    assert (decoded[0][123], decoded[0][36]) == ("Y", "2")  # the Logon is gap-filled
    assert all(f[43] == "Y" for f in decoded)
    assert decoded[1][122] == "20240102-10:00:00.000" and decoded[1][52] == "20240102-10:00:05.000"
    assert decoded[1][571] == "R2"
    assert session.next_outbound_seq == 4  # resends take no new numbers


def test_timers_heartbeat_test_request_and_timeout() -> None:
    clock = FakeClock()
    session = logged_on(clock, heartbeat="10")
    clock.advance(10)
    [heartbeat] = session.on_timer()
    assert fields(heartbeat)[35] == "0"
    clock.advance(2)
    [test_request] = session.on_timer()
    f = fields(test_request)
    assert f[35] == "1"
    assert session.on_bytes(fix_msg("0", 2, (112, f[112]))) == []
    clock.advance(12)
    [test_request] = session.on_timer()
    clock.advance(11)
    [logout] = session.on_timer()
    assert fields(logout)[35] == "5" and session.closed


def test_logout_both_ways() -> None:
    session = logged_on()
    [reply] = session.on_bytes(fix_msg("5", 2))
    assert fields(reply)[35] == "5" and session.closed
    ours = logged_on()
    assert fields(ours.logout("end of day"))[35] == "5"
    assert ours.state == SessionState.logout_sent
    assert ours.on_bytes(fix_msg("5", 2)) == [] and ours.closed


def test_faulty_frames_are_ignored_and_bytes_may_arrive_one_at_a_time() -> None:
    session = logged_on()
    bad = fix_msg("AE", 2, *ae_body("BAD"))
    bad = bad[:-4] + (b"000" if bad[-4:-1] != b"000" else b"001") + b"\x01"
    stream = b"noise" + bad + fix_msg("AE", 2, *ae_body("R2"))
    for byte in stream:
        assert session.on_bytes(bytes([byte])) == []
    assert [m.seq_num for m in session.take_messages()] == [2]
    assert [f.reason for f in session.faults] == ["garbled", "bad_checksum"]


@FUZZ
@given(st.lists(st.one_of(st.binary(max_size=200), mutated_fix()), max_size=6))
def test_fuzz_session_never_raises(chunks: list[bytes]) -> None:
    session = FixSession(SessionConfig(), FakeClock())
    session.on_bytes(fix_msg("A", 1, (108, "30")))
    for chunk in chunks:
        for reply in session.on_bytes(chunk):
            assert reply.startswith(b"8=FIX.4.4\x01")
        session.on_timer()


# -- the TCP server, end to end ---------------------------------------------------------------


def refuse_self_trades(intake: FixIntake) -> dict[str, str]:
    return {row["trade_id"]: "buyer_equals_seller" for row in intake.trades.to_dicts() if row["buyer"] == row["seller"]}


def test_server_with_a_raw_socket_client_gap_and_resend() -> None:
    intakes: list[FixIntake] = []

    def on_trades(intake: FixIntake) -> dict[str, str]:
        intakes.append(intake)
        return refuse_self_trades(intake)

    async def scenario() -> None:
        server = await serve_fix("127.0.0.1", 0, on_trades, timer_period=0.05)
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        parser = simplefix.FixParser()

        async def receive() -> dict[int, str]:
            while (message := parser.get_message()) is None:
                data = await reader.read(4096)
                assert data, "connection closed"
                parser.append_buffer(data)
            return {int(t): v.decode() for t, v in reversed(message.pairs)}

        writer.write(fix_msg("A", 1, (98, "0"), (108, "30")))
        assert (await receive())[35] == "A"
        writer.write(fix_msg("AE", 2, *ae_body("R2")))
        ack = await receive()
        assert (ack[35], ack[571], ack[939]) == ("AR", "R2", "0")
        writer.write(fix_msg("AE", 4, *ae_body("R4")))
        resend = await receive()
        assert (resend[35], resend[7], resend[16]) == ("2", "3", "0")
        writer.write(fix_msg("AE", 3, *ae_body("R3"), poss_dup=True) + fix_msg("AE", 4, *ae_body("R4"), poss_dup=True))
        acks = [await receive(), await receive()]
        assert [(a[571], a[939]) for a in acks] == [("R3", "0"), ("R4", "0")]
        writer.write(fix_msg("D", 5, (11, "ORDER1")))
        business = await receive()
        assert (business[35], business[380], business[45]) == ("j", "3", "5")
        writer.write(fix_msg("AE", 6, *ae_body("R6", seller="MEMBERA")))
        refused = await receive()
        assert (refused[571], refused[939], refused[751], refused[58]) == (
            "R6", "1", "1", "buyer_equals_seller",
        )  # fmt: skip
        writer.write(fix_msg("5", 7))
        assert (await receive())[35] == "5"
        assert await reader.read() == b""
        writer.close()
        server.close()
        await server.wait_closed()

    asyncio.run(asyncio.wait_for(scenario(), timeout=20))
    traded = [row["trade_id"] for intake in intakes for row in intake.trades.to_dicts()]
    assert traded == ["R2", "R3", "R4", "R6"]


def test_server_with_a_quickfix_initiator(tmp_path: Path) -> None:
    fix = pytest.importorskip("quickfix")
    fix44 = pytest.importorskip("quickfix44")
    dictionary = Path(sys.prefix) / "share" / "quickfix" / "FIX44.xml"
    if not dictionary.exists():
        pytest.skip("quickfix installed without its FIX44.xml data dictionary")
    intakes: list[FixIntake] = []
    loop = asyncio.new_event_loop()
    server = loop.run_until_complete(serve_fix("127.0.0.1", 0, intakes.append, timer_period=0.05))
    port = server.sockets[0].getsockname()[1]
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()

    class Client(fix.Application):  # type: ignore[misc, name-defined]
        def __init__(self) -> None:
            super().__init__()
            self.logged_on = threading.Event()
            self.logged_out = threading.Event()
            self.app_in: queue.Queue[str] = queue.Queue()
            self.admin_in: queue.Queue[str] = queue.Queue()

        def onCreate(self, session_id: object) -> None:  # noqa: N802 (quickfix's names)
            self.session_id = session_id

        def onLogon(self, session_id: object) -> None:  # noqa: N802
            self.logged_on.set()

        def onLogout(self, session_id: object) -> None:  # noqa: N802
            self.logged_out.set()

        def toAdmin(self, message: object, session_id: object) -> None:  # noqa: N802
            pass

        def fromAdmin(self, message: object, session_id: object) -> None:  # noqa: N802
            self.admin_in.put(message.toString())  # type: ignore[attr-defined]

        def toApp(self, message: object, session_id: object) -> None:  # noqa: N802
            pass

        def fromApp(self, message: object, session_id: object) -> None:  # noqa: N802
            self.app_in.put(message.toString())  # type: ignore[attr-defined]

    config = tmp_path / "initiator.cfg"
    config.write_text(
        "[DEFAULT]\nConnectionType=initiator\nReconnectInterval=1\nHeartBtInt=30\n"
        f"FileStorePath={tmp_path / 'store'}\nFileLogPath={tmp_path / 'log'}\n"
        "StartTime=00:00:00\nEndTime=00:00:00\nResetOnLogon=Y\n"
        f"UseDataDictionary=Y\nDataDictionary={dictionary}\n"
        f"SocketConnectHost=127.0.0.1\nSocketConnectPort={port}\n\n"
        "[SESSION]\nBeginString=FIX.4.4\nSenderCompID=MEMBERA\nTargetCompID=CLEARHOUSE\n"
    )
    client = Client()
    settings_ = fix.SessionSettings(str(config))
    initiator = fix.SocketInitiator(client, fix.FileStoreFactory(settings_), settings_, fix.FileLogFactory(settings_))

    def report(report_id: str) -> object:
        message = fix44.TradeCaptureReport()
        message.setField(fix.TradeReportID(report_id))
        message.setField(fix.Symbol("VOD"))
        message.setField(fix.SecurityID("GB00BH4HKS39"))
        message.setField(fix.SecurityIDSource("4"))
        message.setField(fix.LastQty(100))
        message.setField(fix.LastPx(10.5))
        message.setField(fix.TradeDate("20240102"))
        message.setField(fix.SettlDate("20240104"))
        for side, party in (("1", "MEMBERA"), ("2", "MEMBERB")):
            group = fix44.TradeCaptureReport.NoSides()
            group.setField(fix.Side(side))
            parties = fix44.TradeCaptureReport.NoSides.NoPartyIDs()
            parties.setField(fix.PartyID(party))
            parties.setField(fix.PartyIDSource("D"))
            parties.setField(fix.PartyRole(1))
            group.addGroup(parties)
            message.addGroup(group)
        return message

    def ack_fields() -> dict[int, str]:
        text = client.app_in.get(timeout=10)
        return dict((int(k), v) for k, v in (f.split("=", 1) for f in text.split("\x01") if f))

    try:
        initiator.start()
        assert client.logged_on.wait(10), "quickfix did not log on"
        assert fix.Session.sendToTarget(report("QF1"), client.session_id)
        ack = ack_fields()
        assert (ack[35], ack[571], ack[939]) == ("AR", "QF1", "0")
        # Make quickfix skip two sequence numbers: our side must ask for them; quickfix answers
        # with a gap fill and resends the report, which is then acknowledged.
        session = fix.Session.lookupSession(client.session_id)
        skipped = session.getExpectedSenderNum()
        session.setNextSenderMsgSeqNum(skipped + 2)
        assert fix.Session.sendToTarget(report("QF2"), client.session_id)
        ack = ack_fields()
        assert (ack[35], ack[571], ack[939]) == ("AR", "QF2", "0")
        admin = []
        while not client.admin_in.empty():
            admin.append(client.admin_in.get())
        resend_requests = [m for m in admin if "\x0135=2\x01" in m]
        assert resend_requests and f"\x017={skipped}\x01" in resend_requests[0]
        session.logout()
        assert client.logged_out.wait(10), "our side did not answer the Logout"
    finally:
        initiator.stop(True)
        loop.call_soon_threadsafe(server.close)
        asyncio.run_coroutine_threadsafe(server.wait_closed(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
    traded = [row for intake in intakes for row in intake.trades.to_dicts()]
    assert [row["trade_id"] for row in traded] == ["QF1", "QF2"]
    assert traded[0] == {
        "trade_id": "QF1", "trade_date": "2024-01-02", "buyer": "MEMBERA", "seller": "MEMBERB",
        "security_id": "GB00BH4HKS39", "quantity": "100", "price": "10.5",
        "settlement_date": "2024-01-04",
    }  # fmt: skip
    assert intakes[1].reports[0].poss_dup
