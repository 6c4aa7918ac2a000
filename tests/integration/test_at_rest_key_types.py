"""Key material of every type on disk: never in the clear, and gone for good once its key
is deleted (crypto-shredding covers asymmetric and HMAC material as it covers symmetric)."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from botocore.exceptions import ClientError
from cryptography.hazmat.primitives import serialization

from eventstore.key_operations import KeyOperations
from eventstore.keystore import WrappingKeyMissing
from tests.e2e.test_lifecycle import files_holding
from tests.integration.stores import open_ledger
from tests.support import ProcessServer, advance, refused

DAY = 86_400
KEY_TYPES = [
    ("RSA_2048", "SIGN_VERIFY"),
    ("RSA_3072", "ENCRYPT_DECRYPT"),
    ("ECC_NIST_P256", "KEY_AGREEMENT"),
    ("ECC_SECG_P256K1", "SIGN_VERIFY"),
    ("ECC_NIST_EDWARDS25519", "SIGN_VERIFY"),
    ("HMAC_256", "GENERATE_VERIFY_MAC"),
    ("ML_DSA_44", "SIGN_VERIFY"),
]


def secrets_of(data_dir: Path, key_ids: list[str]) -> list[bytes]:
    """Each key's plaintext material, its private scalar or seed where it has one, and
    its wrapping key: what only the server can compute."""
    ledger = open_ledger(data_dir)
    operations = KeyOperations(ledger)
    found: list[bytes] = []
    try:
        for key_id in key_ids:
            cmk = ledger.load(UUID(key_id))
            assert cmk is not None
            material = operations.current_material(cmk)
            found += [material, ledger.keystore.wrapping_key(cmk.id, cmk.current_material_id)]
            if cmk.key_spec.startswith(("ECC_NIST_EDWARDS", "ML_DSA")):
                private = serialization.load_der_private_key(material, password=None)
                found.append(private.private_bytes_raw())  # type: ignore[union-attr]
    finally:
        ledger.close()
        ledger.keystore.close()
    return found


def use(kms: Any, key_id: str, spec: str, usage: str) -> None:
    if usage == "SIGN_VERIFY":
        algorithm = kms.describe_key(KeyId=key_id)["KeyMetadata"]["SigningAlgorithms"][0]
        kms.sign(KeyId=key_id, Message=b"m", SigningAlgorithm=algorithm)
    elif usage == "GENERATE_VERIFY_MAC":
        kms.generate_mac(KeyId=key_id, Message=b"m", MacAlgorithm="HMAC_SHA_256")
    else:
        kms.get_public_key(KeyId=key_id)


@pytest.mark.slow
def test_material_of_every_type_is_never_on_disk_and_is_shredded_on_deletion(
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "data"
    server = ProcessServer(data_dir, extra_args=("--dev-clock",)).start()
    try:
        kms = server.client()
        key_ids = []
        for spec, usage in KEY_TYPES:
            key_id = kms.create_key(KeySpec=spec, KeyUsage=usage)["KeyMetadata"]["KeyId"]
            use(kms, key_id, spec, usage)
            key_ids.append(key_id)
        symmetric = kms.create_key()["KeyMetadata"]["KeyId"]
        pair = kms.generate_data_key_pair(KeyId=symmetric, KeyPairSpec="ECC_NIST_P384")
        secrets = secrets_of(data_dir, key_ids)
        assert len(secrets) == 2 * len(KEY_TYPES) + 2
        # Never in the clear, while the server runs (WAL included).
        assert files_holding(data_dir, [*secrets, pair["PrivateKeyPlaintext"]]) == []

        for key_id in key_ids:
            kms.schedule_key_deletion(KeyId=key_id, PendingWindowInDays=7)
        advance(server, 7 * DAY + 1)
        for key_id, (spec, usage) in zip(key_ids, KEY_TYPES, strict=True):
            code, _ = refused(kms.describe_key, KeyId=key_id)
            assert code == "NotFoundException", spec
            with pytest.raises(ClientError):
                use(kms, key_id, spec, usage)
        ledger = open_ledger(data_dir)
        try:
            assert not set(key_ids) & ledger.keystore.key_ids()
            for key_id in key_ids:
                cmk = ledger.load(UUID(key_id))
                assert cmk is not None
                with pytest.raises(WrappingKeyMissing):
                    ledger.keystore.wrapping_key(cmk.id, cmk.current_material_id)
        finally:
            ledger.close()
            ledger.keystore.close()
    finally:
        assert server.stop(signal.SIGTERM) == 0
    assert files_holding(data_dir, secrets) == [], "shredded material is still on disk"
