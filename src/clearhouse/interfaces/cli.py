"""The ``clearhouse`` command line (Typer + Rich). Parses options, calls the core, prints results.

``--json`` prints exactly one JSON object on stdout; progress goes to stderr. Exit status is 0 on
success, 1 when verification fails, 2 on bad input. Nothing in the core imports from here.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from clearhouse.core.errors import ClearhouseError, InputError, InvariantViolation
from clearhouse.cycle.report import build_report
from clearhouse.cycle.run import LEDGER_FILE, parse_cycle, run_scenario
from clearhouse.cycle.scenario import load_scenario, write_scenario
from clearhouse.interfaces.console import err, out, print_report, progress_bars
from clearhouse.ledger.sqlite_store import SqliteStore
from clearhouse.ledger.verify import VerifyReport, verify_store
from clearhouse.market.synthetic import MarketSpec, generate_market
from clearhouse.node.rows import holdings_view

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="clearhouse: post-trade clearing and settlement on a verifiable shared ledger.",
)

DataOpt = Annotated[Path, typer.Option("--data", help="Data directory (ledger, keys).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout.")]
CycleOpt = Annotated[str, typer.Option("--cycle", help="Settlement cycle: T+0, T+1 or T+2.")]
DEFAULT_DATA = Path("clearhouse-data")
DEMO_MARKER = ".clearhouse-demo"


def _emit_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, indent=None) + "\n")


def _fail(message: str, code: int = 2) -> None:
    err.print(f"[bold red]error:[/] {message}")
    raise typer.Exit(code)


def _verify(data: Path, show: bool) -> VerifyReport:
    store = SqliteStore(data / LEDGER_FILE)
    try:
        with progress_bars(show) as bar:
            return verify_store(store, progress=lambda h, n: bar("verify", h + 1, n + 1))
    finally:
        store.close()


def _run_and_report(scenario_loader: Any, data: Path, cycle: str, as_json: bool,
                    settlement: dict[str, Any] | None = None) -> dict[str, Any]:
    try:
        days = parse_cycle(cycle)
        scenario = scenario_loader()
        with progress_bars(not as_json) as bar:
            node = run_scenario(scenario, data, days, progress=bar, settlement=settlement)
        node.store.close()
        verified = _verify(data, not as_json)
        node_store = SqliteStore(data / LEDGER_FILE)
        node.store = node_store
        report = build_report(node, verified)
        node_store.close()
    except InvariantViolation as exc:
        _fail(f"invariant broken, node halted: {exc}", 3)
        raise
    except ClearhouseError as exc:
        _fail(str(exc))
        raise
    return report


@app.command()
def run(
    scenario_dir: Annotated[Path, typer.Argument(help="Scenario directory of CSV files.")],
    data: DataOpt = DEFAULT_DATA,
    cycle: CycleOpt = "T+2",
    dvp_model: Annotated[int, typer.Option(
        "--dvp-model", min=1, max=3,
        help="1: gross, trade by trade in real time; 2: gross securities, net cash per run; 3: net batch.")] = 3,
    optimise: Annotated[bool, typer.Option(
        "--optimise", help="Settle the most value when resources are short (integer program, LP bound).")] = False,
    partial: Annotated[bool, typer.Option(
        "--partial", help="Partial settlement, in whole lots, for instructions that allow it.")] = False,
    min_partial_value: Annotated[int, typer.Option(
        "--min-partial-value", min=0, help="Smallest value of a partial settlement, in minor units.")] = 0,
    cancel_after: Annotated[int, typer.Option(
        "--cancel-after", min=0, help="Cancel gross instructions failing N business days (0: never).")] = 0,
    buy_in_after: Annotated[int, typer.Option(
        "--buy-in-after", min=0, help="Flag deliveries failing N business days for buy-in (0: never).")] = 0,
    lending: Annotated[bool, typer.Option(
        "--lending", help="Borrow from lenders.csv offers to cover delivery shortfalls.")] = False,
    auto_collateral: Annotated[bool, typer.Option(
        "--auto-collateral", help="Central-bank intraday credit against collateral.csv securities.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Run a scenario through every business day of clearing and settlement (resumes if interrupted)."""
    chosen = {"dvp_model": dvp_model, "optimise": optimise, "partial": partial,
              "min_partial_value": min_partial_value, "cancel_after_days": cancel_after,
              "buy_in_after_days": buy_in_after, "lending": lending, "auto_collateral": auto_collateral}
    defaults = {"dvp_model": 3, "min_partial_value": 0, "cancel_after_days": 0, "buy_in_after_days": 0}
    rules = {k: v for k, v in chosen.items() if v != defaults.get(k, False)}
    settlement = {"dvp_model": dvp_model, **rules} if rules else None
    report = _run_and_report(lambda: load_scenario(scenario_dir), data, cycle, as_json, settlement)
    if as_json:
        _emit_json(report)
    else:
        print_report(report)
    if not report["ledger"]["verified"]:
        raise typer.Exit(1)


