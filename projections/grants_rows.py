"""The grants view projected from stored rows (the rebuild's fast path); the same rows as
``projections.grants_view.project`` makes from events."""

from __future__ import annotations

from typing import Any

import orjson

from domain.cmk import Cmk
from projections.fast_path import RowProjection, Statements
from projections.stored_log import epoch

State = dict[str, Any]


def _created(key_id: str, s: State, out: Statements) -> None:
    constraints = s["constraints"]
    out.add(
        "INSERT OR REPLACE INTO grants VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            s["grant_id"],
            key_id,
            s["issuing_account"],
            (s["request"] or {}).get("region", ""),
            s["name"],
            s["grantee_principal"],
            s["retiring_principal"],
            orjson.dumps(s["operations"]).decode(),
            orjson.dumps(constraints).decode() if constraints else None,
            s["issuing_account"],
            epoch(s["timestamp"]),
        ),
    )


def _ended(key_id: str, s: State, out: Statements) -> None:
    out.add("DELETE FROM grants WHERE grant_id = ?", (s["grant_id"],))


def _key_deleted(key_id: str, s: State, out: Statements) -> None:
    out.add("DELETE FROM grants WHERE key_id = ?", (key_id,))


GRANTS_ROWS = RowProjection(
    {
        Cmk.GrantCreated.TOPIC: _created,
        Cmk.GrantRetired.TOPIC: _ended,
        Cmk.GrantRevoked.TOPIC: _ended,
        Cmk.Deleted.TOPIC: _key_deleted,
    }
)
