"""Writes: signed trade submission (idempotent by submission id and by trade id), the CCP's day,
oracle observations on the ledger, halting, and a ledger that still verifies after all of it."""

from __future__ import annotations

import base64
import datetime as dt
from collections.abc import Callable
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from clearhouse.core.errors import InputError
from clearhouse.interfaces.api.client import sign_json, sign_observations, sign_trades
from clearhouse.interfaces.api.service import LedgerService, VerificationState, block_timestamp
from clearhouse.ledger.crypto import KeyPair
from clearhouse.ledger.verify import verify_store

Auth = Callable[[str], dict[str, str]]
Keys = Callable[[str], KeyPair]


def _row(service: LedgerService, trade_id: str, buyer: str = "M000", seller: str = "M001",
         quantity: str = "10", security: int = 0) -> dict[str, str]:
    day = service.business_date
    return {"trade_id": trade_id, "trade_date": day.isoformat(), "buyer": buyer, "seller": seller,
            "security_id": service.machine.securities[security].id, "quantity": quantity,
            "price": "12.34", "settlement_date": service.machine.calendar.add_business_days(day, 1).isoformat()}


def _open_next_day(client: TestClient, auth: Auth) -> dt.date:
    r = client.post("/operator/next-day", headers=auth("CCP"))
    assert r.status_code == 200, r.text
    return dt.date.fromisoformat(r.json()["business_date"])


def test_a_member_submits_its_trades_and_gets_a_result_per_trade(
    client: TestClient, service: LedgerService, auth: Auth, key_of: Keys
) -> None:
    _open_next_day(client, auth)
    rows = [_row(service, "t-1"), _row(service, "t-2", buyer="M002", seller="M003")]
    height = service.node.height
    r = client.post("/trades", headers=auth("M000"), json=sign_trades(key_of("M000"), "M000", "s-1", rows))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] == "accepted" and body["height"] == height + 1
    assert body["results"] == [{"trade_id": "t-1", "result": "ok"},
                               {"trade_id": "t-2", "result": "not_party_to_trade"}]
    assert (body["submitted"], body["accepted"], body["rejected"]) == (2, 1, 1)
    assert body["block_hash"] == service.node.head_hash.hex()


def test_trade_submission_is_idempotent_by_submission_id_and_by_trade_id(
    client: TestClient, service: LedgerService, auth: Auth, key_of: Keys
) -> None:
    _open_next_day(client, auth)
    signed = sign_trades(key_of("M000"), "M000", "s-1", [_row(service, "t-1")])
    first = client.post("/trades", headers=auth("M000"), json=signed).json()
    height = service.node.height
    again = client.post("/trades", headers=auth("M000"), json=signed)
    assert again.status_code == 200
    assert again.json() == {**first, "status": "exists"}
    assert service.node.height == height, "a replayed submission cuts no block"
    other_body = sign_trades(key_of("M000"), "M000", "s-1", [_row(service, "t-9")])
    clash = client.post("/trades", headers=auth("M000"), json=other_body)
    assert clash.status_code == 409 and clash.json()["error"] == "exists_with_different_body"
    same_trade = client.post("/trades", headers=auth("M000"),
                             json=sign_trades(key_of("M000"), "M000", "s-2", [_row(service, "t-1")]))
    assert same_trade.status_code == 200
    assert same_trade.json()["results"] == [{"trade_id": "t-1", "result": "exists"}]
    assert service.node.height == height + 1
    assert service.machine.history.accepted == sum(d["trades"]["accepted"] for d in service.daily())


def test_bad_signatures_and_payloads_are_refused_before_a_block_is_cut(
    client: TestClient, service: LedgerService, auth: Auth, key_of: Keys
) -> None:
    height = service.node.height
    forged = sign_trades(key_of("M001"), "M001", "s-1", [_row(service, "t-1")])
    r = client.post("/trades", headers=auth("M000"), json=forged)
    assert r.status_code == 400 and r.json()["error"] == "bad_signature"
    bad = {**sign_trades(key_of("M000"), "M000", "s-1", [_row(service, "t-1")]), "payload": "{not json"}
    r = client.post("/trades", headers=auth("M000"), json=bad)
    assert r.status_code == 400 and r.json()["error"] == "malformed_payload"
    r = client.post("/trades", headers=auth("M000"),
                    json={**bad, "payload": "***", "encoding": "base64"})
    assert r.status_code == 400 and r.json()["error"] == "malformed_payload"
    r = client.post("/trades", headers=auth("M000"), json={"submission_id": "x", "payload": "{}"})
    assert r.status_code == 422 and r.json()["error"] == "invalid_request"
    assert service.node.height == height


