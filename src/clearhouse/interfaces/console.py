"""Terminal output: progress bars on stderr (so ``--json`` stdout stays clean) and report tables.

Imports clearhouse.cycle.run only (for the Progress type).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from clearhouse.cycle.run import Progress as ProgressFn

err = Console(stderr=True)
out = Console()

PHASES = {"replay": "Replaying the stored ledger", "blocks": "Clearing and settling (blocks)",
          "verify": "Verifying every block"}


@contextmanager
def progress_bars(enabled: bool = True) -> Iterator[ProgressFn]:
    """A callback ``(phase, done, total)`` that drives one bar per phase."""
    if not enabled:
        yield lambda phase, done, total: None
        return
    with Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=err, transient=False,
    ) as bars:
        tasks: dict[str, Any] = {}

        def update(phase: str, done: int, total: int) -> None:
            if phase not in tasks:
                tasks[phase] = bars.add_task(PHASES.get(phase, phase), total=total)
            bars.update(tasks[phase], completed=done, total=total)

        yield update


def money(amount: str | None, report: dict[str, Any]) -> str:
    """'22253070371.48' -> '22,253,070,371.48 AUD' (the run's currency when it has one)."""
    if amount is None:
        return "several currencies (see --json by_currency)"
    whole, _, frac = amount.partition(".")
    sign = "-" if whole.startswith("-") else ""
    text = f"{sign}{int(whole.lstrip('-')):,}" + (f".{frac}" if frac else "")
    currencies = list(report["netting"].get("by_currency", {}))
    return f"{text} {currencies[0]}" if len(currencies) == 1 else text


def print_report(report: dict[str, Any], console: Console = out) -> None:
    t = report["trades"]
    n = report["netting"]
    s = report["settlement"]
    led = report["ledger"]
    summary = Table(title="Clearing and settlement", show_header=False)
    summary.add_column("figure")
    summary.add_column("value", justify="right")
    rows = [
        ("trades submitted / accepted / rejected", f"{t['submitted']:,} / {t['accepted']:,} / {t['rejected']:,}"),
        ("novated obligations (gross)", f"{n['gross_obligations']:,}"),
        ("net positions", f"{n['net_obligations']:,}"),
        ("gross value", money(n["gross_value"], report)),
        ("net value", money(n["net_value"], report)),
        ("netting reduction (by value)", f"{n['reduction_pct']:.2f} %"),
        ("instructions settled / failed", f"{s['settled']:,} / {s['failed']:,}"),
        ("settled value", money(s["settled_value"], report)),
        ("failed value", money(s["failed_value"], report)),
        ("positions still open", f"{report['open_positions']:,}"),
        ("ledger height", str(led["height"])),
        ("head hash", led["head_hash"][:16] + "…"),
        ("state root", led["state_root"][:16] + "…"),
        ("verified", {True: "yes", False: "NO", None: "not checked"}[led["verified"]]),
    ]
    for k, v in rows:
        summary.add_row(k, v)
    console.print(summary)
    if report["rejections"]:
        rej = Table(title=f"Rejected trades (first 10 of {len(report['rejections'])})")
        rej.add_column("trade id")
        rej.add_column("reason")
        for r in report["rejections"][:10]:
            rej.add_row(r["trade_id"], r["reason"])
        console.print(rej)
    if report["fails"]:
        by_reason: dict[str, int] = {}
        for f in report["fails"]:
            by_reason[f["reason"]] = by_reason.get(f["reason"], 0) + 1
        ft = Table(title="Settlement fails by reason")
        ft.add_column("reason")
        ft.add_column("instructions", justify="right")
        for k, v in sorted(by_reason.items()):
            ft.add_row(k, f"{v:,}")
        console.print(ft)
