"""The ``clearhouse compare`` command: one trade flow under several settlement regimes.

Runs a scenario directory (or a generated market) under T+2, T+1, T+0, intraday netting every K
minutes and atomic settlement, and prints a table, one JSON object (``--json``), a
self-contained HTML report (``--html FILE``) and PNG charts (``--png DIR``). Progress goes to
stderr; with ``--json`` stdout holds exactly the JSON object. Exit status 0 on success, 2 on bad
input, 3 when an invariant broke.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Annotated

import typer
from rich import box
from rich.table import Table

from clearhouse.analysis.regimes import (
    BATCH_MINUTES,
    LENDABLE_SHARE,
    compare,
    comparison_json,
    prepare_flow,
    read_timestamps,
    standard_regimes,
    summary_table,
)
from clearhouse.core.errors import ClearhouseError, InvariantViolation
from clearhouse.cycle.scenario import load_scenario
from clearhouse.interfaces.console import err, out, progress_bars
from clearhouse.market.synthetic import MarketSpec, generate_market


def _fail(message: str, code: int = 2) -> None:
    err.print(f"[bold red]error:[/] {message}")
    raise typer.Exit(code)


def compare_command(
    scenario_dir: Annotated[Path | None, typer.Argument(
        help="Scenario directory; without it a synthetic market is generated.")] = None,
    members: Annotated[int, typer.Option(help="Generated market: clearing members.")] = 40,
    securities: Annotated[int, typer.Option(help="Generated market: securities.")] = 250,
    trades: Annotated[int, typer.Option(help="Generated market: trades in all.")] = 400_000,
    days: Annotated[int, typer.Option(help="Generated market: trading days.")] = 5,
    seed: Annotated[int, typer.Option(help="Seed of the market, trade times and price path.")] = 7,
    batch_minutes: Annotated[int, typer.Option(
        "--batch-minutes", help="Minutes between intraday netting batches.")] = BATCH_MINUTES,
    lendable: Annotated[float, typer.Option(
        help="Share of each security's opening holdings that can be borrowed (0-1).")] = LENDABLE_SHARE,
    currency: Annotated[str | None, typer.Option(
        help="Currency to compare when the trades are in several.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout.")] = False,
    html_file: Annotated[Path | None, typer.Option("--html", help="Write an HTML report here.")] = None,
    png_dir: Annotated[Path | None, typer.Option("--png", help="Write the charts as PNG files here.")] = None,
) -> None:
    """Settle the same trades under T+2, T+1, T+0, intraday netting and atomic settlement; compare."""
    started = time.perf_counter()
    try:
        regimes = standard_regimes(batch_minutes)
        if scenario_dir is None:
            if members < 2 or securities < 1 or trades < 1 or days < 1:
                _fail("need at least 2 members, 1 security, 1 trade and 1 day")
            if not as_json:
                err.print(f"Generating a market: {members} members, {securities} securities, "
                          f"{trades:,} trades over {days} days (seed {seed})")
            scenario = generate_market(MarketSpec(members=members, securities=securities,
                                                  trades=trades, days=days, seed=seed))
            stamps = None
        else:
            scenario = load_scenario(scenario_dir)
            stamps = read_timestamps(scenario_dir)
        flow = prepare_flow(scenario, timestamps=stamps, currency=currency, seed=seed)
        with progress_bars(not as_json) as bar:
            result = compare(flow, regimes, seed=seed, lendable_share=lendable, progress=bar)
    except InvariantViolation as exc:
        _fail(f"invariant broken: {exc}", 3)
        raise
    except ClearhouseError as exc:
        _fail(str(exc))
        raise
    if as_json:
        sys.stdout.write(json.dumps(comparison_json(result)) + "\n")
    else:
        names, rows = summary_table(result, compact=True)
        table = Table(title=f"The same {len(flow.time):,} trades under each regime ({flow.currency})",
                      box=box.SIMPLE_HEAD)
        table.add_column("figure")
        for i, name in enumerate(names):
            table.add_column(name, justify="right", min_width=max(len(cells[i]) for _, cells in rows))
        for label, cells in rows:
            table.add_row(label, *cells)
        out.print(table)
    if html_file is not None or png_dir is not None:
        from clearhouse.analysis.charts import build_figures, write_html, write_pngs

        figures = build_figures(result)
        if html_file is not None:
            write_html(result, html_file, figures)
            err.print(f"HTML report: {html_file}")
        if png_dir is not None:
            try:
                paths = write_pngs(figures, png_dir)
            except Exception as exc:  # kaleido raises several types when no browser can start
                _fail(f"PNG export needs Chrome or Chromium for kaleido (e.g. apt-get install "
                      f"chromium): {exc}")
                raise
            err.print(f"PNG charts: {', '.join(str(p) for p in paths)}")
    if not as_json:
        err.print(f"Done in {time.perf_counter() - started:.1f} s.")


def register(app: typer.Typer) -> None:
    """Add ``compare`` to the ``clearhouse`` command line."""
    app.command("compare")(compare_command)
