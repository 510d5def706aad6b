"""`clearhouse compare` on a scenario directory (with and without trade times) and a generated market."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import cli, write_scenario

from clearhouse.analysis.regimes import prepare_flow, read_timestamps
from clearhouse.cycle.scenario import load_scenario

PARTIES = """
    participant_id,name
    A,Broker A
    B,Broker B
    C,Broker C
"""
SECURITIES = """
    security_id,currency,lot_size
    X,AUD,1
    Y,AUD,1
"""
CASH = """
    participant_id,currency,amount
    A,AUD,100000
    B,AUD,100000
    C,AUD,100000
"""
HOLDINGS = """
    participant_id,security_id,quantity
    A,X,10
    B,X,40
    C,Y,20
"""
# The worked Thursday of test_compare_worked, with its times, plus a row the ledger rejects.
TRADES = """
    trade_id,trade_date,buyer,seller,security_id,quantity,price,timestamp
    t1,2026-01-08,A,B,X,100,10.00,10:10
    t2,2026-01-08,B,A,X,60,10.00,2026-01-08T10:40:00
    t3,2026-01-08,C,A,X,50,11.00,11:20:00
    t4,2026-01-08,A,C,Y,20,5.00,11:30
    t5,2026-01-08,A,A,Y,20,5.00,11:45
"""


def scenario(tmp_path: Path, trades: str = TRADES) -> Path:
    return write_scenario(tmp_path / "s", participants=PARTIES, securities=SECURITIES, cash=CASH,
                          holdings=HOLDINGS, trades=trades)


def test_compare_json_on_a_scenario_with_trade_times(tmp_path: Path) -> None:
    code, stdout = cli("compare", str(scenario(tmp_path)), "--json")
    assert code == 0, stdout
    body = json.loads(stdout)
    assert (body["trades"], body["rejected"], body["timestamps_generated"]) == (4, 1, 0)
    regimes = {r["regime"]: r for r in body["regimes"]}
    assert list(regimes) == ["T+2", "T+1", "T+0", "Intraday 60 min", "Atomic"]
    # the hand-worked figures of the same trades (test_compare_worked)
    assert regimes["T+2"]["netting"]["net_value"] == "1300.00"
    assert regimes["Intraday 60 min"]["netting"]["net_value"] == "2100.00"
    assert regimes["Atomic"]["netting"]["reduction_pct"] == 0.0
    assert regimes["Atomic"]["prefunding"]["cash"] == "1550.00"
    assert regimes["T+2"]["settlement"]["fails"] == 0
    assert regimes["T+2"]["change_vs_first"]["baseline"] == "T+2"


def test_compare_generates_missing_times_and_rejects_late_ones(tmp_path: Path) -> None:
    plain = "\n".join(line.rsplit(",", 1)[0] for line in TRADES.strip().splitlines())
    directory = scenario(tmp_path, plain)
    assert read_timestamps(directory) is None
    flow = prepare_flow(load_scenario(directory), seed=5)
    assert flow.generated_times == 4
    assert ((flow.time % 86_400 >= 10 * 3600) & (flow.time % 86_400 < 16 * 3600)).all()
    late = TRADES.replace("11:30", "17:30")
    code, _ = cli("compare", str(scenario(tmp_path / "late", late)), "--json")
    assert code == 2


def test_compare_on_a_generated_market_prints_a_table(tmp_path: Path) -> None:
    code, stdout = cli("compare", "--members", "6", "--securities", "8", "--trades", "3000",
                       "--days", "3", "--batch-minutes", "30")
    assert code == 0, stdout
    for label in ("netting reduction", "cash pre-funding", "replacement cost", "trades not executed",
                  "Intraday 30 min", "Atomic"):
        assert label in stdout
    code, stdout = cli("compare", "--members", "6", "--securities", "8", "--trades", "3000",
                       "--days", "3", "--json", "--html", str(tmp_path / "r.html"))
    assert code == 0
    assert json.loads(stdout)["trades"] == 3000
    assert (tmp_path / "r.html").stat().st_size > 1_000_000  # plotly.js is inline


def test_compare_one_currency_at_a_time(tmp_path: Path) -> None:
    securities = SECURITIES + "    Z,USD,1\n"
    trades = TRADES + "    t6,2026-01-08,B,C,Z,5,20.00,12:00\n"
    directory = write_scenario(tmp_path / "s", participants=PARTIES, securities=securities, cash=CASH,
                               holdings=HOLDINGS, trades=trades)
    code, _ = cli("compare", str(directory), "--json")
    assert code == 2  # AUD and USD trades: the currency must be chosen
    code, stdout = cli("compare", str(directory), "--json", "--currency", "AUD")
    assert code == 0
    body = json.loads(stdout)
    assert (body["currency"], body["trades"], body["other_currency"]) == ("AUD", 4, 1)
    code, stdout = cli("compare", str(directory), "--json", "--currency", "USD")
    body = json.loads(stdout)
    assert (body["currency"], body["trades"], body["securities"]) == ("USD", 1, 1)
    assert body["regimes"][0]["netting"]["gross_value"] == "200.00"
