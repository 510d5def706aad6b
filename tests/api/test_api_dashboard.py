"""The dashboard end to end in headless Chromium: uvicorn serves the API on a loopback port, the
page logs in by signing the challenge in the browser (WebCrypto Ed25519), shows the day's
figures, the charts, a member's positions and a verified holding proof; the regulator picks
any member. A member's FIX trade report and ISO 20022 instruction, sent through the API with the
client helpers, show in the day's messages, and its semt.002 downloads with the settled holding."""

from __future__ import annotations

import datetime as dt
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn
from apitest_support import fix_report, quiet_security, sese023

from clearhouse.interfaces.api.app import create_app
from clearhouse.interfaces.api.client import login, sign_fix, sign_sese023
from clearhouse.interfaces.api.service import LedgerService
from clearhouse.interfaces.iso20022 import parse_semt002
from clearhouse.ledger.crypto import KeyPair

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]

sync_api = pytest.importorskip("playwright.sync_api")
pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed")


@pytest.fixture
def base_url(service: LedgerService) -> Iterator[str]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(create_app(service), log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started and thread.is_alive():
        time.sleep(0.02)
    assert server.started, "uvicorn did not start"
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    server.should_exit = True
    thread.join()
    sock.close()


@pytest.fixture
def browser() -> Iterator[object]:
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield b
        b.close()


def _log_in(page: object, base_url: str, pid: str, seed_hex: str) -> None:
    page.goto(f"{base_url}/")
    page.fill("#login-id", pid)
    page.fill("#login-seed", seed_hex)
    page.click("#login-button")


def _holdings(service: LedgerService, pid: str) -> list[str]:
    m = service.machine
    p = m.pindex[pid]
    return sorted(s.id for i, s in enumerate(m.securities) if m.sec_bal[p, i])


def test_a_member_and_the_regulator_use_the_dashboard(
    base_url: str, browser: object, service: LedgerService, key_of: Callable[[str], KeyPair]
) -> None:
    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))

    _log_in(page, base_url, "M000", key_of("M001").seed.hex())
    page.wait_for_selector("#message.error")
    assert "does not verify with M000's registered key" in page.text_content("#message")

    _log_in(page, base_url, "M000", key_of("M000").seed.hex())
    page.wait_for_selector("#main:not([hidden])")
    page.wait_for_selector("#table-securities tbody tr td")
    assert page.text_content("#session-who") == "M000 (member)"
    assert page.text_content("#day-date") == service.business_date.isoformat()
    assert page.text_content("#day-height") == str(service.node.height)
    assert page.text_content("#day-verified") == "verified"
    assert page.text_content("#day-settled") not in ("", "–")
    assert page.text_content("#day-netting") not in ("", "–")
    for chart in ("chart-trades", "chart-netting", "chart-settlement", "chart-holdings"):
        page.wait_for_selector(f"#{chart} .main-svg")
    days = len(service.daily())
    assert page.locator("#chart-trades .bars .point").count() >= days
    assert page.locator("#chart-holdings .bars .point").count() == len(_holdings(service, "M000"))
    rows = page.locator("#table-securities tbody tr td:first-child").all_text_contents()
    assert sorted(rows) == _holdings(service, "M000")
    assert page.is_disabled("#member-select")

    page.locator("#table-securities tbody tr").first.click()
    page.wait_for_selector("#proof-result.good")
    assert page.text_content("#proof-result").startswith("proof verified: M000 holds")

    page.locator("#table-blocks tbody tr").first.click()
    page.wait_for_function("document.getElementById('block-detail').textContent.includes('state_root')")

    page.click("#logout-button")
    page.wait_for_selector("#login-form:not([hidden])")
    _log_in(page, base_url, "REGULATOR", key_of("REGULATOR").seed.hex())
    page.wait_for_selector("#main:not([hidden])")
    assert page.text_content("#session-who") == "REGULATOR (regulator)"
    page.wait_for_selector("#member-select option[value='M003']", state="attached")
    assert page.locator("#member-select option").all_text_contents() == ["M000", "M001", "M002", "M003"]
    page.select_option("#member-select", "M002")
    page.wait_for_function("document.getElementById('chart-holdings').textContent.includes('M002')")
    rows = page.locator("#table-securities tbody tr td:first-child").all_text_contents()
    assert sorted(rows) == _holdings(service, "M002")
    assert errors == []


def test_a_members_fix_and_iso_messages_show_in_the_dashboard_and_its_semt002(
    base_url: str, browser: object, service: LedgerService, key_of: Callable[[str], KeyPair]
) -> None:
    api = httpx.Client(base_url=base_url)
    ccp = login(api, "CCP", key_of("CCP"))
    day = dt.date.fromisoformat(api.post("/operator/next-day", headers=ccp).json()["business_date"])
    sec = quiet_security(service, "M001", "M000", 200)
    held = int(service.machine.sec_bal[service.machine.pindex["M000"], service.machine.sindex[sec]])
    m0 = login(api, "M000", key_of("M000"))
    report = fix_report("DASH-FIX-1", "M001", "M000", sec, 100, "1.00", day, day)
    r = api.post("/fix/trade-capture", headers=m0, json=sign_fix(key_of("M000"), "M000", "dash-fix", report))
    assert r.json()["results"] == [{"trade_id": "DASH-FIX-1", "result": "ok"}], r.text
    instruction = sese023("DASH-ISO-1", "DELI", "M000", "M001", sec, "100", "1.00", day, day).encode()
    r = api.post("/iso20022/sese023", headers=m0, json=sign_sese023(key_of("M000"), "M000", "dash-iso", instruction))
    assert [s["status"] for s in r.json()["statuses"]] == ["matched"], r.text
    api.post("/operator/cutoff", headers=ccp).raise_for_status()
    api.post("/operator/settle", headers=ccp).raise_for_status()

    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    _log_in(page, base_url, "M000", key_of("M000").seed.hex())
    page.wait_for_selector("#table-messages tbody tr:nth-child(2) td")
    rows = [page.locator(f"#table-messages tbody tr:nth-child({n}) td").all_text_contents() for n in (1, 2)]
    assert [(r[1], r[2], r[3], r[4], r[5], r[7]) for r in rows] == [
        ("ISO 20022", "M000", "dash-iso", "1", "1", "accepted"), ("FIX", "M000", "dash-fix", "1", "1", "accepted")]

    page.wait_for_selector("#semt002-link[href^='blob:']")
    with page.expect_download() as download:
        page.click("#semt002-link")
    assert download.value.suggested_filename == "M000-semt002.xml"
    statement = parse_semt002(Path(download.value.path()).read_bytes())
    assert (statement.account, statement.statement_date) == ("M000", day.isoformat())
    assert dict(statement.holdings)[sec] == held - 200
    shown = page.locator("#table-securities tbody tr td:first-child").all_text_contents()
    assert sorted(shown) == sorted(isin for isin, _ in statement.holdings)

    page.click("#logout-button")
    page.wait_for_selector("#login-form:not([hidden])")
    _log_in(page, base_url, "REGULATOR", key_of("REGULATOR").seed.hex())
    page.wait_for_selector("#table-messages tbody tr:nth-child(2) td")
    doors = page.locator("#table-messages tbody tr td:nth-child(2)").all_text_contents()
    assert doors == ["ISO 20022", "FIX"]
    assert errors == []
