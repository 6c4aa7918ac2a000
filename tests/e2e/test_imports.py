"""Imported key material (bring your own key) through boto3, against a real server.

The customer's wrapping is done with `cryptography` outside keyledger (tests/e2e/byok.py).
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.e2e.byok import WRAPPING_ALGORITHMS, external_key, import_material, wrap
from tests.support import refused

MATERIAL = bytes(range(32))


def test_an_external_key_starts_pending_import_and_refuses_use(kms: Any) -> None:
    created = kms.create_key(Origin="EXTERNAL")["KeyMetadata"]
    assert created["KeyState"] == "PendingImport"
    assert created["Origin"] == "EXTERNAL"
    assert created["Enabled"] is False
    arn = created["Arn"]
    pending = ("KMSInvalidStateException", f"{arn} is pending import.")
    assert refused(kms.encrypt, KeyId=arn, Plaintext=b"x") == pending
    assert refused(kms.generate_data_key, KeyId=arn, KeySpec="AES_256") == pending
    assert refused(kms.enable_key, KeyId=arn) == pending
    # Key-state table: tags, description and deletion work while pending import.
    kms.tag_resource(KeyId=arn, Tags=[{"TagKey": "t", "TagValue": "v"}])
    kms.update_key_description(KeyId=arn, Description="byok")
    kms.schedule_key_deletion(KeyId=arn, PendingWindowInDays=7)


@pytest.mark.parametrize("algorithm", WRAPPING_ALGORITHMS)
def test_symmetric_round_trip_for_each_wrapping_algorithm(kms: Any, algorithm: str) -> None:
    key_id = external_key(kms)
    material = os.urandom(32)
    answer = import_material(kms, key_id, material, algorithm)
    assert answer["KeyId"].endswith(key_id)
    metadata = kms.describe_key(KeyId=key_id)["KeyMetadata"]
    assert metadata["KeyState"] == "Enabled"
    assert metadata["ExpirationModel"] == "KEY_MATERIAL_DOES_NOT_EXPIRE"
    assert metadata["CurrentKeyMaterialId"] == answer["KeyMaterialId"]
    blob = kms.encrypt(KeyId=key_id, Plaintext=b"secret")["CiphertextBlob"]
    assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == b"secret"


@pytest.mark.parametrize("wrapping_key_spec", ["RSA_3072", "RSA_4096"])
def test_larger_wrapping_keys(kms: Any, wrapping_key_spec: str) -> None:
    key_id = external_key(kms)
    import_material(kms, key_id, MATERIAL, "RSA_AES_KEY_WRAP_SHA_256", wrapping_key_spec)
    assert kms.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"] == "Enabled"


def test_get_parameters_for_import_answers(kms: Any) -> None:
    key_id = external_key(kms)
    before = datetime.now(UTC)
    params = kms.get_parameters_for_import(
        KeyId=key_id, WrappingAlgorithm="RSAES_OAEP_SHA_256", WrappingKeySpec="RSA_2048"
    )
    assert params["KeyId"].endswith(key_id)
    valid_to = params["ParametersValidTo"]
    assert timedelta(hours=23, minutes=59) < valid_to - before <= timedelta(hours=24, seconds=1)
    assert len(params["PublicKey"]) > 256 and params["ImportToken"]


def test_import_into_an_aws_kms_key_is_unsupported(kms: Any) -> None:
    arn = kms.create_key()["KeyMetadata"]["Arn"]
    expected = (
        "UnsupportedOperationException",
        f"{arn} origin is AWS_KMS which is not valid for this operation.",
    )
    params = {"WrappingAlgorithm": "RSAES_OAEP_SHA_256", "WrappingKeySpec": "RSA_2048"}
    assert refused(kms.get_parameters_for_import, KeyId=arn, **params) == expected
    assert refused(kms.delete_imported_key_material, KeyId=arn) == expected


def test_reimporting_the_same_material_works_and_different_material_is_refused(
    kms: Any,
) -> None:
    key_id = external_key(kms)
    first = import_material(kms, key_id, MATERIAL)
    again = import_material(kms, key_id, MATERIAL, "RSA_AES_KEY_WRAP_SHA_1")
    assert again["KeyMaterialId"] == first["KeyMaterialId"]
    code, _ = refused(import_material, kms=kms, key_id=key_id, material=os.urandom(32))
    assert code == "IncorrectKeyMaterialException"
    code, _ = refused(
        import_material,
        kms=kms,
        key_id=key_id,
        material=MATERIAL,
        KeyMaterialId="0" * 64,
    )
    assert code == "IncorrectKeyMaterialException"


def test_token_errors(kms: Any, server: Any) -> None:
    key_id, other = external_key(kms), external_key(kms)
    params = kms.get_parameters_for_import(
        KeyId=key_id, WrappingAlgorithm="RSAES_OAEP_SHA_256", WrappingKeySpec="RSA_2048"
    )
    encrypted = wrap(params["PublicKey"], "RSAES_OAEP_SHA_256", MATERIAL)
    token = params["ImportToken"]
    # A token of another key.
    code, _ = refused(
        kms.import_key_material, KeyId=other, ImportToken=token, EncryptedKeyMaterial=encrypted
    )
    assert code == "InvalidImportTokenException"
    # A forged or altered token.
    altered = token[:-1] + bytes([token[-1] ^ 1])
    code, _ = refused(
        kms.import_key_material, KeyId=key_id, ImportToken=altered, EncryptedKeyMaterial=encrypted
    )
    assert code == "InvalidImportTokenException"
    # Wrongly wrapped material.
    code, _ = refused(
        kms.import_key_material,
        KeyId=key_id,
        ImportToken=token,
        EncryptedKeyMaterial=os.urandom(256),
    )
    assert code == "InvalidCiphertextException"
    # Material of the wrong length.
    short = wrap(params["PublicKey"], "RSAES_OAEP_SHA_256", MATERIAL[:16])
    code, _ = refused(
        kms.import_key_material, KeyId=key_id, ImportToken=token, EncryptedKeyMaterial=short
    )
    assert code == "IncorrectKeyMaterialException"
    # The token still works after failures; once used, it is spent.
    kms.import_key_material(KeyId=key_id, ImportToken=token, EncryptedKeyMaterial=encrypted)
    code, _ = refused(
        kms.import_key_material, KeyId=key_id, ImportToken=token, EncryptedKeyMaterial=encrypted
    )
    assert code == "InvalidImportTokenException"


def test_expiry_parameters_are_checked(kms: Any) -> None:
    key_id = external_key(kms)
    code, message = refused(
        import_material,
        kms=kms,
        key_id=key_id,
        material=MATERIAL,
        ExpirationModel="KEY_MATERIAL_EXPIRES",
    )
    assert (code, message) == (
        "ValidationException",
        "A validTo date must be set if the ExpirationModel is KEY_MATERIAL_EXPIRES",
    )
    valid_to = datetime.now(UTC) + timedelta(days=3)
    import_material(kms, key_id, MATERIAL, ExpirationModel="KEY_MATERIAL_EXPIRES", ValidTo=valid_to)
    metadata = kms.describe_key(KeyId=key_id)["KeyMetadata"]
    assert metadata["ExpirationModel"] == "KEY_MATERIAL_EXPIRES"
    assert abs((metadata["ValidTo"] - valid_to).total_seconds()) < 1


def test_delete_then_reimport_the_same_material_decrypts_old_ciphertexts(kms: Any) -> None:
    key_id = external_key(kms)
    import_material(kms, key_id, MATERIAL)
    blob = kms.encrypt(KeyId=key_id, Plaintext=b"before")["CiphertextBlob"]
    deleted = kms.delete_imported_key_material(KeyId=key_id)
    assert deleted["KeyId"].endswith(key_id)
    metadata = kms.describe_key(KeyId=key_id)["KeyMetadata"]
    assert metadata["KeyState"] == "PendingImport"
    assert "ExpirationModel" not in metadata
    code, _ = refused(kms.decrypt, CiphertextBlob=blob)
    assert code == "KMSInvalidStateException"
    # Deleting again has no effect (key-state table: PendingImport, "no effect").
    kms.delete_imported_key_material(KeyId=key_id)
    # Different material is refused; the same material brings the key back.
    code, _ = refused(import_material, kms=kms, key_id=key_id, material=os.urandom(32))
    assert code == "IncorrectKeyMaterialException"
    import_material(kms, key_id, MATERIAL)
    assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == b"before"


@pytest.mark.parametrize(
    ("algorithm", "spec"), [("RSAES_PKCS1_V1_5", "RSA_2048"), ("RSAES_OAEP_SHA_256", "SM2")]
)
def test_unsupported_wrapping_choices(kms: Any, algorithm: str, spec: str) -> None:
    key_id = external_key(kms)
    code, _ = refused(
        kms.get_parameters_for_import,
        KeyId=key_id,
        WrappingAlgorithm=algorithm,
        WrappingKeySpec=spec,
    )
    assert code == "ValidationException"


def test_on_demand_rotation_to_new_imported_material(kms: Any) -> None:
    key_id = external_key(kms)
    first = import_material(kms, key_id, MATERIAL, KeyMaterialDescription="generation 1")
    old_blob = kms.encrypt(KeyId=key_id, Plaintext=b"gen 1")["CiphertextBlob"]
    # Nothing pending rotation yet; automatic rotation is never for imported keys.
    code, _ = refused(kms.rotate_key_on_demand, KeyId=key_id)
    assert code == "UnsupportedOperationException"
    code, _ = refused(kms.enable_key_rotation, KeyId=key_id)
    assert code == "UnsupportedOperationException"
    second_material = os.urandom(32)
    valid_to = datetime.now(UTC) + timedelta(days=30)
    second = import_material(
        kms,
        key_id,
        second_material,
        ImportType="NEW_KEY_MATERIAL",
        KeyMaterialDescription="generation 2",
        ExpirationModel="KEY_MATERIAL_EXPIRES",
        ValidTo=valid_to,
    )
    assert second["KeyMaterialId"] != first["KeyMaterialId"]
    listed = kms.list_key_rotations(KeyId=key_id, IncludeKeyMaterial="ALL_KEY_MATERIAL")
    states = {r["KeyMaterialId"]: r for r in listed["Rotations"]}
    assert states[first["KeyMaterialId"]]["KeyMaterialState"] == "CURRENT"
    assert states[second["KeyMaterialId"]]["KeyMaterialState"] == "PENDING_ROTATION"
    assert states[second["KeyMaterialId"]]["ImportState"] == "IMPORTED"
    assert states[second["KeyMaterialId"]]["ExpirationModel"] == "KEY_MATERIAL_EXPIRES"
    # A second NEW_KEY_MATERIAL while one is pending is refused.
    code, _ = refused(
        import_material,
        kms=kms,
        key_id=key_id,
        material=os.urandom(32),
        ImportType="NEW_KEY_MATERIAL",
    )
    assert code == "KMSInvalidStateException"
    # Still the old material until RotateKeyOnDemand.
    blob = kms.encrypt(KeyId=key_id, Plaintext=b"x")["CiphertextBlob"]
    assert kms.decrypt(CiphertextBlob=blob)["KeyMaterialId"] == first["KeyMaterialId"]
    kms.rotate_key_on_demand(KeyId=key_id)
    metadata = kms.describe_key(KeyId=key_id)["KeyMetadata"]
    assert metadata["CurrentKeyMaterialId"] == second["KeyMaterialId"]
    assert metadata["ExpirationModel"] == "KEY_MATERIAL_EXPIRES"
    new_blob = kms.encrypt(KeyId=key_id, Plaintext=b"gen 2")["CiphertextBlob"]
    assert kms.decrypt(CiphertextBlob=new_blob)["KeyMaterialId"] == second["KeyMaterialId"]
    assert kms.decrypt(CiphertextBlob=old_blob)["Plaintext"] == b"gen 1"
    rotations = kms.list_key_rotations(KeyId=key_id)["Rotations"]
    assert len(rotations) == 1
    entry = rotations[0]
    assert entry["KeyMaterialId"] == second["KeyMaterialId"]
    assert entry["KeyMaterialState"] == "CURRENT"
    assert entry["RotationType"] == "ON_DEMAND"
    assert entry["KeyMaterialDescription"] == "generation 2"
    assert abs((entry["ValidTo"] - valid_to).total_seconds()) < 1
    listed = kms.list_key_rotations(KeyId=key_id, IncludeKeyMaterial="ALL_KEY_MATERIAL")
    assert [r["KeyMaterialState"] for r in listed["Rotations"]] == ["NON_CURRENT", "CURRENT"]
    # Deleting the old (non-current) material: the key stays Enabled; old blobs fail.
    kms.delete_imported_key_material(KeyId=key_id, KeyMaterialId=first["KeyMaterialId"])
    assert kms.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"] == "Enabled"
    code, message = refused(kms.decrypt, CiphertextBlob=old_blob)
    arn = kms.describe_key(KeyId=key_id)["KeyMetadata"]["Arn"]
    assert (code, message) == (
        "KMSInvalidStateException",
        f"{arn} key material {first['KeyMaterialId']} is pending import.",
    )
    listed = kms.list_key_rotations(KeyId=key_id, IncludeKeyMaterial="ALL_KEY_MATERIAL")
    assert listed["Rotations"][0]["ImportState"] == "PENDING_IMPORT"
    # Imported again (EXISTING_KEY_MATERIAL, named by its id), the old blob opens again.
    import_material(
        kms,
        key_id,
        MATERIAL,
        ImportType="EXISTING_KEY_MATERIAL",
        KeyMaterialId=first["KeyMaterialId"],
    )
    assert kms.decrypt(CiphertextBlob=old_blob)["Plaintext"] == b"gen 1"


def test_policy_conditions_on_wrapping_and_expiry(kms: Any) -> None:
    """kms:WrappingAlgorithm, kms:WrappingKeySpec, kms:ExpirationModel, kms:ValidTo
    (https://docs.aws.amazon.com/kms/latest/developerguide/conditions-kms.html)."""
    root = "arn:aws:iam::000000000000:root"
    horizon = (datetime.now(UTC) + timedelta(days=10)).timestamp()

    def deny(action: str, operator: str, condition: dict[str, Any]) -> dict[str, Any]:
        return {
            "Effect": "Deny",
            "Principal": {"AWS": "*"},
            "Action": action,
            "Resource": "*",
            "Condition": {operator: condition},
        }

    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"AWS": root}, "Action": "kms:*", "Resource": "*"},
            deny("kms:GetParametersForImport", "StringEquals", {"kms:WrappingKeySpec": "RSA_2048"}),
            deny(
                "kms:GetParametersForImport",
                "StringEquals",
                {"kms:WrappingAlgorithm": "RSAES_OAEP_SHA_1"},
            ),
            deny(
                "kms:ImportKeyMaterial",
                "StringEquals",
                {"kms:ExpirationModel": "KEY_MATERIAL_DOES_NOT_EXPIRE"},
            ),
            deny("kms:ImportKeyMaterial", "NumericGreaterThan", {"kms:ValidTo": str(horizon)}),
        ],
    }
    key_id = external_key(kms, Policy=json.dumps(policy))
    for algorithm, spec in (("RSAES_OAEP_SHA_256", "RSA_2048"), ("RSAES_OAEP_SHA_1", "RSA_3072")):
        code, _ = refused(
            kms.get_parameters_for_import,
            KeyId=key_id,
            WrappingAlgorithm=algorithm,
            WrappingKeySpec=spec,
        )
        assert code == "AccessDeniedException"
    options = {"algorithm": "RSAES_OAEP_SHA_256", "wrapping_key_spec": "RSA_3072"}
    code, _ = refused(import_material, kms=kms, key_id=key_id, material=MATERIAL, **options)
    assert code == "AccessDeniedException"
    far = datetime.now(UTC) + timedelta(days=20)
    code, _ = refused(
        import_material,
        kms=kms,
        key_id=key_id,
        material=MATERIAL,
        ExpirationModel="KEY_MATERIAL_EXPIRES",
        ValidTo=far,
        **options,
    )
    assert code == "AccessDeniedException"
    near = datetime.now(UTC) + timedelta(days=5)
    import_material(
        kms,
        key_id,
        MATERIAL,
        ExpirationModel="KEY_MATERIAL_EXPIRES",
        ValidTo=near,
        **options,
    )
    assert kms.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"] == "Enabled"
