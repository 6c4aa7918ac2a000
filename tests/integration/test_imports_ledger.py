"""Imported material in the write model, driven directly: the window between a deletion's
event and the destruction of its wrapping key, and the repair of a crash inside it."""

from __future__ import annotations

import functools
import os
from pathlib import Path
from uuid import UUID

import pytest

from domain.errors import InvalidStateError
from domain.imports import ImportTokens
from domain.values import EXTERNAL
from eventstore.keystore import WrappingKeyMissing
from tests.integration.stores import ledger_at
from tests.unit.test_cmk import CTX

OPTIONS = {
    "import_type": None,
    "key_material_id": None,
    "expiration_model": "KEY_MATERIAL_DOES_NOT_EXPIRE",
    "valid_to": None,
    "description": None,
}


def test_a_reimport_before_the_wrapping_key_is_destroyed_is_refused_cleanly(
    tmp_path: Path,
) -> None:
    with ledger_at(tmp_path) as ledger:
        arn = ledger.run(
            functools.partial(
                ledger.create_key, ctx=CTX, description="", policy=None, tags={}, origin=EXTERNAL
            )
        )["Arn"]
        key_id = arn.rsplit("/", 1)[1]
        material = os.urandom(32)
        material_id = ImportTokens.from_root_key(b"r" * 32).material_id(UUID(key_id), material)
        importing = functools.partial(
            ledger.import_key_material,
            ctx=CTX,
            key_id=key_id,
            material=material,
            material_id=material_id,
            options=OPTIONS,
        )
        ledger.run(importing)
        _, deleted = ledger.run(
            functools.partial(
                ledger.delete_imported_key_material, ctx=CTX, key_id=key_id, material_id=None
            )
        )
        assert deleted == [material_id]
        # The deleting request has not destroyed the wrapping key yet (or crashed first).
        with pytest.raises(InvalidStateError, match="is being deleted; retry the import"):
            ledger.run(importing)
        # The scheduler's repair pass, on the writer thread, destroys it ...
        repair = functools.partial(ledger.shred_removed_materials, material_ids=[material_id])
        assert ledger.run(repair) == 1
        with pytest.raises(WrappingKeyMissing):
            ledger.keystore.wrapping_key(UUID(key_id), material_id)
        # ... and the import then succeeds; a repair now leaves the live material alone.
        ledger.run(importing)
        assert ledger.run(repair) == 0
        assert len(ledger.keystore.wrapping_key(UUID(key_id), material_id)) == 32
