"""Analyses that run the same trades under several settlement designs and compare the outcomes.

``regimes`` simulates T+N net batch settlement, intraday netting batches and atomic gross
settlement on one trade flow and measures netting, liquidity, borrowing, exposure and fails;
``charts`` turns a comparison into plotly figures, a self-contained HTML report and PNG images.
Imports clearhouse.core, clearing, settlement, market and cycle.scenario only, never interfaces.
"""
