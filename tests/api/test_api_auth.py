"""Login by Ed25519 challenge: tokens, refusals with clear bodies, expiry, and the loopback seed login."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from starlette.testclient import TestClient
from typer.testing import CliRunner

from clearhouse.interfaces.api.app import create_app
from clearhouse.interfaces.api.auth import NONCE_PREFIX, Authenticator
from clearhouse.interfaces.api.client import sign_nonce
from clearhouse.interfaces.api.service import LedgerService
from clearhouse.interfaces.cli import app as cli_app
from clearhouse.ledger.crypto import KeyPair


def _challenge(client: TestClient, pid: str) -> str:
    r = client.post("/auth/challenge", json={"participant_id": pid})
    assert r.status_code == 200, r.text
    nonce = r.json()["nonce"]
    assert nonce.startswith(NONCE_PREFIX)
    return nonce


def test_challenge_and_token_log_a_member_in(client: TestClient, key_of: Callable[[str], KeyPair]) -> None:
    nonce = _challenge(client, "M000")
    r = client.post("/auth/token", json={"participant_id": "M000", "nonce": nonce,
                                         "signature": sign_nonce(key_of("M000"), nonce)})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["token_type"] == "bearer" and body["role"] == "member" and 0 < body["expires_in"] <= 900
    me = client.get("/auth/me", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert me.json()["participant_id"] == "M000" and me.json()["role"] == "member"


def test_logout_revokes_the_token(client: TestClient, auth: Callable[[str], dict[str, str]]) -> None:
    headers = auth("M000")
    r = client.post("/auth/logout", headers=headers)
    assert r.json() == {"participant_id": "M000", "revoked": True}
    assert client.get("/day", headers=headers).status_code == 401


def test_unknown_participant_gets_401_with_a_clear_body(client: TestClient) -> None:
    r = client.post("/auth/challenge", json={"participant_id": "NOBODY"})
    assert r.status_code == 401
    assert r.json() == {"error": "not_authenticated", "detail": "no participant 'NOBODY' on the ledger"}


def test_a_signature_by_another_key_is_refused(client: TestClient, key_of: Callable[[str], KeyPair]) -> None:
    nonce = _challenge(client, "M000")
    r = client.post("/auth/token", json={"participant_id": "M000", "nonce": nonce,
                                         "signature": sign_nonce(key_of("M001"), nonce)})
    assert r.status_code == 401
    assert r.json()["error"] == "not_authenticated"
    assert "does not verify with M000's registered key" in r.json()["detail"]


def test_a_nonce_is_single_use_and_bound_to_its_participant(
    client: TestClient, key_of: Callable[[str], KeyPair]
) -> None:
    nonce = _challenge(client, "M000")
    body = {"participant_id": "M000", "nonce": nonce, "signature": sign_nonce(key_of("M000"), nonce)}
    assert client.post("/auth/token", json=body).status_code == 200
    again = client.post("/auth/token", json=body)
    assert again.status_code == 401 and "unknown or expired nonce" in again.json()["detail"]
    other = _challenge(client, "M001")
    r = client.post("/auth/token", json={"participant_id": "M000", "nonce": other,
                                         "signature": sign_nonce(key_of("M000"), other)})
    assert r.status_code == 401 and "another participant" in r.json()["detail"]


@pytest.mark.parametrize("header", [None, "Bearer", "Bearer not-a-token", "Basic dXNlcjpwYXNz", "token"])
def test_requests_without_a_valid_token_get_401(client: TestClient, header: str | None) -> None:
    r = client.get("/day", headers={"Authorization": header} if header else {})
    assert r.status_code == 401
    assert r.json()["error"] == "not_authenticated"
    assert r.headers["www-authenticate"] == "Bearer"


def test_nonces_and_tokens_expire(service: LedgerService, key_of: Callable[[str], KeyPair]) -> None:
    now = [1_000_000.0]
    auth = Authenticator(service.participant, clock=lambda: now[0])
    with TestClient(create_app(service, auth)) as client:
        nonce = _challenge(client, "M000")
        now[0] += auth.challenge_ttl_s + 1
        late = client.post("/auth/token", json={"participant_id": "M000", "nonce": nonce,
                                                "signature": sign_nonce(key_of("M000"), nonce)})
        assert late.status_code == 401
        nonce = _challenge(client, "M000")
        token = client.post("/auth/token", json={"participant_id": "M000", "nonce": nonce,
                                                 "signature": sign_nonce(key_of("M000"), nonce)})
        headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
        assert client.get("/day", headers=headers).status_code == 200
        now[0] += auth.token_ttl_s
        r = client.get("/day", headers=headers)
        assert r.status_code == 401 and "expired" in r.json()["detail"]


def test_the_client_signs_only_login_nonces(key_of: Callable[[str], KeyPair]) -> None:
    with pytest.raises(ValueError, match="not|refusing"):
        sign_nonce(key_of("M000"), "00" * 32)


def test_seed_login_is_absent_unless_enabled(client: TestClient, key_of: Callable[[str], KeyPair]) -> None:
    body = {"participant_id": "M000", "seed_hex": key_of("M000").seed.hex()}
    assert client.post("/auth/dashboard-login", json=body).status_code == 404
    assert client.get("/auth/methods").json() == {"challenge": True, "dashboard_login": False}


def test_seed_login_answers_loopback_clients_only(
    service: LedgerService, key_of: Callable[[str], KeyPair]
) -> None:
    app = create_app(service, dashboard_login=True)
    body = {"participant_id": "REGULATOR", "seed_hex": key_of("REGULATOR").seed.hex()}
    with TestClient(app, client=("127.0.0.1", 50000)) as local:
        r = local.post("/auth/dashboard-login", json=body)
        assert r.status_code == 200 and r.json()["role"] == "regulator"
        wrong = local.post("/auth/dashboard-login",
                           json={"participant_id": "REGULATOR", "seed_hex": key_of("M000").seed.hex()})
        assert wrong.status_code == 401 and wrong.json()["error"] == "not_authenticated"
    with TestClient(app, client=("192.0.2.10", 50000)) as remote:
        r = remote.post("/auth/dashboard-login", json=body)
        assert r.status_code == 403 and "loopback" in r.json()["detail"]


def test_serve_refuses_seed_login_off_loopback_and_a_missing_ledger(tmp_path: Path) -> None:
    runner = CliRunner()
    r = runner.invoke(cli_app, ["serve", "--data", str(tmp_path), "--host", "0.0.0.0", "--dashboard-login"])
    assert r.exit_code == 2
    r = runner.invoke(cli_app, ["serve", "--data", str(tmp_path / "none")])
    assert r.exit_code == 2
    assert not (tmp_path / "none").exists()