def test_a_base64_payload_and_a_venue_reporting_any_members_trade(
    client: TestClient, service: LedgerService, auth: Auth, key_of: Keys
) -> None:
    _open_next_day(client, auth)
    signed = sign_trades(key_of("EXCHANGE"), "EXCHANGE", "x-1", [_row(service, "v-1", "M002", "M003")])
    signed = {**signed, "payload": base64.b64encode(signed["payload"].encode()).decode(), "encoding": "base64"}
    r = client.post("/trades", headers=auth("EXCHANGE"), json=signed)
    assert r.status_code == 200, r.text
    assert r.json()["results"] == [{"trade_id": "v-1", "result": "ok"}]


def test_a_business_day_run_through_the_api(
    client: TestClient, service: LedgerService, auth: Auth, key_of: Keys, data_dir: Path
) -> None:
    ccp = auth("CCP")
    day = _open_next_day(client, auth)
    assert client.post("/operator/next-day", headers=ccp, json={"business_date": day.isoformat()}).status_code == 409
    saturday = day + dt.timedelta(days=(5 - day.weekday()) % 7 or 7)
    r = client.post("/operator/next-day", headers=ccp, json={"business_date": saturday.isoformat()})
    assert r.status_code == 409 and r.json()["error"] == "not_a_business_day"
    holding = int(service.machine.sec_bal[service.machine.pindex["M001"], 0])
    too_many = str(holding + 1000)
    rows = [_row(service, "d-1", quantity="5"), _row(service, "d-2", quantity=too_many)]
    assert client.post("/trades", headers=auth("M001"),
                       json=sign_trades(key_of("M001"), "M001", "d", rows)).json()["accepted"] == 2
    cut = client.post("/operator/cutoff", headers=ccp)
    assert cut.status_code == 200 and cut.json()["summary"]["gross_obligations"] == 4
    twice = client.post("/operator/cutoff", headers=ccp)
    assert twice.status_code == 409 and twice.json()["error"] == "already_done"
    assert client.post("/operator/settle", headers=ccp).json()["summary"]["instructions"] == 0
    settle_day = _open_next_day(client, auth)
    settled = client.post("/operator/settle", headers=ccp).json()
    assert settled["business_date"] == settle_day.isoformat() and settled["summary"]["failed"] >= 1
    fails = client.get("/participants/M001/fails", headers=auth("M001")).json()["fails"]
    assert fails and fails[0]["reason"] == "insufficient_securities" and fails[0]["quantity"] < 0
    day_view = client.get("/day", headers=auth("REGULATOR")).json()
    assert day_view["business_date"] == settle_day.isoformat()
    assert day_view["settlement"]["failed"] == settled["summary"]["failed"]
    opened = client.get("/participants/M001/positions", headers=auth("M001")).json()["open_positions"]
    assert any(p["failing"] and p["first_due"] == settle_day.isoformat() for p in opened)
    report = verify_store(service.node.store)
    assert report.verified, report.reason
    reopened = LedgerService(data_dir)
    assert (reopened.node.height, reopened.business_date) == (service.node.height, settle_day)
    assert reopened.blocks_today == service.blocks_today
    reopened.close()


def test_block_timestamps_follow_the_plan_of_the_day(
    client: TestClient, service: LedgerService, auth: Auth
) -> None:
    day = _open_next_day(client, auth)
    client.post("/operator/cutoff", headers=auth("CCP"))
    stamps = [b["timestamp"] for b in client.get("/blocks?limit=2", headers=auth("CCP")).json()["blocks"]]
    assert stamps == [f"{day.isoformat()}T07:00:02Z", f"{day.isoformat()}T07:00:01Z"]


