"""Synthetic markets for demos, tests and benchmarks, seeded and vectorised. May import
clearhouse.core, clearhouse.clearing and clearhouse.cycle.scenario only."""
