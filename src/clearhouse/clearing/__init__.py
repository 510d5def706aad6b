"""Clearing: trade batches and their validation, the trade-id index, novation and multilateral
netting, all vectorised. May import clearhouse.core only."""
