"""The market's doors: FIX Trade Capture Reports and ISO 20022 sese.023 instructions over REST (signed
by the submitter over the trade batch they yield; 35=AR acknowledgements and sese.024 status
advices back), malformed messages refused with the reader's reasons and no block, semt.002 and
sese.025 out, the journal of messages, and the exchange's FIX session on the running server
(``clearhouse serve --fix-port``) end to end over TCP."""

from __future__ import annotations

import base64
import datetime as dt
import importlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import simplefix
from apitest_support import fix_report, quiet_security, sese023
from lxml import etree
from starlette.testclient import TestClient

from clearhouse.core.errors import InputError
from clearhouse.interfaces.api.client import login, sign_fix, sign_sese023
from clearhouse.interfaces.api.journal import JOURNAL_FILE, Journal
from clearhouse.interfaces.api.service import LedgerService
from clearhouse.interfaces.iso20022 import (
    StatusAdvice,
    parse_semt002,
    parse_sese024,
    parse_sese025,
    write_sese024,
)
from clearhouse.ledger.crypto import KeyPair, KeyStore
from clearhouse.ledger.verify import verify_store

Auth = Callable[[str], dict[str, str]]
Keys = Callable[[str], KeyPair]


def _fields(text: str) -> dict[int, str]:
    """The first value of each tag of one FIX message written with ``|`` for SOH."""
    found: dict[int, str] = {}
    for pair in text.strip("|").split("|"):
        tag, _, value = pair.partition("=")
        found.setdefault(int(tag), value)
    return found


def _next_day(client: TestClient, auth: Auth) -> dt.date:
    r = client.post("/operator/next-day", headers=auth("CCP"))
    assert r.status_code == 200, r.text
    return dt.date.fromisoformat(r.json()["business_date"])


def test_a_member_reports_trades_in_fix_and_gets_an_ack_per_report(
    client: TestClient, service: LedgerService, auth: Auth, key_of: Keys
) -> None:
    day = _next_day(client, auth)
    settle = service.machine.calendar.add_business_days(day, 1)
    sec = service.machine.securities[0].id
    message = b"\n".join([
        fix_report("FIX-1", "M000", "M001", sec, 100, "12.50", day, settle),
        fix_report("FIX-2", "M002", "M003", sec, 100, "12.50", day, settle, seq=2),
        fix_report("FIX-3", "M000", "M001", sec, 100, "12.50", day, settle, seq=3, omit=(75,)),
    ]).replace(b"\x01", b"|")
    height = service.node.height
    signed = sign_fix(key_of("M000"), "M000", "m0-fix-1", message)
    r = client.post("/fix/trade-capture", headers=auth("M000"), json=signed)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["height"] == height + 1 and body["status"] == "accepted"
    assert body["results"] == [{"trade_id": "FIX-1", "result": "ok"},
                               {"trade_id": "FIX-2", "result": "not_party_to_trade"}]
    assert [(x["position"], x["ref"], x["reason"]) for x in body["rejections"]] == [(3, "FIX-3", "missing_field:75")]
    acks = [_fields(a["message"]) for a in body["acks"]]
    assert [(a[35], a[571], a[939], a[56]) for a in acks] == [
        ("AR", "FIX-1", "0", "M000"), ("AR", "FIX-2", "1", "M000"), ("AR", "FIX-3", "1", "M000")]
    assert (acks[1][751], acks[1][58]) == ("3", "not_party_to_trade")
    assert acks[0][52] == f"{day:%Y%m%d}-07:00:02.000"  # the block's timestamp, not the clock
    assert [a["status"] for a in body["acks"]] == ["accepted", "rejected", "rejected"]

    again = client.post("/fix/trade-capture", headers=auth("M000"), json=signed)
    assert again.json() == {**body, "status": "exists"} and service.node.height == height + 1
    assert verify_store(service.node.store).verified


def test_the_venue_reports_in_fixml(client: TestClient, service: LedgerService, auth: Auth, key_of: Keys) -> None:
    day = _next_day(client, auth)
    sec = service.machine.securities[1].id
    sides = "".join(f'<RptSide Side="{side}"><Pty ID="{who}" R="1"/></RptSide>' for side, who in (("1", "M002"),
                                                                                                   ("2", "M003")))
    fixml = (f'<?xml version="1.0"?><FIXML><Batch><TrdCaptRpt RptID="XML-1" TrdDt="{day}" SettlDt="{day}" '
             f'LastQty="500" LastPx="3.25"><Instrmt ID="{sec}" Src="4"/>{sides}</TrdCaptRpt></Batch></FIXML>')
    r = client.post("/fix/trade-capture", headers=auth("EXCHANGE"),
                    json=sign_fix(key_of("EXCHANGE"), "EXCHANGE", "x-fixml-1", fixml.encode()))
    assert r.status_code == 200, r.text
    assert r.json()["results"] == [{"trade_id": "XML-1", "result": "ok"}]
    assert _fields(r.json()["acks"][0]["message"])[939] == "0"


