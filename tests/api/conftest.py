"""Fixtures of the API tests: a small demo ledger (with an oracle admitted), a service and an app
over a fresh copy of it, and logins for every role."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from apitest_support import make_ledger
from fastapi import FastAPI
from starlette.testclient import TestClient

from clearhouse.interfaces.api.app import create_app
from clearhouse.interfaces.api.client import login
from clearhouse.interfaces.api.service import LedgerService
from clearhouse.ledger.crypto import KeyPair, KeyStore


@pytest.fixture(scope="session")
def base_ledger(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_ledger(tmp_path_factory.mktemp("ledger") / "data")


@pytest.fixture
def data_dir(base_ledger: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(base_ledger, tmp_path / "data"))


@pytest.fixture
def service(data_dir: Path) -> Iterator[LedgerService]:
    svc = LedgerService(data_dir)
    yield svc
    svc.close()


@pytest.fixture
def app(service: LedgerService) -> FastAPI:
    return create_app(service)


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app) as c:
        yield c


@pytest.fixture
def key_of(data_dir: Path) -> Callable[[str], KeyPair]:
    store = KeyStore(data_dir / "keys")
    return store.load


@pytest.fixture
def auth(client: TestClient, key_of: Callable[[str], KeyPair]) -> Callable[[str], dict[str, str]]:
    """Authorization headers of a participant, logged in by challenge and signature (cached)."""
    cache: dict[str, dict[str, str]] = {}

    def headers(participant_id: str) -> dict[str, str]:
        if participant_id not in cache:
            cache[participant_id] = login(client, participant_id, key_of(participant_id))
        return cache[participant_id]

    return headers
