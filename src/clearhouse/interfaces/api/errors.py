"""The API's refusals: one exception type carrying an HTTP status, a stable code and a sentence.

The app turns every ``ApiError`` into the ``ErrorBody`` JSON shape. Imports nothing of clearhouse.
"""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """A refusal with its HTTP status, machine code and human detail (a sentence, or a list of
    items each with its reason, e.g. the faults of a malformed FIX message)."""

    def __init__(self, status: int, error: str, detail: Any, headers: dict[str, str] | None = None) -> None:
        super().__init__(str(detail))
        self.status = status
        self.error = error
        self.detail = detail
        self.headers = headers or {}


def not_authenticated(detail: str) -> ApiError:
    return ApiError(401, "not_authenticated", detail, {"WWW-Authenticate": "Bearer"})


def forbidden(detail: str) -> ApiError:
    return ApiError(403, "forbidden", detail)


def not_found(error: str, detail: str) -> ApiError:
    return ApiError(404, error, detail)
