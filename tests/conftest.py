"""Shared test helpers: scenarios written in a small text form, and the CLI run in-process."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from clearhouse.interfaces.cli import app


def write_scenario(directory: Path, **tables: str) -> Path:
    """Write CSV tables given as indented text blocks, e.g. trades='''trade_id,...'''."""
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in tables.items():
        (directory / f"{name}.csv").write_text(textwrap.dedent(text).strip() + "\n")
    return directory


def cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.stdout


def run_json(scenario: Path, data: Path, cycle: str = "T+2") -> dict[str, Any]:
    code, stdout = cli("run", str(scenario), "--data", str(data), "--cycle", cycle, "--json")
    assert code == 0, stdout
    return json.loads(stdout)


def nets_by_key(report: dict[str, Any]) -> dict[tuple[str, str], tuple[int, str]]:
    """net_positions as {(participant, security): (quantity, cash)} (single settlement date)."""
    return {(p["participant_id"], p["security_id"]): (p["quantity"], p["cash"]) for p in report["net_positions"]}


@pytest.fixture
def scenario_dir(tmp_path: Path) -> Path:
    return tmp_path / "scenario"
