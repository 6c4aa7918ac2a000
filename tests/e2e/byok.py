"""The customer's side of bring-your-own-key, done outside keyledger with `cryptography`:
wrap material under the public key GetParametersForImport returned."""

from __future__ import annotations

import os
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.keywrap import aes_key_wrap_with_padding

WRAPPING_ALGORITHMS = (
    "RSAES_OAEP_SHA_1",
    "RSAES_OAEP_SHA_256",
    "RSA_AES_KEY_WRAP_SHA_1",
    "RSA_AES_KEY_WRAP_SHA_256",
)


def wrap(public_key_der: bytes, algorithm: str, material: bytes) -> bytes:
    """RSAES_OAEP_*: OAEP of the material. RSA_AES_KEY_WRAP_*: OAEP of a fresh AES-256
    key, then the material wrapped under it with AES key wrap with padding (RFC 5649)."""
    public = serialization.load_der_public_key(public_key_der)
    assert isinstance(public, rsa.RSAPublicKey)
    # SHA-1 in OAEP is what the *_SHA_1 wrapping algorithms are (AWS still offers them).
    digest = hashes.SHA1() if algorithm.endswith("SHA_1") else hashes.SHA256()  # noqa: S303
    oaep = padding.OAEP(mgf=padding.MGF1(digest), algorithm=digest, label=None)
    if algorithm.startswith("RSAES_OAEP"):
        return public.encrypt(material, oaep)
    aes_key = os.urandom(32)
    return public.encrypt(aes_key, oaep) + aes_key_wrap_with_padding(aes_key, material)


def import_material(
    kms: Any,
    key_id: str,
    material: bytes,
    algorithm: str = "RSAES_OAEP_SHA_256",
    wrapping_key_spec: str = "RSA_2048",
    **options: Any,
) -> dict[str, Any]:
    """GetParametersForImport, wrap, ImportKeyMaterial: the whole customer round trip."""
    params = kms.get_parameters_for_import(
        KeyId=key_id, WrappingAlgorithm=algorithm, WrappingKeySpec=wrapping_key_spec
    )
    encrypted = wrap(params["PublicKey"], algorithm, material)
    return kms.import_key_material(
        KeyId=key_id,
        ImportToken=params["ImportToken"],
        EncryptedKeyMaterial=encrypted,
        **options,
    )


def external_key(kms: Any, **options: Any) -> str:
    return kms.create_key(Origin="EXTERNAL", **options)["KeyMetadata"]["KeyId"]
