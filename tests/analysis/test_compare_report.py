"""The comparison report opened in a real browser (headless Chromium), and its charts as PNG files.

Both need Debian's chromium at /usr/bin/chromium (the Makefile installs it); without it they are
skipped with that reason.
"""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from clearhouse.analysis.charts import build_figures, write_html, write_pngs
from clearhouse.analysis.regimes import Comparison, compare, prepare_flow, standard_regimes
from clearhouse.market.synthetic import MarketSpec, generate_market

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]
needs_chromium = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs /usr/bin/chromium")

RENDERED = """plots => plots.map(p => ({
    id: p.id,
    svgs: p.querySelectorAll('.plot-container .main-svg').length,
    traces: p.querySelectorAll('.plot-container g.trace').length,
    marks: p.querySelectorAll('g.point path, path.js-line').length,
}))"""


@pytest.fixture(scope="module")
def comparison() -> Comparison:
    scenario = generate_market(MarketSpec(members=8, securities=12, trades=3_000, days=3, seed=5))
    return compare(prepare_flow(scenario, seed=5), standard_regimes(30), seed=5)


@needs_chromium
def test_html_report_renders_every_chart_in_a_browser(comparison: Comparison, tmp_path: Path) -> None:
    sync_api = pytest.importorskip("playwright.sync_api")
    figures = build_figures(comparison)
    report = tmp_path / "report.html"
    write_html(comparison, report, figures)
    text = report.read_text(encoding="utf-8")
    assert "<script src=" not in text  # plotly.js is inline: the page needs no network
    outside: list[str] = []
    errors: list[str] = []
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.on("request", lambda r: outside.append(r.url) if not r.url.startswith(("file:", "data:")) else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(report.as_uri(), wait_until="load")
        page.wait_for_function(
            "n => [...document.querySelectorAll('.js-plotly-plot')]"
            ".filter(p => p.querySelector('.plot-container .main-svg g.trace')).length === n",
            arg=len(figures),
        )
        plots = page.eval_on_selector_all(".js-plotly-plot", RENDERED)
        cards = page.locator(".card").count()
        rows = page.locator("#table tbody tr").count()
        browser.close()
    assert errors == [] and outside == []
    assert [p["id"] for p in plots] == [f"chart-{name}" for name in figures]
    for plot in plots:
        assert plot["svgs"] >= 1 and plot["traces"] >= 1 and plot["marks"] > 0, plot
    assert cards == 4 and rows > 20


@needs_chromium
def test_png_charts_are_written_through_kaleido(comparison: Comparison, tmp_path: Path) -> None:
    figures = build_figures(comparison)
    paths = write_pngs(figures, tmp_path / "png")
    assert [p.name for p in paths] == [f"{name}.png" for name in figures]
    for path in paths:
        head = path.read_bytes()[:24]
        assert head[:8] == b"\x89PNG\r\n\x1a\n"
        width, height = struct.unpack(">II", head[16:24])
        assert width == 1200 and height >= 400
