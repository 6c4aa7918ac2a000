"""ML-KEM through boto3: CreateKey, GetPublicKey, Encapsulate/Decapsulate and ML-KEM data key
pairs. botocore's KMS model has them from 1.44; with an older model these tests skip (the
wire layer refuses what its model does not know)."""

from __future__ import annotations

from typing import Any

import botocore.session
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import mlkem

from tests.support import refused

MODEL = botocore.session.get_session().get_service_model("kms")
pytestmark = pytest.mark.skipif(
    "Encapsulate" not in MODEL.operation_names,
    reason="botocore's KMS model has no ML-KEM before 1.44",
)


@pytest.mark.parametrize("spec", ["ML_KEM_768", "ML_KEM_1024"])
def test_ml_kem_keys_encapsulate_and_decapsulate(kms: Any, spec: str) -> None:
    key = kms.create_key(KeySpec=spec, KeyUsage="ENCAPSULATE_DECAPSULATE")["KeyMetadata"]
    assert key["EncapsulationAlgorithms"] == ["ML_KEM"]
    public = serialization.load_der_public_key(kms.get_public_key(KeyId=key["KeyId"])["PublicKey"])
    assert isinstance(public, (mlkem.MLKEM768PublicKey, mlkem.MLKEM1024PublicKey))
    # Encapsulated offline with the public key, decapsulated in keyledger.
    secret, ciphertext = public.encapsulate()
    opened = kms.decapsulate(
        KeyId=key["KeyId"], SharedSecretCiphertextBlob=ciphertext, EncapsulationAlgorithm="ML_KEM"
    )
    assert opened["SharedSecret"] == secret
    made = kms.encapsulate(KeyId=key["KeyId"], EncapsulationAlgorithm="ML_KEM")
    again = kms.decapsulate(
        KeyId=key["KeyId"],
        SharedSecretCiphertextBlob=made["SharedSecretCiphertextBlob"],
        EncapsulationAlgorithm="ML_KEM",
    )
    assert again["SharedSecret"] == made["SharedSecret"]


def test_ml_kem_512_is_refused_and_data_key_pairs_are_seed_form(kms: Any) -> None:
    code, message = refused(
        kms.create_key, KeySpec="ML_KEM_512", KeyUsage="ENCAPSULATE_DECAPSULATE"
    )
    assert (code, "ML_KEM_512" in message) == ("UnsupportedOperationException", True)
    symmetric = kms.create_key()["KeyMetadata"]["KeyId"]
    pair = kms.generate_data_key_pair(KeyId=symmetric, KeyPairSpec="ML_KEM_768")
    private = serialization.load_der_private_key(pair["PrivateKeyPlaintext"], password=None)
    assert isinstance(private, mlkem.MLKEM768PrivateKey)
    assert pair["PrivateKeyPlaintext"][-66:-64] == b"\x80\x40"  # [0] 64-byte seed
    spki = private.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert spki == pair["PublicKey"]