@app.command()
def demo(
    members: Annotated[int, typer.Option(help="Clearing members.")] = 40,
    securities: Annotated[int, typer.Option(help="Securities.")] = 250,
    trades: Annotated[int, typer.Option(help="Trades in all.")] = 400_000,
    days: Annotated[int, typer.Option(help="Trading days.")] = 5,
    cycle: CycleOpt = "T+2",
    seed: Annotated[int, typer.Option(help="Seed of the synthetic market.")] = 7,
    fail_rate: Annotated[float, typer.Option(help="Target share of failing instructions.")] = 0.02,
    start: Annotated[str, typer.Option(help="First trade date (YYYY-MM-DD).")] = "2026-01-05",
    currency: Annotated[str, typer.Option(help="The market's currency.")] = "AUD",
    data: DataOpt = Path("clearhouse-demo"),
    as_json: JsonOpt = False,
) -> None:
    """Generate a synthetic market and run it through several days of clearing and settlement."""
    if members < 2 or securities < 1 or trades < 1 or days < 1:
        _fail("need at least 2 members, 1 security, 1 trade and 1 day")
    if data.exists() and any(data.iterdir()):
        if not (data / DEMO_MARKER).exists():
            _fail(f"{data} exists and was not made by the demo; choose another --data")
        shutil.rmtree(data)
    data.mkdir(parents=True, exist_ok=True)
    (data / DEMO_MARKER).write_text("made by `clearhouse demo`; removed by the next demo run\n")
    try:
        n_cycle = parse_cycle(cycle)
    except InputError as exc:
        _fail(str(exc))
        raise
    try:
        first_day = dt.date.fromisoformat(start)
    except ValueError:
        _fail(f"--start must be a date YYYY-MM-DD, not {start!r}")
        raise
    spec = MarketSpec(members=members, securities=securities, trades=trades, days=days,
                      cycle_days=n_cycle, fail_rate=fail_rate, seed=seed, start=first_day,
                      currency=currency.upper())
    started = time.perf_counter()
    if not as_json:
        err.print(f"Generating a market: {members} members, {securities} securities, "
                  f"{trades:,} trades over {days} days (seed {seed})")
    scenario = generate_market(spec)
    write_scenario(scenario, data / "scenario")
    report = _run_and_report(lambda: scenario, data, cycle, as_json)
    elapsed = time.perf_counter() - started
    if as_json:
        _emit_json(report)
    else:
        print_report(report)
        out.print(f"Done in {elapsed:.1f} s. The scenario is in {data / 'scenario'}; "
                  f"try `clearhouse positions M000 --data {data}` or `clearhouse verify --data {data}`.")
    if not report["ledger"]["verified"]:
        raise typer.Exit(1)


@app.command()
def verify(data: DataOpt = DEFAULT_DATA, as_json: JsonOpt = False) -> None:
    """Re-check the hash chain, Merkle roots and signatures, replay from genesis, compare state roots."""
    if not (data / LEDGER_FILE).exists():
        _fail(f"no ledger at {data / LEDGER_FILE}")
    report = _verify(data, not as_json)
    body = {
        "verified": report.verified,
        "height": report.height,
        "first_bad_height": report.first_bad_height,
        "reason": report.reason or None,
        "head_hash": report.head_hash,
        "state_root": report.state_root,
    }
    if as_json:
        _emit_json(body)
    elif report.verified:
        out.print(f"[green]verified[/]: {report.height + 1} blocks, head {report.head_hash[:16]}…, "
                  f"state root {report.state_root[:16]}…")
    else:
        out.print(f"[bold red]NOT verified[/]: first bad block {report.first_bad_height}: {report.reason}")
    if not report.verified:
        raise typer.Exit(1)


@app.command()
def positions(
    participant: Annotated[str, typer.Argument(help="Participant id.")],
    data: DataOpt = DEFAULT_DATA,
    as_json: JsonOpt = False,
) -> None:
    """A participant's securities, cash and open (unsettled or failed) net positions at the head."""
    if not (data / LEDGER_FILE).exists():
        _fail(f"no ledger at {data / LEDGER_FILE}")
    store = SqliteStore(data / LEDGER_FILE)
    height, rows = store.state_rows(participant)
    head = store.head_height()
    store_date = store.block(head).header.business_date if head >= 0 else ""
    store.close()
    today = store_date
    body: dict[str, Any] = {"participant_id": participant, "height": head, "as_of_height": height,
                            **holdings_view(rows)}
    for p in body["open_positions"]:
        # failing: it has failed before (rolled from an earlier date) or its date has passed
        p["failing"] = p["first_due"] < p["settlement_date"] or p["settlement_date"] < today
    if as_json:
        _emit_json(body)
        return
    if not rows:
        out.print(f"{participant} holds nothing at height {head} (or is not a participant).")
        return
    from rich.table import Table

    for title, key, cols in (
        ("Securities", "securities", ("security_id", "quantity")),
        ("Cash", "cash", ("currency", "amount")),
        ("Open net positions", "open_positions",
         ("security_id", "settlement_date", "quantity", "cash", "currency", "first_due", "failing")),
    ):
        if body[key]:
            table = Table(title=f"{participant}: {title} (height {head})")
            for c in cols:
                table.add_column(c)
            for item in body[key]:
                table.add_row(*(str(item[c]) for c in cols))
            out.print(table)


def _register_extensions() -> None:
    """Commands of the other doors live in their own modules, each with ``register(app)``."""
    import importlib

    for name in EXTENSIONS:
        try:
            module = importlib.import_module(f"clearhouse.interfaces.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"clearhouse.interfaces.{name}":
                raise
            continue
        module.register(app)


EXTENSIONS = ("payments_cli", "compare_cli", "swaps_cli", "network_cli", "serve_cli", "simulate_cli")
_register_extensions()


if __name__ == "__main__":  # pragma: no cover
    app()