def _malformed(day: dt.date, sec: str) -> dict[str, tuple[bytes, str, str]]:
    good = fix_report("BAD-1", "M000", "M001", sec, 100, "12.50", day, day)
    return {
        "bad checksum": (good[:-4] + b"000\x01", "malformed_message", "bad_checksum"),
        "garbled": (b"this is not FIX", "malformed_message", "garbled"),
        "unsupported type": (fix_report("ORD-1", "M000", "M001", sec, 1, "1", day, day, msg_type="D"),
                             "malformed_message", "unsupported_msg_type"),
        "broken FIXML": (b"<FIXML><TrdCaptRpt RptID='x'>", "malformed_message", "garbled"),
        "no trade in it": (fix_report("BAD-2", "M000", "M001", sec, 100, "1", day, day, omit=(31,)), "no_trades",
                           "missing_field:31"),
    }


@pytest.mark.parametrize("case", ["bad checksum", "garbled", "unsupported type", "broken FIXML", "no trade in it"])
def test_malformed_fix_is_refused_with_reasons_and_cuts_no_block(
    client: TestClient, service: LedgerService, auth: Auth, key_of: Keys, case: str
) -> None:
    message, error, reason = _malformed(service.business_date, service.machine.securities[0].id)[case]
    height, root = service.node.height, service.machine.state_root()
    r = client.post("/fix/trade-capture", headers=auth("M000"),
                    json=sign_fix(key_of("M000"), "M000", "m0-bad", message))
    assert r.status_code == 422, r.text
    assert r.json()["error"] == error and reason in [x["reason"] for x in r.json()["detail"]]
    assert (service.node.height, service.machine.state_root()) == (height, root)
    [entry] = client.get("/messages", headers=auth("M000")).json()["messages"]
    assert (entry["door"], entry["status"], entry["height"]) == ("FIX", "refused", None)
    assert entry["reason"].startswith(f"{error}: ") and reason in entry["reason"]


def test_a_message_must_be_the_one_signed(
    client: TestClient, service: LedgerService, auth: Auth, key_of: Keys
) -> None:
    day, sec = service.business_date, service.machine.securities[0].id
    signed = sign_fix(key_of("M000"), "M000", "m0-x", fix_report("T-1", "M000", "M001", sec, 100, "1", day, day))
    other = fix_report("T-1", "M000", "M001", sec, 200, "1", day, day)
    height = service.node.height
    r = client.post("/fix/trade-capture", headers=auth("M000"),
                    json={**signed, "message": base64.b64encode(other).decode()})
    assert r.status_code == 400 and r.json()["error"] == "payload_mismatch", r.text
    forged = sign_fix(key_of("M001"), "M001", "m0-x", fix_report("T-1", "M000", "M001", sec, 100, "1", day, day))
    r = client.post("/fix/trade-capture", headers=auth("M000"), json=forged)
    assert r.status_code == 400 and r.json()["error"] == "bad_signature"
    r = client.post("/fix/trade-capture", headers=auth("M000"), json={**signed, "message": "***"})
    assert r.status_code == 400 and r.json()["error"] == "malformed_payload"
    assert service.node.height == height


