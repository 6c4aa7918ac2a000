"""The key catalogue and the primitives behind it, without a server: what no wire model
of the pinned botocore reaches yet (ML-KEM) is checked here."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import mlkem

from domain import key_material
from domain.errors import InvalidKeyUsageError, UnsupportedOperationError, ValidationError
from domain.grants import operations_fitting
from domain.key_specs import KEY_SPECS, check_create

BASE = {"DescribeKey", "CreateGrant", "RetireGrant"}


@pytest.mark.parametrize(
    ("spec", "usage", "expected"),
    [
        (
            "SYMMETRIC_DEFAULT",
            "ENCRYPT_DECRYPT",
            BASE
            | {"Encrypt", "Decrypt", "ReEncryptFrom", "ReEncryptTo", "GenerateDataKey"}
            | {"GenerateDataKeyWithoutPlaintext", "GenerateDataKeyPair"}
            | {"GenerateDataKeyPairWithoutPlaintext"},
        ),
        (
            "RSA_2048",
            "ENCRYPT_DECRYPT",
            BASE | {"Encrypt", "Decrypt", "ReEncryptFrom", "ReEncryptTo", "GetPublicKey"},
        ),
        ("RSA_4096", "SIGN_VERIFY", BASE | {"Sign", "Verify", "GetPublicKey"}),
        ("ECC_NIST_P256", "KEY_AGREEMENT", BASE | {"DeriveSharedSecret", "GetPublicKey"}),
        ("HMAC_512", "GENERATE_VERIFY_MAC", BASE | {"GenerateMac", "VerifyMac"}),
        (
            "ML_KEM_768",
            "ENCAPSULATE_DECAPSULATE",
            BASE | {"Encapsulate", "Decapsulate", "GetPublicKey"},
        ),
    ],
)
def test_grant_operations_fit_the_key(spec: str, usage: str, expected: set[str]) -> None:
    assert operations_fitting(spec, usage) == expected


def test_create_rules() -> None:
    assert check_create("SYMMETRIC_DEFAULT", None) == "ENCRYPT_DECRYPT"
    assert check_create("ECC_NIST_P384", "KEY_AGREEMENT") == "KEY_AGREEMENT"
    for spec in KEY_SPECS:
        if KEY_SPECS[spec].unsupported is None:
            for usage in KEY_SPECS[spec].usages:
                assert check_create(spec, usage) == usage
    with pytest.raises(ValidationError):
        check_create("HMAC_224", None)
    with pytest.raises(UnsupportedOperationError, match="ML_KEM_512"):
        check_create("ML_KEM_512", "ENCAPSULATE_DECAPSULATE")
    with pytest.raises(UnsupportedOperationError):
        check_create("SM2", "ENCRYPT_DECRYPT")


@pytest.mark.parametrize("spec", ["ML_KEM_768", "ML_KEM_1024"])
def test_ml_kem_material_is_the_seed_form_and_encapsulates(spec: str) -> None:
    material = key_material.generate(spec)
    private = serialization.load_der_private_key(material, password=None)
    assert isinstance(private, (mlkem.MLKEM768PrivateKey, mlkem.MLKEM1024PrivateKey))
    # PKCS#8 with the 64-byte seed (d || z) only, as the LAMPS ML-KEM profile's "seed"
    # CHOICE: OCTET STRING { [0] 64 bytes } at the end of the structure.
    assert material[-66:-64] == b"\x80\x40"
    public = serialization.load_der_public_key(key_material.public_key_der(material))
    secret, ciphertext = key_material.encapsulate(spec, material, "ML_KEM")
    assert key_material.decapsulate(spec, material, "ML_KEM", ciphertext) == secret
    theirs, sent = public.encapsulate()  # type: ignore[union-attr]
    assert key_material.decapsulate(spec, material, "ML_KEM", sent) == theirs
    with pytest.raises(InvalidKeyUsageError):
        key_material.encapsulate(spec, material, "ECDH")
    with pytest.raises(ValidationError):
        key_material.decapsulate(spec, material, "ML_KEM", b"short")


def test_ml_dsa_material_is_the_seed_form() -> None:
    material = key_material.generate("ML_DSA_65")
    assert material[-34:-32] == b"\x80\x20"  # [0] 32-byte seed (xi)
