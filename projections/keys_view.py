"""The keys, aliases and tags view behind ListKeys, ListAliases and ListResourceTags."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from functools import singledispatch
from typing import Any

from eventsourcing.sqlite import SQLiteCursor

from domain.alias import Alias
from domain.cmk import Cmk
from domain.values import EXTERNAL
from projections.versioned_view import VersionedView

_TABLES = [
    "CREATE TABLE IF NOT EXISTS keys (key_id TEXT PRIMARY KEY, account TEXT NOT NULL, "
    "region TEXT NOT NULL, state TEXT NOT NULL, next_rotation REAL, deletion_date REAL, "
    "key_manager TEXT NOT NULL DEFAULT 'CUSTOMER', current_material TEXT)",
    "CREATE INDEX IF NOT EXISTS keys_by_rotation ON keys (next_rotation)",
    "CREATE INDEX IF NOT EXISTS keys_by_deletion ON keys (deletion_date)",
    "CREATE INDEX IF NOT EXISTS keys_by_owner ON keys (account, region, key_id)",
    "CREATE TABLE IF NOT EXISTS aliases (alias_id TEXT PRIMARY KEY, account TEXT NOT NULL, "
    "region TEXT NOT NULL, name TEXT NOT NULL, target_key_id TEXT, created REAL NOT NULL, "
    "updated REAL NOT NULL)",
    "CREATE UNIQUE INDEX IF NOT EXISTS aliases_by_name ON aliases (account, region, name)",
    "CREATE INDEX IF NOT EXISTS aliases_by_target ON aliases (target_key_id, name)",
    "CREATE TABLE IF NOT EXISTS tags (key_id TEXT NOT NULL, tag_key TEXT NOT NULL, "
    "tag_value TEXT NOT NULL, PRIMARY KEY (key_id, tag_key))",
    # Imported material that expires (ValidTo), for the scheduler's expiry pass.
    "CREATE TABLE IF NOT EXISTS expiring_materials (key_id TEXT NOT NULL, "
    "material_id TEXT NOT NULL, valid_to REAL NOT NULL, PRIMARY KEY (key_id, material_id))",
    "CREATE INDEX IF NOT EXISTS expiring_by_time ON expiring_materials (valid_to)",
    # Imported material deleted or expired, whose wrapping key must be gone (repair pass).
    "CREATE TABLE IF NOT EXISTS removed_materials (material_id TEXT PRIMARY KEY, "
    "key_id TEXT NOT NULL)",
]


# Bump when the tables change: an older view is dropped and rebuilt from the log.
# 3: key_manager; 4: current_material, expiring_materials, removed_materials (imports)
SCHEMA_VERSION = 4
_VIEW_TABLES = ("keys", "aliases", "tags", "expiring_materials", "removed_materials")


class KeysView(VersionedView):
    """Keys, aliases and tags, for listings, the scheduler and kms:ResourceAliases."""

    SCHEMA_VERSION = SCHEMA_VERSION
    TABLES = _TABLES
    VIEW_TABLES = _VIEW_TABLES

    def project(self, event: Any, cursor: SQLiteCursor) -> None:
        project(event, cursor)

    def list_keys(self, account: str, region: str, after: str, limit: int) -> list[str]:
        return self._column(
            "SELECT key_id FROM keys WHERE account = ? AND region = ? AND key_id > ? "
            "AND state != 'Deleted' ORDER BY key_id LIMIT ?",
            (account, region, after, limit),
        )

    def list_aliases(
        self, account: str, region: str, key_id: str | None, after: str, limit: int
    ) -> list[dict[str, Any]]:
        with self.datastore.transaction(commit=False) as cursor:
            cursor.execute(
                "SELECT name, target_key_id, created, updated FROM aliases "
                "WHERE account = ? AND region = ? AND name > ? AND target_key_id IS NOT NULL "
                "AND (CAST(? AS TEXT) IS NULL OR target_key_id = ?) ORDER BY name LIMIT ?",
                (account, region, after, key_id, key_id, limit),
            )
            return [dict(row) for row in cursor.fetchall()]

    def list_tags(self, key_id: str, after: str, limit: int) -> list[tuple[str, str]]:
        with self.datastore.transaction(commit=False) as cursor:
            cursor.execute(
                "SELECT tag_key, tag_value FROM tags WHERE key_id = ? AND tag_key > ? "
                "ORDER BY tag_key LIMIT ?",
                (key_id, after, limit),
            )
            return [(row[0], row[1]) for row in cursor.fetchall()]

    def count(self, account: str, region: str, resource: str) -> int:
        """Resources of an account as the view has them (quotas count from here once)."""
        if resource == "customer_managed_keys":  # pending deletion counts, as AWS counts
            sql = (
                "SELECT COUNT(*) FROM keys WHERE account = ? AND region = ? "
                "AND key_manager = 'CUSTOMER' AND state != 'Deleted'"
            )
        else:
            sql = (
                "SELECT COUNT(*) FROM aliases WHERE account = ? AND region = ? "
                "AND target_key_id IS NOT NULL AND name NOT LIKE 'alias/aws/%'"
            )
        return int(self._column(sql, (account, region))[0])

    def keys_by_state(self) -> dict[str, int]:
        with self.datastore.transaction(commit=False) as cursor:
            cursor.execute("SELECT state, COUNT(*) FROM keys GROUP BY state")
            return {row[0]: int(row[1]) for row in cursor.fetchall()}

    def due_rotations(self, now: datetime) -> list[str]:
        return self._column(
            "SELECT key_id FROM keys WHERE state = 'Enabled' AND next_rotation <= ?",
            (_epoch(now),),
        )

    def due_deletions(self, now: datetime) -> list[str]:
        return self._column(
            "SELECT key_id FROM keys WHERE state = 'PendingDeletion' AND deletion_date <= ?",
            (_epoch(now),),
        )

    def due_expiries(self, now: datetime) -> list[str]:
        """Keys with imported material past its ValidTo."""
        return self._column(
            "SELECT DISTINCT key_id FROM expiring_materials WHERE valid_to <= ?", (_epoch(now),)
        )

    def removed_materials(self) -> list[str]:
        return self._column("SELECT material_id FROM removed_materials", ())

    def deleted_keys(self) -> list[str]:
        return self._column("SELECT key_id FROM keys WHERE state = 'Deleted'", ())

    def alias_names_of(self, key_id: str) -> list[str]:
        return self._column(
            "SELECT name FROM aliases WHERE target_key_id = ? ORDER BY name", (key_id,)
        )

    def existing_names(self, account: str, region: str, names: Sequence[str]) -> set[str]:
        """Which of ``names`` are live aliases (for the predefined alias/aws/* list)."""
        with self.datastore.transaction(commit=False) as cursor:
            cursor.execute(
                "SELECT name FROM aliases WHERE account = ? AND region = ? "
                "AND target_key_id IS NOT NULL AND name LIKE 'alias/aws/%'",
                (account, region),
            )
            return {row[0] for row in cursor.fetchall()} & set(names)

    def aliases_of(self, key_id: str) -> list[str]:
        return self._column("SELECT alias_id FROM aliases WHERE target_key_id = ?", (key_id,))


def _epoch(moment: datetime) -> float:
    return moment.timestamp()


@singledispatch
def project(event: object, cursor: SQLiteCursor) -> None:
    """Events that do not touch this view (e.g. DescriptionUpdated) are skipped."""


@project.register
def _(event: Cmk.Created, cursor: SQLiteCursor) -> None:
    key_id = str(event.originator_id)
    state = "PendingImport" if event.origin == EXTERNAL else "Enabled"
    cursor.execute(
        "INSERT OR REPLACE INTO keys (key_id, account, region, state, key_manager, "
        "current_material) VALUES (?, ?, ?, ?, ?, ?)",
        (key_id, event.account, event.region, state, event.key_manager, event.material_id or None),
    )
    _set_tags(cursor, key_id, event.tags)


@project.register
def _(event: Cmk.MaterialImported, cursor: SQLiteCursor) -> None:
    """The first material becomes current; importing the current material again
    makes a key pending import Enabled (as the aggregate does)."""
    key_id = str(event.originator_id)
    cursor.execute("DELETE FROM removed_materials WHERE material_id = ?", (event.material_id,))
    cursor.execute(
        "UPDATE keys SET current_material = ? WHERE key_id = ? AND current_material IS NULL",
        (event.material_id, key_id),
    )
    cursor.execute(
        "UPDATE keys SET state = 'Enabled' WHERE key_id = ? AND state = 'PendingImport' "
        "AND current_material = ?",
        (key_id, event.material_id),
    )
    if event.valid_to is None:
        cursor.execute(
            "DELETE FROM expiring_materials WHERE key_id = ? AND material_id = ?",
            (key_id, event.material_id),
        )
    else:
        cursor.execute(
            "INSERT OR REPLACE INTO expiring_materials VALUES (?, ?, ?)",
            (key_id, event.material_id, _epoch(event.valid_to)),
        )


@project.register(Cmk.MaterialDeleted)
@project.register(Cmk.MaterialExpired)
def _material_removed(
    event: Cmk.MaterialDeleted | Cmk.MaterialExpired, cursor: SQLiteCursor
) -> None:
    key_id = str(event.originator_id)
    for material_id in event.material_ids:
        cursor.execute(
            "DELETE FROM expiring_materials WHERE key_id = ? AND material_id = ?",
            (key_id, material_id),
        )
        cursor.execute(
            "INSERT OR REPLACE INTO removed_materials VALUES (?, ?)", (material_id, key_id)
        )
        cursor.execute(
            "UPDATE keys SET state = 'PendingImport' WHERE key_id = ? AND current_material = ?",
            (key_id, material_id),
        )


@project.register
def _(event: Cmk.Enabled, cursor: SQLiteCursor) -> None:
    _set_state(cursor, event, "Enabled")


@project.register
def _(event: Cmk.Disabled, cursor: SQLiteCursor) -> None:
    _set_state(cursor, event, "Disabled")


@project.register
def _(event: Cmk.TagsChanged, cursor: SQLiteCursor) -> None:
    key_id = str(event.originator_id)
    for tag_key in event.removed_keys:
        cursor.execute("DELETE FROM tags WHERE key_id = ? AND tag_key = ?", (key_id, tag_key))
    _set_tags(cursor, key_id, event.set_tags)


@project.register
def _(event: Cmk.RotationEnabled, cursor: SQLiteCursor) -> None:
    _set_rotation(cursor, event, event.next_rotation)


@project.register
def _(event: Cmk.RotationDisabled, cursor: SQLiteCursor) -> None:
    _set_rotation(cursor, event, None)


@project.register
def _(event: Cmk.Rotated, cursor: SQLiteCursor) -> None:
    cursor.execute(
        "UPDATE keys SET current_material = ? WHERE key_id = ?",
        (event.material_id, str(event.originator_id)),
    )
    if event.next_rotation is not None:
        _set_rotation(cursor, event, event.next_rotation)


@project.register
def _(event: Cmk.DeletionScheduled, cursor: SQLiteCursor) -> None:
    cursor.execute(
        "UPDATE keys SET state = 'PendingDeletion', deletion_date = ? WHERE key_id = ?",
        (_epoch(event.deletion_date), str(event.originator_id)),
    )


@project.register
def _(event: Cmk.DeletionCancelled, cursor: SQLiteCursor) -> None:
    cursor.execute(
        "UPDATE keys SET state = 'Disabled', deletion_date = NULL WHERE key_id = ?",
        (str(event.originator_id),),
    )


@project.register
def _(event: Cmk.Deleted, cursor: SQLiteCursor) -> None:
    key_id = str(event.originator_id)
    cursor.execute(
        "UPDATE keys SET state = 'Deleted', next_rotation = NULL WHERE key_id = ?", (key_id,)
    )
    cursor.execute("DELETE FROM tags WHERE key_id = ?", (key_id,))
    cursor.execute("DELETE FROM expiring_materials WHERE key_id = ?", (key_id,))


@project.register
def _(event: Alias.Created, cursor: SQLiteCursor) -> None:
    moment = _epoch(event.timestamp)
    cursor.execute(
        "INSERT OR REPLACE INTO aliases VALUES (?, ?, ?, ?, ?, ?, ?)",
        (
            str(event.originator_id),
            event.account,
            event.region,
            event.name,
            event.target_key_id,
            moment,
            moment,
        ),
    )


@project.register
def _(event: Alias.Retargeted, cursor: SQLiteCursor) -> None:
    moment = _epoch(event.timestamp)
    cursor.execute(
        "UPDATE aliases SET target_key_id = ?, updated = ?, "
        "created = CASE WHEN ? THEN ? ELSE created END WHERE alias_id = ?",
        (event.target_key_id, moment, event.recreated, moment, str(event.originator_id)),
    )


@project.register
def _(event: Alias.Deleted, cursor: SQLiteCursor) -> None:
    # The row stays (keeping name and id) but leaves every listing until recreated.
    cursor.execute(
        "UPDATE aliases SET target_key_id = NULL, updated = ? WHERE alias_id = ?",
        (_epoch(event.timestamp), str(event.originator_id)),
    )


def _set_rotation(cursor: SQLiteCursor, event: Cmk.Event, moment: datetime | None) -> None:
    cursor.execute(
        "UPDATE keys SET next_rotation = ? WHERE key_id = ?",
        (None if moment is None else _epoch(moment), str(event.originator_id)),
    )


def _set_state(cursor: SQLiteCursor, event: Cmk.Event, state: str) -> None:
    cursor.execute("UPDATE keys SET state = ? WHERE key_id = ?", (state, str(event.originator_id)))


def _set_tags(cursor: SQLiteCursor, key_id: str, tags: dict[str, str]) -> None:
    for tag_key, tag_value in tags.items():
        cursor.execute("INSERT OR REPLACE INTO tags VALUES (?, ?, ?)", (key_id, tag_key, tag_value))