def test_sese023_instructions_get_a_status_advice_each(
    client: TestClient, service: LedgerService, auth: Auth, key_of: Keys
) -> None:
    day = _next_day(client, auth)
    settle = service.machine.calendar.add_business_days(day, 1)
    sec = service.machine.securities[2].id
    documents = [
        sese023("M001-D-1", "DELI", "M001", "M000", sec, "200", "4.10", day, settle, "PAIR-1"),
        sese023("M000-R-1", "RECE", "M000", "M001", sec, "200", "4.10", day, settle, "PAIR-1"),
        sese023("M000-R-2", "RECE", "M000", "M001", sec, "200", "4.10", day, settle, "PAIR-2"),
        sese023("M001-D-2", "DELI", "M001", "M000", sec, "300", "4.10", day, settle, "PAIR-2"),
        sese023("M000-R-3", "RECE", "M000", "M001", sec, "200", "4.10", day, settle).replace(
            "<SttlmQty><Qty><Unit>200</Unit></Qty></SttlmQty>", ""),
        sese023("M002-D-1", "DELI", "M002", "M003", sec, "100", "4.10", day, settle),
        sese023("M000-D-1", "DELI", "M000", "M001", sec, "100", "4.10", day - dt.timedelta(days=7),
                day - dt.timedelta(days=7)),
    ]
    xml = ("<BizMsgs>" + "".join(documents) + "</BizMsgs>").encode()
    height = service.node.height
    r = client.post("/iso20022/sese023", headers=auth("M000"),
                    json=sign_sese023(key_of("M000"), "M000", "m0-iso-1", xml))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["height"] == height + 1
    assert body["results"] == [{"trade_id": "PAIR-1", "result": "ok"},
                               {"trade_id": "M002-D-1", "result": "not_party_to_trade"},
                               {"trade_id": "M000-D-1", "result": "settlement_date_passed"}]
    got = [(s["instruction_id"], s["trade_id"], s["status"], s["reasons"], s["reason"]) for s in body["statuses"]]
    assert got == [
        ("M001-D-1", "PAIR-1", "pending", ["FUTU"], None),
        ("M000-R-1", "PAIR-1", "pending", ["FUTU"], None),
        ("M000-R-2", "", "unmatched", ["DQUA"], "pair_mismatch:quantity"),
        ("M001-D-2", "", "unmatched", ["DQUA"], "pair_mismatch:quantity"),
        ("M000-R-3", "", "rejected", ["DQUA"], "missing_field:SttlmQty"),
        ("M002-D-1", "M002-D-1", "rejected", ["OTHR"], "not_party_to_trade"),
        ("M000-D-1", "M000-D-1", "rejected", ["DDAT"], "settlement_date_passed"),
    ]
    advices = [parse_sese024(s["sese024"].encode())[0] for s in body["statuses"]]
    assert advices[0] == StatusAdvice("M001-D-1", "pending", ("FUTU",), "PAIR-1")
    assert advices[5] == StatusAdvice("M002-D-1", "rejected", ("OTHR",), "M002-D-1", "not_party_to_trade")
    assert {x["reason"] for x in body["rejections"]} == {"pair_mismatch:quantity", "missing_field:SttlmQty"}
    document = _strict(body["statuses"][6]["sese024"].encode(), "sese_024_001_12", "Sese02400112")
    if document is not None:
        rejected = document.scties_sttlm_tx_sts_advc.prcg_sts.rjctd
        assert [r.cd.cd.value for r in rejected.rsn] == ["DDAT"]
        assert document.scties_sttlm_tx_sts_advc.mtchg_sts is None
    assert etree.fromstring(write_sese024(StatusAdvice("I-1", "rejected"))).findtext(".//{*}NoSpcfdRsn") == "NORE"


def _strict(xml: bytes, module: str, document_class: str) -> object:
    """The message parsed strictly into the classes generated from the ISO catalogue (unknown
    elements, attributes or codes fail), or None when python-iso20022 is not installed."""
    try:
        models = importlib.import_module(f"python_iso20022.sese.{module}.models")
    except ImportError:
        return None
    from xsdata.formats.dataclass.parsers import XmlParser
    from xsdata.formats.dataclass.parsers.config import ParserConfig

    strict = ParserConfig(fail_on_unknown_properties=True, fail_on_unknown_attributes=True,
                          fail_on_converter_warnings=True)
    return XmlParser(config=strict).from_bytes(xml, getattr(models, document_class))


@pytest.mark.parametrize(("xml", "reason"), [(b"<Document><SctiesSttlmTxInstr>", "not_xml"),
                                             (b"<Document/>", "no_instruction")])
def test_malformed_xml_is_refused_and_cuts_no_block(
    client: TestClient, service: LedgerService, auth: Auth, key_of: Keys, xml: bytes, reason: str
) -> None:
    height = service.node.height
    r = client.post("/iso20022/sese023", headers=auth("M000"),
                    json=sign_sese023(key_of("M000"), "M000", "m0-bad-xml", xml))
    assert r.status_code == 422 and r.json()["error"] == "malformed_message", r.text
    assert [x["reason"] for x in r.json()["detail"]] == [reason]
    assert service.node.height == height


