"""Reads: positions, obligations, instructions, blocks, the day's figures, and holding proofs that a
client verifies and recomputes up to the state root of the head block."""

from __future__ import annotations

import json
from collections.abc import Callable
from decimal import Decimal

import pytest
from starlette.testclient import TestClient

from clearhouse.core.hashing import sha256
from clearhouse.cycle.report import build_report
from clearhouse.interfaces.api.service import LedgerService
from clearhouse.ledger.merkle import MerkleProof, verify_proof

Auth = Callable[[str], dict[str, str]]


def _proof_of(body: dict) -> MerkleProof:
    return MerkleProof(body["index"], body["size"],
                       tuple((bytes.fromhex(s["hash"]), s["side"] == "left") for s in body["path"]))


def test_positions_are_the_stored_head_rows(client: TestClient, service: LedgerService, auth: Auth) -> None:
    body = client.get("/participants/M002/positions", headers=auth("M002")).json()
    m = service.machine
    p = m.pindex["M002"]
    assert {h["security_id"]: h["quantity"] for h in body["securities"]} == {
        s.id: int(m.sec_bal[p, i]) for i, s in enumerate(m.securities) if m.sec_bal[p, i]}
    assert body["cash"] == [{"currency": "AUD", "amount": f"{Decimal(int(m.cash_bal[p, 0])) / 100:.2f}"}]
    assert body["height"] == service.node.height


@pytest.mark.parametrize(("table", "asset"), [("securities", 0), ("cash", "AUD")])
def test_a_holding_proof_verifies_and_recomputes_the_state_root(
    client: TestClient, service: LedgerService, auth: Auth, table: str, asset: int | str
) -> None:
    name = service.machine.securities[asset].id if isinstance(asset, int) else asset
    r = client.get(f"/participants/M001/proof/{name}", params={"table": table}, headers=auth("M001"))
    assert r.status_code == 200, r.text
    body = r.json()
    leaf = body["leaf"].encode()
    assert json.loads(leaf) == [table, "M001", name, int(Decimal(body["amount"]))]
    balances_root = bytes.fromhex(body["balances_root"])
    assert verify_proof(leaf, _proof_of(body), balances_root)
    assert body["components"]["balances"] == body["balances_root"]
    comps = body["components"]
    recomputed = sha256(b"clearhouse/state/v1", *(bytes.fromhex(comps[k]) for k in sorted(comps)))
    assert recomputed.hex() == body["state_root"]
    header = client.get(f"/blocks/{body['height']}", headers=auth("M001")).json()
    assert header["state_root"] == body["state_root"] and header["hash"] == body["block_hash"]
    tampered = json.dumps([table, "M001", name, int(Decimal(body["amount"])) + 1], separators=(",", ":"))
    assert not verify_proof(tampered.encode(), _proof_of(body), balances_root)


def test_no_proof_of_a_zero_balance_and_no_data_of_an_unknown_participant(
    client: TestClient, auth: Auth
) -> None:
    r = client.get("/participants/M001/proof/XX0000000000", headers=auth("M001"))
    assert r.status_code == 404 and r.json()["error"] == "no_balance"
    r = client.get("/participants/NOBODY/positions", headers=auth("REGULATOR"))
    assert r.status_code == 404 and r.json()["error"] == "unknown_participant"
    assert client.get("/participants/NOBODY/positions", headers=auth("M000")).status_code == 403


def test_obligations_and_instructions_match_the_run_report(
    client: TestClient, service: LedgerService, auth: Auth
) -> None:
    report = build_report(service.node, None)
    for pid in ("M000", "M003"):
        obligations = client.get(f"/participants/{pid}/obligations", headers=auth("REGULATOR")).json()
        mine = sorted((p["settlement_date"], p["security_id"], p["quantity"], p["cash"])
                      for p in report["net_positions"] if p["participant_id"] == pid)
        assert sorted((o["settlement_date"], o["security_id"], o["quantity"], o["cash"])
                      for o in obligations["obligations"]) == mine
        assert obligations["net_cash"] == [
            {k: c[k] for k in ("settlement_date", "currency", "amount")}
            for c in report["net_cash"] if c["participant_id"] == pid]
        fails = client.get(f"/participants/{pid}/fails", headers=auth("CCP")).json()["fails"]
        assert len(fails) == sum(1 for f in report["fails"] if f["participant_id"] == pid)
    instructions = client.get("/participants/M000/instructions", headers=auth("M000")).json()["instructions"]
    assert instructions and {i["status"] for i in instructions} <= {"settled", "failed"}


def test_the_day_and_the_daily_figures_add_up_to_the_report(
    client: TestClient, service: LedgerService, auth: Auth
) -> None:
    report = build_report(service.node, None)
    days = client.get("/stats/daily", headers=auth("M000")).json()["days"]
    assert sum(d["trades"]["submitted"] for d in days) == report["trades"]["submitted"]
    assert sum(d["netting"]["gross_obligations"] for d in days) == report["netting"]["gross_obligations"]
    assert sum(d["settlement"]["settled"] for d in days) == report["settlement"]["settled"]
    assert sum(d["settlement"]["failed"] for d in days) == report["settlement"]["failed"]
    settled = sum(Decimal(d["settlement"]["settled_value"]["value"]) for d in days)
    assert settled == Decimal(report["settlement"]["settled_value"])
    gross = Decimal(days[0]["netting"]["gross_value"]["value"])
    net = Decimal(days[0]["netting"]["net_value"]["value"])
    assert days[0]["netting"]["reduction_pct"] == round(100.0 * (1 - float(net / gross)), 2)
    day = client.get("/day", headers=auth("M000")).json()
    assert day["business_date"] == days[-1]["business_date"] == service.business_date.isoformat()
    assert day["height"] == service.node.height and day["state_root"] == report["ledger"]["state_root"]
    assert day["verification"] == {"status": "verified", "verified_height": service.node.height,
                                   "reason": None, "sealed_since": 0}


def test_blocks_are_listed_newest_first_and_read_one_by_one(
    client: TestClient, service: LedgerService, auth: Auth
) -> None:
    listed = client.get("/blocks", params={"limit": 3}, headers=auth("M000")).json()
    heights = [b["height"] for b in listed["blocks"]]
    assert heights == [service.node.height - i for i in range(3)]
    older = client.get("/blocks", params={"before": heights[-1], "limit": 200}, headers=auth("M000")).json()
    assert [b["height"] for b in older["blocks"]] == list(range(heights[-1] - 1, -1, -1))
    for b in listed["blocks"][:-1]:
        assert client.get(f"/blocks/{b['height']}", headers=auth("M000")).json()["prev_hash"] in {
            x["hash"] for x in listed["blocks"]}
    genesis = client.get("/blocks/0", headers=auth("M000")).json()
    assert genesis["items"][0]["kind"] == "genesis" and genesis["items"][0]["status"] == "accepted"
    assert client.get(f"/blocks/{service.node.height + 1}", headers=auth("M000")).status_code == 404


def test_the_dashboard_and_plotly_are_served_without_login(client: TestClient) -> None:
    assert client.get("/", follow_redirects=False).headers["location"] == "/web/"
    page = client.get("/web/")
    assert page.status_code == 200 and "/static/plotly.min.js" in page.text
    js = client.get("/static/plotly.min.js")
    assert js.status_code == 200 and len(js.content) > 1_000_000
    assert client.get("/openapi.json").json()["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
