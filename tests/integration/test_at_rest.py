"""What reaches the disk: no plaintext, no key material; every request recorded first."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any
from uuid import UUID

import botocore.exceptions
import pytest

from api.config import Settings
from eventstore.key_operations import KeyOperations
from tests.integration.stores import open_ledger, recorded_request_ids
from tests.support import ThreadServer


def data_files(data_dir: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in data_dir.iterdir() if p.is_file()}


def secrets_of(data_dir: Path, key_ids: list[str]) -> list[bytes]:
    """Key material and wrapping keys, recovered the way only the server can."""
    ledger = open_ledger(data_dir)
    operations = KeyOperations(ledger)
    found = []
    for key_id in key_ids:
        cmk = ledger.load(UUID(key_id))
        assert cmk is not None
        for material_id in cmk.materials:
            found.append(operations._material(cmk, material_id))
            found.append(ledger.keystore.wrapping_key(cmk.id, material_id))
    ledger.close()
    return found


def test_no_file_in_the_data_directory_holds_plaintext_or_key_material(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    server = ThreadServer(Settings(data_dir=data_dir)).start()
    kms = server.client()
    marker = b"KEYLEDGER-PLAINTEXT-MARKER-" + os.urandom(8).hex().encode()
    key_ids, data_keys = [], []
    for _ in range(3):
        key_id = kms.create_key(Description="scan")["KeyMetadata"]["KeyId"]
        key_ids.append(key_id)
        kms.encrypt(KeyId=key_id, Plaintext=marker, EncryptionContext={"k": "v"})
        data_keys.append(kms.generate_data_key(KeyId=key_id, KeySpec="AES_256")["Plaintext"])
    live = data_files(data_dir)  # WAL files included, while the server runs
    server.stop()
    assert any(name.endswith("-wal") for name in live)
    secrets = [marker, *data_keys, *secrets_of(data_dir, key_ids)]
    assert len(secrets) == 1 + 3 + 3 * 2  # marker, data keys, material + wrapping key each
    for files in (live, data_files(data_dir)):
        for name, content in files.items():
            for secret in secrets:
                assert secret not in content, f"a secret was found in {name}"


def test_every_answered_request_is_already_recorded(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    server = ThreadServer(Settings(data_dir=data_dir)).start()
    kms = server.client()
    answered: list[str] = []

    def remember(response: dict[str, Any]) -> None:
        answered.append(response["ResponseMetadata"]["RequestId"])

    key_id = kms.create_key()["KeyMetadata"]["KeyId"]
    remember(kms.describe_key(KeyId=key_id))
    remember(kms.encrypt(KeyId=key_id, Plaintext=b"x"))
    remember(kms.disable_key(KeyId=key_id))
    remember(kms.disable_key(KeyId=key_id))  # changes nothing: recorded as usage
    for call in (
        lambda: kms.encrypt(KeyId=key_id, Plaintext=b"x"),
        lambda: kms.describe_key(KeyId="alias/none"),
    ):
        with pytest.raises(botocore.exceptions.ClientError) as refused:
            call()
        remember(refused.value.response)
    recorded = recorded_request_ids(data_dir)  # read while the server still runs
    server.stop()
    assert set(answered) <= recorded
