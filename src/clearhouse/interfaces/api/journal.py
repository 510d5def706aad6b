"""The API's journal of trade submissions: which door each batch came through and how it ended.

The ledger records what was accepted; it does not record whether a batch came as REST JSON, a
FIX message over HTTP, the venue's FIX session or an ISO 20022 sese.023. The journal does, one
entry per submission that reached the service (accepted, replayed as ``exists``, or refused with
its error code), and keeps the FIX or XML message an accepted batch was read from, base64, as
the receipt of that message. It is a file of JSON lines (``DATA/messages.jsonl``) appended
under a lock; a torn last line (a crash mid-write) is skipped when it is read back. Entries are
stamped with the time they were received, the one clock reading here.
Imports the standard library only.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import threading
from pathlib import Path
from typing import Any

JOURNAL_FILE = "messages.jsonl"
DOORS = ("REST", "FIX", "FIX session", "ISO 20022")


class Journal:
    """The entries in memory (without the messages) and the file they are appended to."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._entries: list[dict[str, Any]] = []
        if path.is_file():
            for line in path.read_text("utf-8", errors="replace").splitlines():
                try:
                    entry = json.loads(line)
                except ValueError:
                    continue
                if isinstance(entry, dict) and entry.get("door") in DOORS:
                    entry.pop("message", None)
                    self._entries.append(entry)

    def add(self, door: str, submitter: str, submission_id: str, business_date: dt.date,
            outcome: dict[str, Any], message: bytes | None = None) -> dict[str, Any]:
        """Append one entry; ``outcome`` is a trade submission answer, or ``{"status": "refused",
        "reason": ...}``. ``message`` is kept only when the batch reached the ledger."""
        entry: dict[str, Any] = {
            "seq": 0, "received_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "business_date": business_date.isoformat(), "door": door, "submitter": submitter,
            "submission_id": submission_id, "status": outcome["status"], "reason": outcome.get("reason", ""),
            "height": outcome.get("height"), "submitted": outcome.get("submitted", 0),
            "accepted": outcome.get("accepted", 0), "rejected": outcome.get("rejected", 0),
            "message_sha256": hashlib.sha256(message).hexdigest() if message is not None else None,
        }
        with self._lock:
            entry["seq"] = len(self._entries) + 1
            line = dict(entry)
            if message is not None and outcome["status"] != "refused":
                line["message"] = base64.b64encode(message).decode("ascii")
            with self.path.open("a", encoding="utf-8") as f:
                f.write(json.dumps(line, separators=(",", ":")) + "\n")
            self._entries.append(entry)
        return entry

    def entries(self, business_date: dt.date | None, submitter: str | None, limit: int) -> list[dict[str, Any]]:
        """The newest entries first, of one business date and one submitter when given."""
        day = business_date.isoformat() if business_date else None
        with self._lock:
            found = []
            for entry in reversed(self._entries):
                if (day is None or entry["business_date"] == day) and (
                    submitter is None or entry["submitter"] == submitter
                ):
                    found.append(dict(entry))
                    if len(found) == limit:
                        break
        return found