def test_block_timestamps_stay_within_the_day() -> None:
    day = dt.date(2026, 1, 5)
    assert [block_timestamp(day, n) for n in (1, 61_199, 61_200, 1_061_198)] == [
        "2026-01-05T07:00:01Z", "2026-01-05T23:59:59Z", "2026-01-05T23:59:59.000001Z",
        "2026-01-05T23:59:59.999999Z"]


def test_the_service_needs_the_operator_keys_the_ledger_registered(data_dir: Path) -> None:
    (data_dir / "keys" / "CCP.key").write_text("11" * 32 + "\n")
    with pytest.raises(InputError, match="no key of CCP"):
        LedgerService(data_dir)


def test_an_oracle_publishes_and_corrects_observations_on_the_ledger(
    client: TestClient, service: LedgerService, auth: Auth, key_of: Keys
) -> None:
    oracle = auth("ORACLE1")
    day = service.business_date.isoformat()
    sec = service.machine.securities[0].id
    items = [
        {"id": "p-1", "index": sec, "fixing_date": day, "rate": "101.25"},
        {"id": "p-2", "index": sec, "fixing_date": day, "rate": "not a number"},
        {"id": "p-3", "index": sec, "fixing_date": day, "rate": "99"},
        {"id": "p-4", "index": "AUD-BBSW-3M", "fixing_date": day, "rate": "0.0412"},
    ]
    signed = sign_observations(key_of("ORACLE1"), "ORACLE1", "o-1", items)
    height = service.node.height
    r = client.post("/oracle/observations", headers=oracle, json=signed)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["height"] == height + 1 and body["summary"]["published"] == 2
    results = [x["result"] for x in body["results"]]
    assert results[0] == "ok" and results[1].startswith("invalid_observation")
    assert results[2:] == ["fixing_already_published", "ok"]
    again = client.post("/oracle/observations", headers=oracle, json=signed).json()
    assert again == {**body, "status": "exists"} and service.node.height == height + 1
    other = sign_observations(key_of("ORACLE1"), "ORACLE1", "o-1", items[:1])
    assert client.post("/oracle/observations", headers=oracle, json=other).status_code == 409
    fix = sign_json(key_of("ORACLE1"), "ORACLE1", "o-2", "observation", {"correct": "p-1", "rate": "101.5"})
    assert client.post("/oracle/observations", headers=oracle, json=fix).json()["results"] == []
    listed = client.get("/oracle/observations", params={"index": sec}, headers=auth("M000")).json()
    assert [(o["observation_id"], o["rate"], o["version"], o["publisher"]) for o in listed["observations"]] == [
        ("p-1", "101.5", 2, "ORACLE1")]
    assert len(client.get("/oracle/observations", headers=auth("M000")).json()["observations"]) == 2
    unknown = sign_json(key_of("ORACLE1"), "ORACLE1", "o-3", "observation", {"correct": "p-9", "rate": "1"})
    r = client.post("/oracle/observations", headers=oracle, json=unknown)
    assert r.status_code == 400 and r.json()["error"] == "rejected" and "p-9" in r.json()["detail"]
    assert verify_store(service.node.store).verified


def test_a_ledger_that_failed_verification_is_read_but_not_written(
    client: TestClient, service: LedgerService, auth: Auth
) -> None:
    service.verification = VerificationState("failed", None, "block 3: state root differs")
    r = client.post("/operator/next-day", headers=auth("CCP"))
    assert r.status_code == 503 and r.json()["error"] == "ledger_not_verified"
    day = client.get("/day", headers=auth("REGULATOR")).json()
    assert day["verification"]["status"] == "failed" and "block 3" in day["verification"]["reason"]


def test_a_storage_failure_halts_the_node(client: TestClient, service: LedgerService, auth: Auth) -> None:
    ccp = auth("CCP")
    service.node.store.close()
    r = client.post("/operator/next-day", headers=ccp)
    assert r.status_code == 503 and r.json()["error"] == "node_halted"
    assert client.get("/day", headers=ccp).status_code == 503
    health = client.get("/health").json()
    assert health["status"] == "halted" and "StorageError" in health["reason"]
