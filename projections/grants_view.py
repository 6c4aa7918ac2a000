"""The grants view: what authorization through grants reads, and ListGrants lists.

It is the place where a grant's eventual consistency lives ("Eventual consistency (for
grants)", grants.html#terms-eventual-consistency): a grant works without its token only
once this view has applied its GrantCreated, and keeps working after RetireGrant or
RevokeGrant until this view has applied that too.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from datetime import UTC, datetime
from functools import singledispatch
from typing import Any

import orjson
from eventsourcing.sqlite import SQLiteCursor

from domain.cmk import Cmk
from domain.grants import Grant
from projections.versioned_view import VersionedView

_TABLES = [
    "CREATE TABLE IF NOT EXISTS grants (grant_id TEXT PRIMARY KEY, key_id TEXT NOT NULL, "
    "account TEXT NOT NULL, region TEXT NOT NULL, name TEXT, grantee TEXT NOT NULL, "
    "retiring TEXT, operations TEXT NOT NULL, constraints TEXT, issuing_account TEXT NOT NULL, "
    "created REAL NOT NULL)",
    "CREATE INDEX IF NOT EXISTS grants_by_key ON grants (key_id, grant_id)",
    "CREATE INDEX IF NOT EXISTS grants_by_retiring ON grants (retiring, key_id, grant_id)",
]


class GrantsView(VersionedView):
    """Grant rows in SQLite (listings, restarts) and the same grants in memory by key, so
    a grant check on the hot path is a dictionary lookup, not a query."""

    SCHEMA_VERSION = 1
    TABLES = _TABLES
    VIEW_TABLES = ("grants",)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._by_key: dict[str, dict[str, Grant]] = {}
        self._lock = threading.Lock()

    def create_table(self) -> None:
        super().create_table()
        self._load()

    def reload(self) -> None:
        self._load()

    def grants_of(self, key_id: str) -> Sequence[Grant]:
        return tuple(self._by_key.get(key_id, {}).values())

    def project(self, event: Any, cursor: SQLiteCursor) -> None:
        project(event, cursor)

    def processed(self, events: Sequence[Any]) -> None:
        touched = {str(e.originator_id) for e in events if isinstance(e, _GRANT_EVENTS)}
        for key_id in touched:
            self._reload(key_id)

    def list_grants(
        self, key_id: str, grant_id: str | None, grantee: str | None, after: str, limit: int
    ) -> list[Grant]:
        return self._select(
            "key_id = ? AND grant_id > ? AND (CAST(? AS TEXT) IS NULL OR grant_id = ?) "
            "AND (CAST(? AS TEXT) IS NULL OR grantee = ?) ORDER BY grant_id LIMIT ?",
            (key_id, after, grant_id, grant_id, grantee, grantee, limit),
        )

    def list_retirable(self, retiring: str, after: str, limit: int) -> list[tuple[str, Grant]]:
        """(key ARN, grant) pairs, ordered by key then grant."""
        with self.datastore.transaction(commit=False) as cursor:
            cursor.execute(
                "SELECT * FROM grants WHERE retiring = ? AND key_id || '/' || grant_id > ? "
                "ORDER BY key_id, grant_id LIMIT ?",
                (retiring, after, limit),
            )
            return [(_key_arn(row), _grant(row)) for row in cursor.fetchall()]

    def busiest(self, account: str, region: str) -> tuple[int, int]:
        """The most grants on one key, and the most one grantee holds on one key."""
        with self.datastore.transaction(commit=False) as cursor:
            cursor.execute(
                "SELECT COALESCE(MAX(n), 0) FROM (SELECT COUNT(*) AS n FROM grants "
                "WHERE account = ? AND region = ? GROUP BY key_id) AS per_key",
                (account, region),
            )
            per_key = int(cursor.fetchone()[0])
            cursor.execute(
                "SELECT COALESCE(MAX(n), 0) FROM (SELECT COUNT(*) AS n FROM grants "
                "WHERE account = ? AND region = ? GROUP BY key_id, grantee) AS per_grantee",
                (account, region),
            )
            return per_key, int(cursor.fetchone()[0])

    def count(self) -> int:
        return int(self._column("SELECT COUNT(*) FROM grants", ())[0])

    def _select(self, where: str, params: tuple[Any, ...]) -> list[Grant]:
        with self.datastore.transaction(commit=False) as cursor:
            cursor.execute(f"SELECT * FROM grants WHERE {where}", params)  # noqa: S608 - fixed text
            return [_grant(row) for row in cursor.fetchall()]

    def _load(self) -> None:
        by_key: dict[str, dict[str, Grant]] = {}
        for grant in self._select("1 = 1 ORDER BY key_id, grant_id", ()):
            by_key.setdefault(grant.key_id, {})[grant.grant_id] = grant
        with self._lock:
            self._by_key = by_key

    def _reload(self, key_id: str) -> None:
        grants = self._select("key_id = ? ORDER BY grant_id", (key_id,))
        with self._lock:
            if grants:
                self._by_key[key_id] = {g.grant_id: g for g in grants}
            else:
                self._by_key.pop(key_id, None)


_GRANT_EVENTS = (Cmk.GrantCreated, Cmk.GrantRetired, Cmk.GrantRevoked, Cmk.Deleted)


def _grant(row: Any) -> Grant:
    return Grant(
        grant_id=row["grant_id"],
        key_id=row["key_id"],
        name=row["name"],
        grantee_principal=row["grantee"],
        retiring_principal=row["retiring"],
        operations=tuple(orjson.loads(row["operations"])),
        constraints=orjson.loads(row["constraints"]) if row["constraints"] else None,
        issuing_account=row["issuing_account"],
        created=datetime.fromtimestamp(row["created"], UTC),
    )


def _key_arn(row: Any) -> str:
    return f"arn:aws:kms:{row['region']}:{row['account']}:key/{row['key_id']}"


@singledispatch
def project(event: object, cursor: SQLiteCursor) -> None:
    """Other events do not touch grants."""


@project.register
def _(event: Cmk.GrantCreated, cursor: SQLiteCursor) -> None:
    region = (event.request or {}).get("region", "")
    cursor.execute(
        "INSERT OR REPLACE INTO grants VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            event.grant_id,
            str(event.originator_id),
            event.issuing_account,
            region,
            event.name,
            event.grantee_principal,
            event.retiring_principal,
            orjson.dumps(event.operations).decode(),
            orjson.dumps(event.constraints).decode() if event.constraints else None,
            event.issuing_account,
            event.timestamp.timestamp(),
        ),
    )


@project.register(Cmk.GrantRetired)
@project.register(Cmk.GrantRevoked)
def _(event: Cmk.GrantRetired | Cmk.GrantRevoked, cursor: SQLiteCursor) -> None:
    cursor.execute("DELETE FROM grants WHERE grant_id = ?", (event.grant_id,))


@project.register
def _(event: Cmk.Deleted, cursor: SQLiteCursor) -> None:
    cursor.execute("DELETE FROM grants WHERE key_id = ?", (str(event.originator_id),))
