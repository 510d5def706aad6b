"""Every role against every endpoint: allowed, refused (403) or not authenticated (401).

One service serves the whole matrix; an allowed write may answer 409 (e.g. a second cut-off of
the same day), which still means the role was let through.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from apitest_support import ACTORS, fix_report, sese023
from starlette.testclient import TestClient

from clearhouse.interfaces.api.app import create_app
from clearhouse.interfaces.api.client import login, sign_fix, sign_observations, sign_sese023, sign_trades
from clearhouse.interfaces.api.service import LedgerService
from clearhouse.ledger.crypto import KeyStore

Body = Callable[[str], dict[str, Any] | None]
ALL = frozenset(ACTORS)
SELF_OR_OVERSIGHT = frozenset({"member", "ccp", "regulator"})  # reading M000's data


class World:
    """The module's service, client, keys and one login per actor."""

    def __init__(self, data: Path) -> None:
        self.service = LedgerService(data)
        self.client = TestClient(create_app(self.service))
        self.keys = KeyStore(data / "keys")
        self.headers = {name: login(self.client, pid, self.keys.load(pid)) for name, pid in ACTORS.items()}
        self.security = self.service.machine.securities[0].id
        self.date = self.service.business_date
        self.day = self.date.isoformat()


@pytest.fixture(scope="module")
def world(base_ledger: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    data = Path(shutil.copytree(base_ledger, tmp_path_factory.mktemp("matrix") / "data"))
    w = World(data)
    yield w
    w.client.close()
    w.service.close()


def _trades(w: World, pid: str) -> dict[str, Any]:
    row = {"trade_id": f"matrix-{pid}", "trade_date": w.day, "buyer": "M000", "seller": "M001",
           "security_id": w.security, "quantity": "1", "price": "1.00", "settlement_date": w.day}
    return sign_trades(w.keys.load(pid), pid, f"matrix-{pid}", [row])


def _fix(w: World, pid: str) -> dict[str, Any]:
    message = fix_report(f"fix-{pid}", "M000", "M001", w.security, 100, "1.00", w.date, w.date, sender=pid)
    return sign_fix(w.keys.load(pid), pid, f"fix-{pid}", message)


def _sese023(w: World, pid: str) -> dict[str, Any]:
    xml = sese023(f"iso-{pid}", "DELI", "M001", "M000", w.security, "100", "1.00", w.date, w.date)
    return sign_sese023(w.keys.load(pid), pid, f"iso-{pid}", xml.encode())


def _observations(w: World, pid: str) -> dict[str, Any]:
    item = {"id": f"obs-{pid}", "index": w.security, "fixing_date": w.day, "rate": "10.5"}
    return sign_observations(w.keys.load(pid), pid, f"obs-{pid}", [item])


#: (method, path, body builder or None, roles allowed)
ENDPOINTS: list[tuple[str, str, Callable[[World, str], dict[str, Any]] | None, frozenset[str]]] = [
    ("GET", "/auth/me", None, ALL),
    ("GET", "/participants", None, ALL),
    ("GET", "/day", None, ALL),
    ("GET", "/stats/daily", None, ALL),
    ("GET", "/blocks", None, ALL),
    ("GET", "/blocks/0", None, ALL),
    ("GET", "/oracle/observations", None, ALL),
    ("GET", "/messages", None, ALL),
    ("GET", "/participants/M000/positions", None, SELF_OR_OVERSIGHT),
    ("GET", "/participants/M000/obligations", None, SELF_OR_OVERSIGHT),
    ("GET", "/participants/M000/instructions", None, SELF_OR_OVERSIGHT),
    ("GET", "/participants/M000/fails", None, SELF_OR_OVERSIGHT),
    ("GET", "/participants/M000/proof/{security}", None, SELF_OR_OVERSIGHT),
    ("GET", "/participants/M000/proof/AUD?table=cash", None, SELF_OR_OVERSIGHT),
    ("GET", "/participants/M000/semt002", None, SELF_OR_OVERSIGHT),
    ("GET", "/participants/M000/sese025", None, SELF_OR_OVERSIGHT),
    ("POST", "/trades", _trades, frozenset({"member", "other_member", "venue"})),
    ("POST", "/fix/trade-capture", _fix, frozenset({"member", "other_member", "venue"})),
    ("POST", "/iso20022/sese023", _sese023, frozenset({"member", "other_member", "venue"})),
    ("POST", "/operator/cutoff", None, frozenset({"ccp"})),
    ("POST", "/operator/settle", None, frozenset({"ccp"})),
    ("POST", "/operator/next-day", None, frozenset({"ccp"})),
    ("POST", "/oracle/observations", _observations, frozenset({"oracle"})),
]

CASES = [
    pytest.param(method, path, body, actor, actor in allowed, id=f"{actor}-{method}-{path}")
    for method, path, body, allowed in ENDPOINTS
    for actor in [*ACTORS, "anonymous"]
]


@pytest.mark.parametrize(("method", "path", "body", "actor", "allowed"), CASES)
def test_role_matrix(
    world: World, method: str, path: str, body: Callable[[World, str], dict[str, Any]] | None,
    actor: str, allowed: bool,
) -> None:
    url = path.format(security=world.security)
    headers = world.headers.get(actor, {})
    payload = body(world, ACTORS.get(actor, "M000")) if body else None
    r = world.client.request(method, url, headers=headers, json=payload)
    if actor == "anonymous":
        assert r.status_code == 401, r.text
        assert r.json()["error"] == "not_authenticated"
    elif allowed:
        assert r.status_code in (200, 409), r.text
    else:
        assert r.status_code == 403, r.text
        assert r.json()["error"] == "forbidden"
        assert "may not" in r.json()["detail"] or "may read only its own data" in r.json()["detail"]


def test_a_member_cannot_read_another_members_data(world: World) -> None:
    for what in ("positions", "obligations", "instructions", "fails", f"proof/{world.security}", "semt002",
                 "sese025"):
        r = world.client.get(f"/participants/M001/{what}", headers=world.headers["member"])
        assert r.status_code == 403
        assert r.json() == {"error": "forbidden", "detail": "M000 may read only its own data, not M001's"}
        assert world.client.get(f"/participants/M001/{what}", headers=world.headers["other_member"]).status_code in (
            200, 404)


def test_the_regulator_reads_everything_and_writes_nothing(world: World) -> None:
    reg = world.headers["regulator"]
    for pid in ("M000", "M001", "M002", "M003"):
        assert world.client.get(f"/participants/{pid}/positions", headers=reg).status_code == 200
    height = world.service.node.height
    for path, body in (("/trades", _trades(world, "REGULATOR")), ("/fix/trade-capture", _fix(world, "REGULATOR")),
                       ("/iso20022/sese023", _sese023(world, "REGULATOR")), ("/operator/cutoff", None),
                       ("/operator/settle", None), ("/operator/next-day", None),
                       ("/oracle/observations", _observations(world, "REGULATOR"))):
        r = world.client.post(path, headers=reg, json=body)
        assert r.status_code == 403, path
        assert r.json()["error"] == "forbidden" and "a regulator may not" in r.json()["detail"]
    assert world.service.node.height == height
