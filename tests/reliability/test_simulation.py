"""The deterministic simulation: a handful of seeds on every run, determinism, and mutants caught.

Set ``CLEARHOUSE_SIM_SEEDS`` to run more seeds (``clearhouse simulate --seeds N`` does the same
from the command line). A failing seed's message holds the command that replays it.
"""

from __future__ import annotations

import os

import pytest

from clearhouse.sim import MUTANTS, SimResult, run_seeds, run_simulation, totals

SEEDS = int(os.environ.get("CLEARHOUSE_SIM_SEEDS", "10"))
MUTANT_SEEDS_MAX = 300


@pytest.fixture(scope="module")
def results() -> list[SimResult]:
    return run_seeds(0, SEEDS)


def test_every_seed_passes_every_check(results: list[SimResult]) -> None:
    failures = [r.failure for r in results if not r.passed]
    assert not failures, "\n".join(failures)


def test_the_seeds_inject_every_kind_of_fault(results: list[SimResult]) -> None:
    t = totals(results)
    for fault in ("messages_lost", "messages_duplicated", "messages_reordered", "crashes_sequencer",
                  "crashes_replica", "crashes_mid_append", "writes_lost", "writes_torn", "retries",
                  "duplicate_blocks_ignored", "hostile_submissions", "instructions_failed"):
        assert t[fault] > 0, f"no {fault} in {SEEDS} seeds: {t}"


def test_a_seed_replays_exactly() -> None:
    first, again = run_simulation(3), run_simulation(3)
    assert first == again
    assert first.head_hash


@pytest.mark.parametrize("mutant", sorted(MUTANTS))
def test_a_broken_variant_is_caught(mutant: str) -> None:
    for seed in range(MUTANT_SEEDS_MAX):
        result = run_simulation(seed, mutant=mutant)
        if not result.passed:
            assert f"seed {seed}" in result.failure and f"--mutant {mutant}" in result.failure
            return
    pytest.fail(f"mutant {mutant} survived {MUTANT_SEEDS_MAX} seeds")