def test_semt002_and_sese025_after_a_fix_trade_settles(
    client: TestClient, service: LedgerService, auth: Auth, key_of: Keys
) -> None:
    day = _next_day(client, auth)
    sec = quiet_security(service, "M000", "M001", 1000)
    before = client.get("/participants/M000/positions", headers=auth("M000")).json()
    # M000 buys 200 at 1.00 and sells 100 at 5.00: it receives 100 units and is paid 300.00 net
    message = (fix_report("S-1", "M000", "M001", sec, 200, "1.00", day, day)
               + fix_report("S-2", "M001", "M000", sec, 100, "5.00", day, day, seq=2))
    r = client.post("/fix/trade-capture", headers=auth("M000"), json=sign_fix(key_of("M000"), "M000", "s", message))
    assert r.json()["results"] == [{"trade_id": "S-1", "result": "ok"}, {"trade_id": "S-2", "result": "ok"}]
    assert client.post("/operator/cutoff", headers=auth("CCP")).status_code == 200
    assert client.post("/operator/settle", headers=auth("CCP")).status_code == 200

    r = client.get("/participants/M000/semt002", headers=auth("M000"))
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/xml")
    statement = parse_semt002(r.content)
    positions = client.get("/participants/M000/positions", headers=auth("M000")).json()
    assert statement.account == "M000" and statement.statement_date == day.isoformat()
    assert dict(statement.holdings) == {s["security_id"]: s["quantity"] for s in positions["securities"]}
    held_before = {s["security_id"]: s["quantity"] for s in before["securities"]}
    assert dict(statement.holdings)[sec] == held_before.get(sec, 0) + 100
    assert client.get("/participants/M000/semt002", headers=auth("REGULATOR")).content == r.content
    assert client.get("/participants/M000/semt002", headers=auth("M001")).status_code == 403
    assert client.get("/participants/NOPE/semt002", headers=auth("CCP")).status_code == 404

    r = client.get("/participants/M000/sese025", params={"settlement_date": day.isoformat()}, headers=auth("M000"))
    assert r.status_code == 200, r.text
    [mine] = [c for c in r.json()["confirmations"] if c["security_id"] == sec]
    [confirmation] = parse_sese025(mine["sese025"].encode())
    assert (confirmation.movement, confirmation.settled_quantity, confirmation.settlement_date) == (
        "RECE", 100, day.isoformat())
    assert (confirmation.amount_minor, confirmation.currency, confirmation.cash_direction) == (30000, "AUD", "CRDT")
    _strict(mine["sese025"].encode(), "sese_025_001_11", "Sese02500111")
    everything = client.get("/participants/M000/sese025", headers=auth("CCP")).json()["confirmations"]
    assert len(everything) > len(r.json()["confirmations"])


def test_the_journal_shows_each_its_own_and_oversight_everything(
    client: TestClient, service: LedgerService, auth: Auth, key_of: Keys
) -> None:
    day, sec = service.business_date, service.machine.securities[0].id
    client.post("/fix/trade-capture", headers=auth("M001"),
                json=sign_fix(key_of("M001"), "M001", "m1", fix_report("J-1", "M000", "M001", sec, 100, "1", day, day)))
    client.post("/iso20022/sese023", headers=auth("M000"),
                json=sign_sese023(key_of("M000"), "M000", "m0", b"<nope"))
    mine = client.get("/messages", headers=auth("M000")).json()
    assert mine["business_date"] == day.isoformat()
    assert [(m["door"], m["submitter"], m["status"]) for m in mine["messages"]] == [("ISO 20022", "M000", "refused")]
    everyone = client.get("/messages", headers=auth("REGULATOR")).json()["messages"]
    assert [(m["door"], m["submitter"]) for m in everyone] == [("ISO 20022", "M000"), ("FIX", "M001")]
    assert everyone[1]["message_sha256"] and everyone[1]["accepted"] + everyone[1]["rejected"] == 1
    other_day = client.get("/messages", params={"business_date": "2020-01-02"}, headers=auth("CCP")).json()
    assert other_day["messages"] == []
    assert len(Journal(service.data_dir / JOURNAL_FILE).entries(day, None, 10)) == 2  # kept in DATA


# ---------------------------------------------------------------- the FIX session of clearhouse serve


