"""Error hierarchy and the always-on invariant check.

Rejections of submitted items are data (see ``core.results``); an impossible state is a bug and
halts the node through :func:`invariant`, which is never compiled away like ``assert``.
Imports nothing else of clearhouse.
"""

from __future__ import annotations


class ClearhouseError(Exception):
    """Base class of every error clearhouse raises on purpose."""


class InvariantViolation(ClearhouseError):
    """An impossible state was reached: the node must stop rather than continue on bad state."""


class StorageError(ClearhouseError):
    """A storage backend failed; driver errors are translated into this at the boundary."""


class InputError(ClearhouseError):
    """A whole input (file, scenario, message) cannot be read at all; item-level faults are results."""


def invariant(condition: bool, message: str) -> None:
    """Halt with :class:`InvariantViolation` when ``condition`` is false. Always on."""
    if not condition:
        raise InvariantViolation(message)
