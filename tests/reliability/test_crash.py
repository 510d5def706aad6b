"""Crash consistency with real processes: ``clearhouse run`` killed with SIGKILL and restarted.

A scenario of many small blocks runs in a child process that is killed at seeded random moments,
again and again, each time restarted on the same data directory. After every kill: every block
seen stored before the kill is still there, unchanged; ``clearhouse verify`` passes (hash chain,
signatures, and a replay from genesis that checks every invariant, so no DvP is half done). At
the end the resumed run's report equals, to the byte, that of an uninterrupted run on a copy of
the same keys. ``CLEARHOUSE_CRASH_KILLS`` sets the number of kills.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import polars as pl
from typer.testing import CliRunner

from clearhouse.cycle.run import LEDGER_FILE, SEQUENCER, SYSTEM_ROLES, Keys
from clearhouse.cycle.scenario import write_scenario
from clearhouse.interfaces.cli import app
from clearhouse.ledger.records import header_from_bytes
from clearhouse.market.synthetic import MarketSpec, generate_market

KILLS = int(os.environ.get("CLEARHOUSE_CRASH_KILLS", "10"))
POLL_S = 0.01
JITTER_S = 0.03
SPEC = MarketSpec(members=6, securities=8, trades=2_400, days=8, cycle_days=1, fail_rate=0.3, seed=5)


@dataclass(frozen=True, slots=True)
class Campaign:
    """What a crash campaign did.

    Attributes:
        kills: processes killed; blocks_at_kill: blocks stored when each kill landed.
        verified_after_each: every kill was followed by a passing ``clearhouse verify``.
        reference, resumed: the ``run --json`` reports of the uninterrupted and the killed run.
    """

    kills: int
    blocks_at_kill: tuple[int, ...]
    verified_after_each: bool
    reference: dict[str, Any]
    resumed: dict[str, Any]


def make_scenario(directory: Path) -> Path:
    """A market whose members report some of their own trades: many small blocks per day."""
    scenario = generate_market(SPEC)
    rng = random.Random(SPEC.seed)
    trades = scenario.trades
    submitter = [rng.choice((b, s, "", "")) for b, s in zip(trades["buyer"], trades["seller"], strict=True)]
    write_scenario(replace(scenario, trades=trades.with_columns(submitter=pl.Series(submitter))), directory)
    return directory


def make_keys(data: Path, scenario: Path) -> None:
    keys = Keys(data)
    members = pl.read_csv(scenario / "participants.csv", infer_schema=False)["participant_id"].to_list()
    for owner in (SEQUENCER, *SYSTEM_ROLES, *members):
        keys[owner]


def start_run(scenario: Path, data: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "clearhouse.interfaces.cli", "run", str(scenario), "--data", str(data),
         "--cycle", "T+1", "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
    )


def finish(proc: subprocess.Popen[bytes]) -> dict[str, Any]:
    stdout, _ = proc.communicate()
    assert proc.returncode == 0, stdout[-2000:]
    return json.loads(stdout)


def stored_hashes(data: Path) -> list[bytes]:
    """Hashes of every block committed so far, read beside a running writer (WAL readers never block)."""
    path = data / LEDGER_FILE
    if not path.exists():
        return []
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        rows = db.execute("SELECT height, header FROM blocks ORDER BY height").fetchall()
    except sqlite3.OperationalError:  # the schema is not written yet
        rows = []
    finally:
        db.close()
    assert [h for h, _ in rows] == list(range(len(rows))), "stored heights have a gap"
    return [header_from_bytes(bytes(raw)).hash() for _, raw in rows]


def verify(data: Path) -> None:
    result = CliRunner().invoke(app, ["verify", "--data", str(data), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["verified"]


def crash_campaign(work: Path, kills: int, seed: int) -> Campaign:
    """Kill and restart a run ``kills`` times at seeded moments, checking after each; then finish it."""
    rng = random.Random(seed)
    scenario = make_scenario(work / "scenario")
    killed, uninterrupted = work / "killed", work / "uninterrupted"
    make_keys(killed, scenario)
    shutil.copytree(killed / "keys", uninterrupted / "keys")
    reference = finish(start_run(scenario, uninterrupted))
    # kill points spread over the whole run: start-up and replay, every stretch of blocks, the end
    targets = sorted(rng.randint(0, reference["ledger"]["height"] + 2) for _ in range(kills))
    seen: list[bytes] = []
    blocks_at_kill = []
    for target in targets:
        proc = start_run(scenario, killed)
        while proc.poll() is None and len(stored_hashes(killed)) < target:
            time.sleep(POLL_S)
        time.sleep(rng.uniform(0, JITTER_S))
        before_kill = stored_hashes(killed)
        proc.kill()
        proc.wait()
        after = stored_hashes(killed)
        # nothing committed before the kill is lost or changed, across every earlier kill too
        assert after[: len(before_kill)] == before_kill
        assert after[: len(seen)] == seen
        seen = after
        blocks_at_kill.append(len(after))
        if (killed / LEDGER_FILE).exists():
            verify(killed)
    resumed = finish(start_run(scenario, killed))
    return Campaign(kills, tuple(blocks_at_kill), True, reference, resumed)


def test_killed_runs_resume_to_the_uninterrupted_state(tmp_path: Path) -> None:
    campaign = crash_campaign(tmp_path, KILLS, seed=20260302)
    reference, resumed = campaign.reference, campaign.resumed
    assert resumed["ledger"]["verified"]
    assert resumed["ledger"]["head_hash"] == reference["ledger"]["head_hash"]
    assert resumed["ledger"]["state_root"] == reference["ledger"]["state_root"]
    assert resumed == reference
    # the kills landed at different points of the run, not all before or after it
    assert len(set(campaign.blocks_at_kill)) > 1, campaign.blocks_at_kill
