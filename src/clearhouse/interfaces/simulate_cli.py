"""``clearhouse simulate``: the deterministic simulation over a range of seeds.

Each seed runs the whole system in one process with lost, duplicated and reordered messages,
crashes and torn writes, checked against the reference model (``clearhouse.sim``). Progress goes
to stderr; ``--json`` prints one object on stdout. Exit status 1 when any seed fails, and each
failure names the command that replays it.
Imports clearhouse.sim and clearhouse.interfaces.console only.
"""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any

import typer
from rich.table import Table

from clearhouse.interfaces.console import err, out, progress_bars
from clearhouse.sim import COUNTS, MUTANTS, SimResult, run_seeds, totals


def summary(results: list[SimResult], start: int, mutant: str | None) -> dict[str, Any]:
    """The JSON body: seeds run, how many passed, every failure, and the summed counts."""
    return {
        "seeds": len(results),
        "start": start,
        "mutant": mutant,
        "passed": sum(r.passed for r in results),
        "failures": [{"seed": r.seed, "failure": r.failure, "replay": r.replay} for r in results if not r.passed],
        "ticks": sum(r.ticks for r in results),
        "totals": totals(results),
    }


def simulate(
    seeds: Annotated[int, typer.Option(help="How many seeds to run.")] = 20,
    start: Annotated[int, typer.Option(help="First seed.")] = 0,
    mutant: Annotated[str | None, typer.Option(help=f"A deliberately broken variant: {', '.join(MUTANTS)}.")] = None,
    fail_fast: Annotated[bool, typer.Option("--fail-fast", help="Stop at the first failing seed.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout.")] = False,
) -> None:
    """Run the deterministic simulation (faults injected, every commit checked) over a range of seeds."""
    if seeds < 1 or start < 0:
        err.print("[bold red]error:[/] need --seeds >= 1 and --start >= 0")
        raise typer.Exit(2)
    if mutant is not None and mutant not in MUTANTS:
        err.print(f"[bold red]error:[/] unknown mutant {mutant!r}; known: {', '.join(MUTANTS)}")
        raise typer.Exit(2)
    with progress_bars(True) as bar:
        results = run_seeds(start, seeds, mutant=mutant, fail_fast=fail_fast,
                            progress=lambda done, total: bar("simulate", done, total))
    body = summary(results, start, mutant)
    if as_json:
        sys.stdout.write(json.dumps(body) + "\n")
    else:
        table = Table(title=f"Simulation: seeds {start} to {start + len(results) - 1}", show_header=False)
        table.add_column("figure")
        table.add_column("value", justify="right")
        table.add_row("seeds passed", f"{body['passed']} of {body['seeds']}")
        for name in COUNTS:
            table.add_row(name.replace("_", " "), f"{body['totals'][name]:,}")
        out.print(table)
        for f in body["failures"]:
            out.print(f"[bold red]FAILED[/] {f['failure']}")
    if body["failures"]:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command()(simulate)
