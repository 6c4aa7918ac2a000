"""Expiry of imported key material and of import tokens, and crypto-shredding at rest,
against `keyledger serve --dev-clock` (restarts between import and expiry included)."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

from eventstore.keystore import WrappingKeyMissing
from tests.e2e.byok import external_key, import_material, wrap
from tests.e2e.test_lifecycle import files_holding, servers, start, wrapped_rows
from tests.integration.stores import ledger_at
from tests.support import ProcessServer, advance, refused

pytestmark = pytest.mark.slow
__all__ = ["servers"]  # the fixture, shared with the lifecycle tests

DAY = 86_400


def _wrapping_key_id(token: bytes) -> str:
    """The wrapping key an import token names (bytes 17..33 of its authenticated body)."""
    return token[17:33].hex()


def _service_events(data_dir: Path, key_id: str) -> list[tuple[str, dict[str, Any]]]:
    events = []
    with ledger_at(data_dir) as ledger:
        for notification in ledger.recorder.select_notifications(start=1, limit=100_000):
            event = ledger.mapper.to_domain_event(notification)
            if str(event.originator_id) == key_id:
                events.append((type(event).__name__, getattr(event, "request", None) or {}))
    return events


def test_material_expires_after_a_restart_and_comes_back_when_imported_again(
    servers: list[ProcessServer], tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    first = start(servers, data_dir)
    kms = first.client()
    key_id = external_key(kms)
    material = os.urandom(32)
    valid_to = datetime.now(UTC) + timedelta(days=2)
    import_material(kms, key_id, material, ExpirationModel="KEY_MATERIAL_EXPIRES", ValidTo=valid_to)
    blob = kms.encrypt(KeyId=key_id, Plaintext=b"until expiry")["CiphertextBlob"]
    first.stop()

    second = start(servers, data_dir)
    kms = second.client()
    advance(second, DAY)
    assert kms.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"] == "Enabled"
    assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == b"until expiry"
    advance(second, 2 * DAY)
    metadata = kms.describe_key(KeyId=key_id)["KeyMetadata"]
    assert metadata["KeyState"] == "PendingImport"
    assert "ValidTo" not in metadata
    code, message = refused(kms.decrypt, CiphertextBlob=blob)
    assert (code, message) == ("KMSInvalidStateException", f"{metadata['Arn']} is pending import.")
    assert wrapped_rows(data_dir, key_id) == {}  # crypto-shredded
    # The same material, imported again, decrypts what was made before expiry.
    import_material(kms, key_id, material)
    assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == b"until expiry"
    second.stop()

    events = _service_events(data_dir, key_id)
    expired = [request for name, request in events if name == "MaterialExpired"]
    assert len(expired) == 1
    assert expired[0]["event_type"] == "AwsServiceEvent"
    assert expired[0]["operation"] == "DeleteExpiredKeyMaterial"


def test_an_import_token_expires_after_24_hours_and_its_private_key_is_destroyed(
    servers: list[ProcessServer], tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    server = start(servers, data_dir)
    kms = server.client()
    key_id = external_key(kms)
    params = kms.get_parameters_for_import(
        KeyId=key_id, WrappingAlgorithm="RSAES_OAEP_SHA_256", WrappingKeySpec="RSA_2048"
    )
    encrypted = wrap(params["PublicKey"], "RSAES_OAEP_SHA_256", os.urandom(32))
    advance(server, 23 * 3600)
    with ledger_at(data_dir) as ledger:  # the private half is still there, wrapped
        ledger.keystore.import_key(UUID(key_id), _wrapping_key_id(params["ImportToken"]))
    advance(server, 2 * 3600)
    code, _ = refused(
        kms.import_key_material,
        KeyId=key_id,
        ImportToken=params["ImportToken"],
        EncryptedKeyMaterial=encrypted,
    )
    assert code == "ExpiredImportTokenException"
    server.stop()
    with ledger_at(data_dir) as ledger, pytest.raises(WrappingKeyMissing):
        ledger.keystore.import_key(UUID(key_id), _wrapping_key_id(params["ImportToken"]))


def test_no_imported_material_or_import_key_at_rest_and_nothing_after_deletion(
    servers: list[ProcessServer], tmp_path: Path
) -> None:
    """The at-rest byte scan: imported material and import private keys never appear in
    plaintext in any file of the data directory (WAL included); after
    DeleteImportedKeyMaterial not even the root-wrapped wrapping key is left."""
    data_dir = tmp_path / "data"
    server = start(servers, data_dir)
    kms = server.client()
    key_id = external_key(kms)
    material = os.urandom(32)
    unused = kms.get_parameters_for_import(
        KeyId=key_id, WrappingAlgorithm="RSA_AES_KEY_WRAP_SHA_256", WrappingKeySpec="RSA_3072"
    )
    used = kms.get_parameters_for_import(
        KeyId=key_id, WrappingAlgorithm="RSAES_OAEP_SHA_1", WrappingKeySpec="RSA_2048"
    )
    material_id = kms.import_key_material(
        KeyId=key_id,
        ImportToken=used["ImportToken"],
        EncryptedKeyMaterial=wrap(used["PublicKey"], "RSAES_OAEP_SHA_1", material),
    )["KeyMaterialId"]
    server.stop()

    with ledger_at(data_dir) as ledger:
        keystore = ledger.keystore
        unused_private = keystore.import_key(UUID(key_id), _wrapping_key_id(unused["ImportToken"]))
        with pytest.raises(WrappingKeyMissing):  # destroyed once used
            keystore.import_key(UUID(key_id), _wrapping_key_id(used["ImportToken"]))
        wrapping_key = keystore.wrapping_key(UUID(key_id), material_id)
    rows = wrapped_rows(data_dir, key_id)
    assert list(rows) == [material_id]
    assert files_holding(data_dir, [material, unused_private, wrapping_key]) == []

    server = start(servers, data_dir)
    server.client().delete_imported_key_material(KeyId=key_id)
    server.stop()
    assert wrapped_rows(data_dir, key_id) == {}
    assert files_holding(data_dir, [material, wrapping_key, rows[material_id]]) == []
