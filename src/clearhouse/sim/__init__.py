"""Deterministic simulation of the whole system in one process, driven by one seed.

``run_simulation(seed)`` builds a small market, runs a sequencer and replica nodes over a faulty
bus with crashes and torn writes, and checks every commit against a plain-Python reference
model; a failure names the seed that replays it. May import anything of the core, never an
interface.
"""

from clearhouse.sim.mutants import MUTANTS
from clearhouse.sim.world import COUNTS, SimResult, run_seeds, run_simulation, totals

__all__ = ["COUNTS", "MUTANTS", "SimResult", "run_seeds", "run_simulation", "totals"]
