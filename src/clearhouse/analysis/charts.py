"""Charts of a regime comparison: plotly figures, a self-contained HTML report and PNG images.

The report embeds plotly.js inline once (``include_plotlyjs=True`` on the first chart), so it
opens without a network. PNG images go through kaleido, which drives a local Chrome/Chromium.
Amounts are drawn in whole currency units (floats for display only; the figures themselves are
exact integers in ``regimes``). Imports clearhouse.core and clearhouse.analysis.regimes only.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
import plotly.io as pio
from plotly.subplots import make_subplots

from clearhouse.analysis.regimes import (
    DAY,
    MARGIN_RATE,
    Comparison,
    RegimeResult,
    iso_time,
    summary_table,
)
from clearhouse.core.calendar import from_day_number
from clearhouse.core.money import minor_digits

PALETTE = ("#1f4e79", "#2e75b6", "#8fb8de", "#ed7d31", "#c00000", "#7f6000", "#548235")
FIGURE_TITLES = {
    "netting": "What netting buys: value to settle per regime",
    "liquidity": "Liquidity that must be in place",
    "exposure": "The CCP's exposure over the cycle",
    "largest": "The CCP's largest exposures",
    "borrowing": "Securities that short sellers borrow",
    "fails": "What does not settle",
}
MEMBERS_SHOWN = 20


def _units(comparison: Comparison) -> Callable[[float], float]:
    scale = 10 ** minor_digits(comparison.flow.currency)
    return lambda minor: float(minor) / scale


def _colour(i: int) -> str:
    return PALETTE[i % len(PALETTE)]


def _layout(fig: go.Figure, title: str, comparison: Comparison, **kw: object) -> go.Figure:
    fig.update_layout(
        title={"text": title, "x": 0.01, "font": {"size": 18}},
        template="plotly_white", font={"family": "Helvetica, Arial, sans-serif", "size": 13},
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.02, "x": 0.01},
        margin={"l": 70, "r": 30, "t": 90, "b": 60}, height=480, **kw,
    )
    fig.update_yaxes(tickformat="~s", ticksuffix=f" {comparison.flow.currency}")
    return fig


def _cut(pct: float) -> str:
    return f"-{pct:.1f} %" if pct > 0 else "no netting"


def netting_figure(c: Comparison) -> go.Figure:
    u = _units(c)
    names = [r.regime.name for r in c.results]
    fig = go.Figure()
    fig.add_bar(name="gross obligations", x=names, y=[u(r.netting.gross_value) for r in c.results],
                marker_color="#bfbfbf")
    fig.add_bar(name="net obligations (per member and security)", x=names,
                y=[u(r.netting.net_value) for r in c.results], marker_color="#2e75b6",
                text=[_cut(r.netting.reduction_pct) for r in c.results], textposition="outside")
    fig.add_bar(name="net payments (per member)", x=names,
                y=[u(r.netting.net_payment_value) for r in c.results], marker_color="#1f4e79",
                text=[_cut(r.netting.payment_reduction_pct) for r in c.results],
                textposition="outside")
    return _layout(fig, FIGURE_TITLES["netting"], c, barmode="group")


def liquidity_figure(c: Comparison) -> go.Figure:
    u = _units(c)
    names = [r.regime.name for r in c.results]
    fig = make_subplots(rows=1, cols=2, column_widths=[0.34, 0.66], horizontal_spacing=0.1,
                        subplot_titles=("All members: pre-funding and margin",
                                        f"Pre-funding per member (the {MEMBERS_SHOWN} largest)"))
    for label, colour, values in (
        ("cash pre-funding", "#548235", [r.prefunding.cash_total for r in c.results]),
        ("securities pre-funding", "#a9d18e", [r.prefunding.securities_total for r in c.results]),
        ("initial margin proxy (peak)", "#f4b183", [r.exposure.margin_peak for r in c.results]),
    ):
        fig.add_bar(name=label, x=names, y=[u(v) for v in values], marker_color=colour,
                    offsetgroup="all", row=1, col=1)
    totals = np.array([r.prefunding.cash + r.prefunding.securities for r in c.results])
    order = np.argsort(-totals.max(axis=0), kind="stable")[:MEMBERS_SHOWN]
    members = [c.flow.members[i] for i in order]
    for i, r in enumerate(c.results):
        fig.add_bar(name=r.regime.name, x=members, y=[u(v) for v in totals[i, order]],
                    marker_color=_colour(i), offsetgroup=r.regime.name, row=1, col=2)
    fig = _layout(fig, FIGURE_TITLES["liquidity"], c)
    fig.update_layout(barmode="relative", height=540,
                      legend={"orientation": "v", "y": 1.0, "yanchor": "top", "x": 1.02})
    fig.update_xaxes(tickangle=-45, row=1, col=2)
    return fig


def exposure_figure(c: Comparison) -> go.Figure:
    u = _units(c)
    times = [iso_time(t) for t in c.path.times.tolist()]
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.1,
                        subplot_titles=("Replacement cost of unsettled trades, all members",
                                        f"Initial margin proxy ({100 * MARGIN_RATE:.2f} % of unsettled "
                                        "securities value)"))
    for i, r in enumerate(c.results):
        style = {"color": _colour(i), "width": 2}
        fig.add_scatter(name=r.regime.name, x=times, y=[u(v) for v in r.exposure.replacement.tolist()],
                        mode="lines", line=style, legendgroup=r.regime.name, row=1, col=1)
        fig.add_scatter(name=r.regime.name, x=times, y=[u(v) for v in r.exposure.margin.tolist()],
                        mode="lines", line=style, legendgroup=r.regime.name, showlegend=False,
                        row=2, col=1)
    fig = _layout(fig, FIGURE_TITLES["exposure"], c)
    fig.update_layout(height=660, hovermode="x unified", margin={"t": 120},
                      legend={"y": 1.1})
    return fig


def largest_figure(c: Comparison) -> go.Figure:
    u = _units(c)
    peaks = np.array([r.exposure.member_peak for r in c.results])
    order = np.argsort(-peaks.max(axis=0), kind="stable")[:10]
    order = order[peaks.max(axis=0)[order] > 0]
    members = [c.flow.members[i] for i in order][::-1]
    fig = go.Figure()
    for i, r in reversed(list(enumerate(c.results))):  # the first regime on top of each group
        fig.add_bar(name=r.regime.name, y=members, x=[u(v) for v in peaks[i, order][::-1]],
                    orientation="h", marker_color=_colour(i))
    fig = _layout(fig, FIGURE_TITLES["largest"], c, barmode="group")
    fig.update_layout(legend={"traceorder": "reversed"})
    fig.update_xaxes(tickformat="~s", ticksuffix=f" {c.flow.currency}", title="peak replacement cost")
    fig.update_yaxes(tickformat="", ticksuffix="")
    return fig


def borrowing_figure(c: Comparison) -> go.Figure:
    u = _units(c)
    names = [r.regime.name for r in c.results]
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    fig.add_bar(name="borrowed in all", x=names, y=[u(r.borrowing.borrowed_value) for r in c.results],
                marker_color="#7f6000")
    fig.add_bar(name="peak on loan", x=names, y=[u(r.borrowing.peak_value) for r in c.results],
                marker_color="#ffd966")
    fig.add_scatter(name="average days on loan", x=names, y=[r.borrowing.average_days for r in c.results],
                    mode="markers+text", marker={"size": 14, "color": "#000000", "symbol": "diamond"},
                    text=[f"{r.borrowing.average_days:.2f} d" for r in c.results],
                    textposition="top center", secondary_y=True)
    fig = _layout(fig, FIGURE_TITLES["borrowing"], c, barmode="group")
    fig.update_yaxes(tickformat=".2f", ticksuffix=" d", title="days on loan", secondary_y=True,
                     rangemode="tozero")
    return fig


def fails_figure(c: Comparison) -> go.Figure:
    u = _units(c)
    names = [r.regime.name for r in c.results]
    fig = go.Figure()
    fig.add_bar(name="failed on the due date", x=names, y=[u(r.settlement.failed_value) for r in c.results],
                marker_color="#c00000",
                text=[f"{r.settlement.fail_rate_pct:.2f} %" for r in c.results], textposition="outside")
    fig.add_bar(name="still failing at the end", x=names,
                y=[u(r.settlement.open_at_end_value) for r in c.results], marker_color="#ff9999")
    fig.add_bar(name="not executed (pre-funding)", x=names,
                y=[u(r.execution.not_executed_value) for r in c.results], marker_color="#404040",
                text=[f"{r.execution.not_executed:,} trades" if r.execution.not_executed else ""
                      for r in c.results], textposition="outside")
    return _layout(fig, FIGURE_TITLES["fails"], c, barmode="group")


def build_figures(comparison: Comparison) -> dict[str, go.Figure]:
    """Every chart of the report, by name, in report order."""
    return {
        "netting": netting_figure(comparison),
        "liquidity": liquidity_figure(comparison),
        "exposure": exposure_figure(comparison),
        "largest": largest_figure(comparison),
        "borrowing": borrowing_figure(comparison),
        "fails": fails_figure(comparison),
    }


def _find(c: Comparison, pick: Callable[[RegimeResult], bool]) -> RegimeResult | None:
    return next((r for r in c.results if pick(r)), None)


def _cards(c: Comparison) -> list[tuple[str, str]]:
    """Headline numbers: (big figure, what it says)."""
    cards: list[tuple[str, str]] = []
    daily = {r.regime.cycle_days: r for r in c.results if r.regime.kind == "daily"}
    atomic = _find(c, lambda r: r.regime.kind == "atomic")
    first = daily.get(max(daily)) if daily else None
    if first:
        cards.append((f"{first.netting.payment_reduction_pct:.1f} %",
                      f"of the cash to move is removed by netting ({first.regime.name}); "
                      f"{first.netting.reduction_pct:.1f} % of the obligations' value"))
    if 1 in daily and 2 in daily and daily[2].exposure.margin_average:
        cut = 100 * (1 - daily[1].exposure.margin_average / daily[2].exposure.margin_average)
        rc = 100 * (1 - daily[1].exposure.value_seconds / max(daily[2].exposure.value_seconds, 1))
        cards.append((f"-{cut:.0f} %", f"average initial margin from T+2 to T+1 "
                      f"(replacement cost -{rc:.0f} %)"))
    if atomic and first and first.prefunding.total:
        more = 100 * (atomic.prefunding.total / first.prefunding.total - 1)
        moved = atomic.netting.net_payment_value / max(first.netting.net_payment_value, 1)
        cards.append((f"+{more:.1f} %", f"pre-funding under atomic settlement than under "
                      f"{first.regime.name}, and {moved:.0f}x the cash moved"))
    if atomic:
        cards.append((f"{atomic.execution.not_executed:,}",
                      f"trades could not execute when pre-funded ({atomic.execution.no_cash:,} for "
                      f"cash, {atomic.execution.no_securities:,} for securities)"))
    return cards


_EXPLAIN = {
    "netting": "Each trade becomes two obligations facing the CCP. Netting sums a member's "
               "obligations per security and batch into one delivery or receipt, and its cash "
               "into one payment. A daily batch nets a whole trade day; an intraday batch only "
               "its window; atomic settlement nets nothing.",
    "liquidity": "Cash and securities a member must hold beforehand so that every obligation "
                 "settles when due: the deepest its running balance would fall over the "
                 "settlement events. Gross, trade-by-trade settlement sees every intraday swing "
                 "that netting would smooth out. The CCP's margin call comes on top for netted "
                 "regimes.",
    "exposure": "What the CCP would lose replacing a member's unsettled trades if it defaulted, "
                "marked on a simulated price path every half hour, summed over members; below, a "
                "margin proxy on the same positions. The longer trades stay unsettled, the "
                "further prices can move.",
    "largest": "Each member's largest replacement cost over the cycle, for the members the "
               "CCP is most exposed to.",
    "borrowing": "A member short of securities for a delivery borrows the shortfall from the "
                 "lending pool and returns it as soon as it holds the securities again. Average "
                 "days on loan weights each loan by its value.",
    "fails": "Net obligations that failed on their due date (counted once, however often they "
             "are retried), those still failing at the end, and, under pre-funding, trades "
             "that could not execute at all.",
}

_STYLE = """
body{font-family:Helvetica,Arial,sans-serif;margin:0;background:#f5f6f8;color:#1a1a1a}
header{background:#1f4e79;color:#fff;padding:28px 40px}
header h1{margin:0 0 8px 0;font-size:26px}
header p{margin:0;opacity:.9}
main{max-width:1200px;margin:0 auto;padding:20px 40px 60px}
.cards{display:flex;gap:16px;flex-wrap:wrap;margin:8px 0 24px}
.card{flex:1 1 220px;background:#fff;border-radius:8px;padding:16px 20px;box-shadow:0 1px 3px #0002}
.card b{display:block;font-size:30px;color:#1f4e79;margin-bottom:6px}
section{background:#fff;border-radius:8px;padding:16px 20px;margin:18px 0;box-shadow:0 1px 3px #0002}
section p{max-width:900px;line-height:1.45}
table{border-collapse:collapse;font-size:13px;width:100%}
th,td{padding:5px 8px;border-bottom:1px solid #e3e3e3;text-align:right}
th:first-child,td:first-child{text-align:left}
thead th{background:#eef3f8}
footer{font-size:12px;color:#555;max-width:1200px;margin:0 auto;padding:0 40px 40px}
"""


def report_html(comparison: Comparison, figures: dict[str, go.Figure] | None = None) -> str:
    """The whole report as one self-contained HTML page (plotly.js inline, no network needed)."""
    c, flow = comparison, comparison.flow
    figures = figures if figures is not None else build_figures(comparison)
    cards = "".join(f'<div class="card"><b>{html.escape(big)}</b>{html.escape(text)}</div>'
                    for big, text in _cards(c))
    sections = []
    for i, (name, fig) in enumerate(figures.items()):
        div = pio.to_html(fig, full_html=False, include_plotlyjs=(i == 0), div_id=f"chart-{name}",
                          config={"displaylogo": False, "responsive": True})
        sections.append(f'<section id="{name}"><p>{html.escape(_EXPLAIN.get(name, ""))}</p>{div}</section>')
    names, rows = summary_table(c)
    head = "".join(f"<th>{html.escape(n)}</th>" for n in ["figure", *names])
    body = "".join("<tr>" + "".join(f"<td>{html.escape(x)}</td>" for x in [label, *cells]) + "</tr>"
                   for label, cells in rows)
    first, last = from_day_number(c.first_day), from_day_number(c.last_day)
    horizon = (int(c.path.end) - int(c.path.times[0])) / DAY
    subtitle = (f"{len(flow.time):,} trades between {len(flow.members)} members in "
                f"{len(flow.securities)} securities ({flow.currency}), traded from {first} and settled "
                f"by {last}; the same trades under every regime.")
    notes = (f"Lending pool: {100 * c.lendable_share:g} % of each security's opening holdings. "
             f"Price path: seed {c.seed}, {horizon:.0f} calendar days marked every half hour. "
             f"{flow.rejected:,} trade(s) the ledger would reject and {flow.other_currency:,} in "
             f"other currencies are left out; {flow.generated_times:,} trade time(s) were generated. "
             "Figures are computed by clearhouse.analysis.regimes; see docs/COMPARE.md.")
    return (
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
        f"<title>clearhouse: settlement regimes compared</title><style>{_STYLE}</style></head><body>"
        f"<header><h1>What netting buys and what T+0 costs</h1><p>{html.escape(subtitle)}</p></header>"
        f"<main><div class=\"cards\">{cards}</div>{''.join(sections)}"
        f"<section id=\"table\"><h2>Every figure (amounts in {html.escape(flow.currency)})</h2>"
        f"<table><thead><tr>{head}</tr></thead>"
        f"<tbody>{body}</tbody></table></section></main>"
        f"<footer>{html.escape(notes)}</footer></body></html>"
    )


def write_html(comparison: Comparison, path: Path, figures: dict[str, go.Figure] | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(report_html(comparison, figures), encoding="utf-8")


def write_pngs(figures: dict[str, go.Figure], directory: Path) -> list[Path]:
    """Write each chart as ``NAME.png`` (kaleido with a local Chrome/Chromium); returns the paths."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = [directory / f"{name}.png" for name in figures]
    pio.write_images(list(figures.values()), paths, width=1200, scale=1)
    return paths
