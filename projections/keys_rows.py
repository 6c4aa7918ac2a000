"""The keys view (keys, aliases, tags, imported materials) projected from stored rows.

The same rows as ``projections.keys_view.project`` makes from events, for the rebuild's
fast path (projections/fast_path.py); state fields are named as in domain/cmk.py and
domain/alias.py.
"""

from __future__ import annotations

from typing import Any

from domain.alias import Alias
from domain.cmk import Cmk
from domain.values import EXTERNAL
from projections.fast_path import Project, RowProjection, Statements
from projections.stored_log import epoch

State = dict[str, Any]

_INSERT_KEY = (
    "INSERT OR REPLACE INTO keys (key_id, account, region, state, key_manager, "
    "current_material) VALUES (?, ?, ?, ?, ?, ?)"
)
_SET_TAG = "INSERT OR REPLACE INTO tags VALUES (?, ?, ?)"
_DELETE_TAG = "DELETE FROM tags WHERE key_id = ? AND tag_key = ?"
_SET_STATE = "UPDATE keys SET state = ? WHERE key_id = ?"
_SET_ROTATION = "UPDATE keys SET next_rotation = ? WHERE key_id = ?"
_DELETE_EXPIRING = "DELETE FROM expiring_materials WHERE key_id = ? AND material_id = ?"
# A Created event written before key_manager existed decodes to the class default.
_DEFAULT_MANAGER = Cmk.Created.key_manager


def _created(key_id: str, s: State, out: Statements) -> None:
    state = "PendingImport" if s["origin"] == EXTERNAL else "Enabled"
    manager = s.get("key_manager", _DEFAULT_MANAGER)
    material = s["material_id"] or None
    out.add(_INSERT_KEY, (key_id, s["account"], s["region"], state, manager, material))
    for tag_key, tag_value in s["tags"].items():
        out.add(_SET_TAG, (key_id, tag_key, tag_value))


def _material_imported(key_id: str, s: State, out: Statements) -> None:
    material_id = s["material_id"]
    out.add("DELETE FROM removed_materials WHERE material_id = ?", (material_id,))
    out.add(
        "UPDATE keys SET current_material = ? WHERE key_id = ? AND current_material IS NULL",
        (material_id, key_id),
    )
    out.add(
        "UPDATE keys SET state = 'Enabled' WHERE key_id = ? AND state = 'PendingImport' "
        "AND current_material = ?",
        (key_id, material_id),
    )
    if s["valid_to"] is None:
        out.add(_DELETE_EXPIRING, (key_id, material_id))
    else:
        out.add(
            "INSERT OR REPLACE INTO expiring_materials VALUES (?, ?, ?)",
            (key_id, material_id, epoch(s["valid_to"])),
        )


def _material_removed(key_id: str, s: State, out: Statements) -> None:
    for material_id in s["material_ids"]:
        out.add(_DELETE_EXPIRING, (key_id, material_id))
        out.add("INSERT OR REPLACE INTO removed_materials VALUES (?, ?)", (material_id, key_id))
        out.add(
            "UPDATE keys SET state = 'PendingImport' WHERE key_id = ? AND current_material = ?",
            (key_id, material_id),
        )


def _tags_changed(key_id: str, s: State, out: Statements) -> None:
    for tag_key in s["removed_keys"]:
        out.add(_DELETE_TAG, (key_id, tag_key))
    for tag_key, tag_value in s["set_tags"].items():
        out.add(_SET_TAG, (key_id, tag_key, tag_value))


def _state(value: str) -> Project:
    def project(key_id: str, s: State, out: Statements) -> None:
        out.add(_SET_STATE, (value, key_id))

    return project


def _rotation_enabled(key_id: str, s: State, out: Statements) -> None:
    out.add(_SET_ROTATION, (epoch(s["next_rotation"]), key_id))


def _rotation_disabled(key_id: str, s: State, out: Statements) -> None:
    out.add(_SET_ROTATION, (None, key_id))


def _rotated(key_id: str, s: State, out: Statements) -> None:
    out.add("UPDATE keys SET current_material = ? WHERE key_id = ?", (s["material_id"], key_id))
    if s["next_rotation"] is not None:
        out.add(_SET_ROTATION, (epoch(s["next_rotation"]), key_id))


def _deletion_scheduled(key_id: str, s: State, out: Statements) -> None:
    out.add(
        "UPDATE keys SET state = 'PendingDeletion', deletion_date = ? WHERE key_id = ?",
        (epoch(s["deletion_date"]), key_id),
    )


def _deletion_cancelled(key_id: str, s: State, out: Statements) -> None:
    out.add("UPDATE keys SET state = 'Disabled', deletion_date = NULL WHERE key_id = ?", (key_id,))


def _deleted(key_id: str, s: State, out: Statements) -> None:
    out.add("UPDATE keys SET state = 'Deleted', next_rotation = NULL WHERE key_id = ?", (key_id,))
    out.add("DELETE FROM tags WHERE key_id = ?", (key_id,))
    out.add("DELETE FROM expiring_materials WHERE key_id = ?", (key_id,))


def _alias_created(alias_id: str, s: State, out: Statements) -> None:
    moment = epoch(s["timestamp"])
    out.add(
        "INSERT OR REPLACE INTO aliases VALUES (?, ?, ?, ?, ?, ?, ?)",
        (alias_id, s["account"], s["region"], s["name"], s["target_key_id"], moment, moment),
    )


def _alias_retargeted(alias_id: str, s: State, out: Statements) -> None:
    moment = epoch(s["timestamp"])
    out.add(
        "UPDATE aliases SET target_key_id = ?, updated = ?, "
        "created = CASE WHEN ? THEN ? ELSE created END WHERE alias_id = ?",
        (s["target_key_id"], moment, s["recreated"], moment, alias_id),
    )


def _alias_deleted(alias_id: str, s: State, out: Statements) -> None:
    out.add(
        "UPDATE aliases SET target_key_id = NULL, updated = ? WHERE alias_id = ?",
        (epoch(s["timestamp"]), alias_id),
    )


KEYS_ROWS = RowProjection(
    {
        Cmk.Created.TOPIC: _created,
        Cmk.MaterialImported.TOPIC: _material_imported,
        Cmk.MaterialDeleted.TOPIC: _material_removed,
        Cmk.MaterialExpired.TOPIC: _material_removed,
        Cmk.Enabled.TOPIC: _state("Enabled"),
        Cmk.Disabled.TOPIC: _state("Disabled"),
        Cmk.TagsChanged.TOPIC: _tags_changed,
        Cmk.RotationEnabled.TOPIC: _rotation_enabled,
        Cmk.RotationDisabled.TOPIC: _rotation_disabled,
        Cmk.Rotated.TOPIC: _rotated,
        Cmk.DeletionScheduled.TOPIC: _deletion_scheduled,
        Cmk.DeletionCancelled.TOPIC: _deletion_cancelled,
        Cmk.Deleted.TOPIC: _deleted,
        Alias.Created.TOPIC: _alias_created,
        Alias.Retargeted.TOPIC: _alias_retargeted,
        Alias.Deleted.TOPIC: _alias_deleted,
    }
)