def test_the_fix_session_needs_the_exchanges_key(data_dir: Path) -> None:
    (data_dir / "keys" / "EXCHANGE.key").unlink()
    service = LedgerService(data_dir, verify=False)
    with pytest.raises(InputError, match="no key of EXCHANGE"):
        service.fix_session_handler()
    service.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def server(base_ledger: Path, tmp_path: Path) -> Iterator[tuple[str, int, Path]]:
    """``clearhouse serve --fix-port`` on a copy of the ledger: (API base URL, FIX port, data dir)."""
    data = Path(shutil.copytree(base_ledger, tmp_path / "data"))
    port, fix_port = _free_port(), _free_port()
    command = [sys.executable, "-c", "from clearhouse.interfaces.cli import app; app()", "serve", "--data",
               str(data), "--port", str(port), "--fix-port", str(fix_port)]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            env={**os.environ, "COLUMNS": "200"})
    url = f"http://127.0.0.1:{port}"
    try:
        while True:
            assert proc.poll() is None, proc.communicate()[0].decode()
            try:
                if httpx.get(f"{url}/health").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        yield url, fix_port, data
    finally:
        proc.send_signal(signal.SIGINT)
        output = proc.communicate()[0].decode()
        assert proc.returncode == 0, output


class FixClient:
    """An initiator over a raw socket: writes messages with simplefix, reads them back one by one."""

    def __init__(self, port: int, sender: str) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.parser = simplefix.FixParser()
        self.sender = sender
        self.seq = 0

    def send(self, msg_type: str, *body: tuple[int, object]) -> None:
        self.seq += 1
        message = simplefix.FixMessage()
        for tag, value in ((8, "FIX.4.4"), (35, msg_type), (49, self.sender), (56, "CLEARHOUSE"), (34, self.seq),
                           (52, "20260101-10:00:00.000"), *body):
            message.append_pair(tag, value)
        self.sock.sendall(message.encode())

    def send_raw(self, raw: bytes) -> None:
        self.seq += 1
        self.sock.sendall(raw)

    def receive(self) -> dict[int, str]:
        while (message := self.parser.get_message()) is None:
            data = self.sock.recv(65_536)
            assert data, "the server closed the connection"
            self.parser.append_buffer(data)
        return {int(tag): value.decode() for tag, value in reversed(message.pairs)}


def test_the_exchange_reports_over_a_fix_session_of_the_running_server(
    server: tuple[str, int, Path],
) -> None:
    url, fix_port, data = server
    keys = KeyStore(data / "keys")
    api = httpx.Client(base_url=url)
    ccp = login(api, "CCP", keys.load("CCP"))
    day = dt.date.fromisoformat(api.post("/operator/next-day", headers=ccp).json()["business_date"])
    sec = api.get("/participants/M002/positions", headers=ccp).json()["securities"][0]["security_id"]
    height = api.get("/health").json()["height"]

    intruder = FixClient(fix_port, "M000")  # only the venue may log on
    intruder.send("A", (98, 0), (108, 30))
    refusal = intruder.receive()
    assert (refusal[35], refusal[58]) == ("5", "unknown CompID")

    venue = FixClient(fix_port, "EXCHANGE")
    venue.send("A", (98, 0), (108, 30))
    assert venue.receive()[35] == "A"
    venue.send_raw(fix_report("SESSION-1", "M000", "M002", sec, 100, "2.50", day, day, sender="EXCHANGE", seq=2)
                   + fix_report("SESSION-2", "M000", "M002", "XX0000000000", 100, "2.50", day, day,
                                sender="EXCHANGE", seq=3))
    venue.seq = 3
    acks = [venue.receive(), venue.receive()]
    assert [(a[35], a[571], a[939]) for a in acks] == [("AR", "SESSION-1", "0"), ("AR", "SESSION-2", "1")]
    assert (acks[1][751], acks[1][58]) == ("2", "unknown_security")
    venue.send("5")
    assert venue.receive()[35] == "5"

    regulator = login(api, "REGULATOR", keys.load("REGULATOR"))
    entries = api.get("/messages", headers=regulator).json()["messages"]
    assert {(e["door"], e["submitter"], e["status"]) for e in entries} == {("FIX session", "EXCHANGE", "accepted")}
    assert (sum(e["accepted"] for e in entries), sum(e["rejected"] for e in entries)) == (1, 1)
    assert api.get("/health").json()["height"] == height + len(entries)
    api.post("/operator/cutoff", headers=ccp).raise_for_status()
    opened = api.get("/participants/M000/positions", headers=regulator).json()["open_positions"]
    assert any(p["security_id"] == sec and p["settlement_date"] == day.isoformat() for p in opened)
