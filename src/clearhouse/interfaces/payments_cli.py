"""``clearhouse payments``: cash payments settled gross in real time with liquidity saving.

Reads ``PAYMENTS.csv`` (payment_id,payer,payee,currency,amount[,priority]) and the opening
balances ``CASH.csv`` (participant_id,currency,amount), runs them through
``settlement.lsm`` (queues, bilateral offsetting, multilateral gridlock resolution) and prints
what settled, what stays queued, the final balances and the liquidity used. ``--json`` prints one
object: ``settled`` (ids in settlement order), ``queued`` (ids), ``final_balances``,
``liquidity_used`` (per currency) and ``rejected`` (bad rows with their reasons).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from clearhouse.core.errors import ClearhouseError
from clearhouse.interfaces.console import err, out
from clearhouse.settlement.lsm import run_payments_files


def register(app: typer.Typer) -> None:
    """Add the ``payments`` command to the CLI."""

    @app.command()
    def payments(
        payments_csv: Annotated[Path, typer.Argument(help="PAYMENTS.csv: payment_id,payer,payee,currency,amount"
                                                          "[,priority].")],
        balances: Annotated[Path, typer.Option("--balances", help="CASH.csv: participant_id,currency,amount.")],
        as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout.")] = False,
    ) -> None:
        """Settle cash payments gross in real time, with queues, offsetting and gridlock resolution."""
        try:
            result = run_payments_files(payments_csv, balances)
        except (ClearhouseError, OSError) as exc:
            err.print(f"[bold red]error:[/] {exc}")
            raise typer.Exit(2) from exc
        if as_json:
            sys.stdout.write(json.dumps(result) + "\n")
            return
        out.print(f"settled {len(result['settled'])}, queued {len(result['queued'])}, "
                  f"rejected {len(result['rejected'])}")
        if result["queued"]:
            out.print("still queued: " + ", ".join(result["queued"]))
        table = Table(title="Final balances")
        for column in ("participant_id", "currency", "amount"):
            table.add_column(column)
        for row in result["final_balances"]:
            table.add_row(row["participant_id"], row["currency"], row["amount"])
        out.print(table)
        for currency, amount in result["liquidity_used"].items():
            out.print(f"liquidity used ({currency}): {amount}")
        for row in result["rejected"]:
            out.print(f"row {row['row']} ({row['payment_id'] or 'no id'}): {row['reason']}")
