"""Schemathesis over the OpenAPI document: generated requests to every path and method, valid and
invalid, sent anonymously and as a member, the CCP and the regulator, never get a server error;
valid ones are also answered as the document says (status codes, content types, bodies). A
schema-valid body may still be refused (a signature that does not verify, a payload that is not
a batch): that is the API's job, so schemathesis' positive-data-acceptance check is left out."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from apitest_support import ACTORS
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from starlette.testclient import TestClient

from clearhouse.interfaces.api.app import create_app
from clearhouse.interfaces.api.client import login
from clearhouse.interfaces.api.service import LedgerService
from clearhouse.ledger.crypto import KeyStore

schemathesis = pytest.importorskip("schemathesis")
from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.generation import GenerationMode  # noqa: E402
from schemathesis.specs.openapi.checks import positive_data_acceptance  # noqa: E402

EXAMPLES = {GenerationMode.POSITIVE: 20, GenerationMode.NEGATIVE: 10}


@pytest.mark.parametrize("mode", list(EXAMPLES), ids=lambda m: m.value)
def test_generated_requests_never_get_a_server_error(
    base_ledger: Path, tmp_path: Path, mode: GenerationMode
) -> None:
    data = Path(shutil.copytree(base_ledger, tmp_path / "data"))
    service = LedgerService(data)
    app = create_app(service)
    keys = KeyStore(data / "keys")
    with TestClient(app) as client:
        logins = [{}] + [login(client, ACTORS[a], keys.load(ACTORS[a])) for a in ("member", "ccp", "regulator")]
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    # logging out would revoke the tokens the other requests use; test_api_auth covers it
    operations = [op for op in (r.ok() for r in schema.get_all_operations()) if op.path != "/auth/logout"]
    assert len(operations) >= 20

    for operation in operations:

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(max_examples=EXAMPLES[mode], deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))
        def run(case: Any) -> None:
            for headers in logins:
                if mode == GenerationMode.POSITIVE:
                    case.call_and_validate(headers=headers, excluded_checks=[positive_data_acceptance])
                else:
                    case.call_and_validate(headers=headers, checks=[not_a_server_error])

        try:
            run()
        except Unsatisfiable:
            assert mode == GenerationMode.NEGATIVE, operation.label  # nothing to make invalid
    assert service.halted is None
    service.close()
