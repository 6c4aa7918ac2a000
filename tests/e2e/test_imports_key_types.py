"""Imported material for HMAC, RSA and ECC keys: made offline with `cryptography`, wrapped
with every wrapping algorithm it fits, then used in keyledger and checked offline."""

from __future__ import annotations

import hmac as std_hmac
import os
from functools import cache
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa

from tests.e2e.byok import WRAPPING_ALGORITHMS, external_key, import_material
from tests.e2e.test_key_types import kms_m, shared
from tests.support import refused

MESSAGE = b"imported material signs this"
__all__ = ["kms_m", "shared"]  # one server for the module, as in the key type tests
_CURVES = {
    "ECC_NIST_P256": ec.SECP256R1,
    "ECC_NIST_P384": ec.SECP384R1,
    "ECC_NIST_P521": ec.SECP521R1,
    "ECC_SECG_P256K1": ec.SECP256K1,
}
# (KeySpec, KeyUsage, a signing/encryption/MAC algorithm)
KEY_TYPES = [
    ("HMAC_224", "GENERATE_VERIFY_MAC", "HMAC_SHA_224"),
    ("HMAC_256", "GENERATE_VERIFY_MAC", "HMAC_SHA_256"),
    ("HMAC_384", "GENERATE_VERIFY_MAC", "HMAC_SHA_384"),
    ("HMAC_512", "GENERATE_VERIFY_MAC", "HMAC_SHA_512"),
    ("RSA_2048", "SIGN_VERIFY", "RSASSA_PSS_SHA_256"),
    ("RSA_2048", "ENCRYPT_DECRYPT", "RSAES_OAEP_SHA_256"),
    ("ECC_NIST_P256", "SIGN_VERIFY", "ECDSA_SHA_256"),
    ("ECC_NIST_P384", "SIGN_VERIFY", "ECDSA_SHA_384"),
    ("ECC_NIST_P521", "SIGN_VERIFY", "ECDSA_SHA_512"),
    ("ECC_SECG_P256K1", "SIGN_VERIFY", "ECDSA_SHA_256"),
    ("ECC_NIST_P256", "KEY_AGREEMENT", "ECDH"),
    ("ECC_NIST_EDWARDS25519", "SIGN_VERIFY", "ED25519_SHA_512"),
]
# Largest material each RSA_2048 OAEP wrapping carries (RFC 8017: k - 2*hLen - 2).
_OAEP_CAP = {"RSAES_OAEP_SHA_1": 214, "RSAES_OAEP_SHA_256": 190}


@cache
def offline_material(key_spec: str) -> bytes:
    """The customer's key, made outside keyledger: raw bytes for HMAC, PKCS#8 DER else."""
    if key_spec.startswith("HMAC_"):
        return os.urandom(int(key_spec[5:]) // 8)
    if key_spec.startswith("RSA_"):
        key: Any = rsa.generate_private_key(65537, int(key_spec[4:]))
    elif key_spec == "ECC_NIST_EDWARDS25519":
        key = ed25519.Ed25519PrivateKey.generate()
    else:
        key = ec.generate_private_key(_CURVES[key_spec]())
    return key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _cases() -> list[Any]:
    cases = []
    for spec, usage, algorithm in KEY_TYPES:
        size = len(offline_material(spec))
        for wrapping in WRAPPING_ALGORITHMS:
            if size <= _OAEP_CAP.get(wrapping, 1 << 20):
                cases.append(
                    pytest.param(spec, usage, algorithm, wrapping, id=f"{spec}-{usage}-{wrapping}")
                )
    return cases


@pytest.mark.parametrize(("spec", "usage", "algorithm", "wrapping"), _cases())
def test_imported_material_works_like_the_offline_key(
    kms_m: Any, spec: str, usage: str, algorithm: str, wrapping: str
) -> None:
    kms = kms_m
    material = offline_material(spec)
    key_id = external_key(kms, KeySpec=spec, KeyUsage=usage)
    assert kms.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"] == "PendingImport"
    import_material(kms, key_id, material, wrapping)
    metadata = kms.describe_key(KeyId=key_id)["KeyMetadata"]
    assert (metadata["KeyState"], metadata["Origin"]) == ("Enabled", "EXTERNAL")
    if spec.startswith("HMAC_"):
        mac = kms.generate_mac(KeyId=key_id, Message=MESSAGE, MacAlgorithm=algorithm)["Mac"]
        digest = "sha" + algorithm.rsplit("_", 1)[1]
        assert mac == std_hmac.new(material, MESSAGE, digest).digest()
        return
    private: Any = serialization.load_der_private_key(material, None)
    ours = private.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert kms.get_public_key(KeyId=key_id)["PublicKey"] == ours
    if usage == "ENCRYPT_DECRYPT":  # encrypted offline, decrypted by keyledger
        oaep = padding.OAEP(
            mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None
        )
        blob = private.public_key().encrypt(b"to the imported key", oaep)
        answer = kms.decrypt(KeyId=key_id, CiphertextBlob=blob, EncryptionAlgorithm=algorithm)
        assert answer["Plaintext"] == b"to the imported key"
    elif usage == "KEY_AGREEMENT":
        peer = ec.generate_private_key(ec.SECP256R1())
        peer_public = peer.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        secret = kms.derive_shared_secret(
            KeyId=key_id, KeyAgreementAlgorithm="ECDH", PublicKey=peer_public
        )["SharedSecret"]
        assert secret == peer.exchange(ec.ECDH(), private.public_key())
    else:  # signed by keyledger, verified offline with the customer's own key
        signature = kms.sign(KeyId=key_id, Message=MESSAGE, SigningAlgorithm=algorithm)["Signature"]
        public = private.public_key()
        if algorithm.startswith("RSASSA_PSS"):
            pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
            public.verify(signature, MESSAGE, pss, hashes.SHA256())
        elif algorithm.startswith("ECDSA"):
            chosen = {"256": hashes.SHA256, "384": hashes.SHA384, "512": hashes.SHA512}
            public.verify(signature, MESSAGE, ec.ECDSA(chosen[algorithm[-3:]]()))
        else:
            public.verify(signature, MESSAGE)


@pytest.mark.parametrize(
    ("spec", "usage", "wrong"),
    [
        ("HMAC_256", "GENERATE_VERIFY_MAC", os.urandom(16)),  # shorter than 32 bytes
        ("HMAC_224", "GENERATE_VERIFY_MAC", os.urandom(65)),  # longer than 64 bytes
        ("ECC_NIST_P256", "SIGN_VERIFY", b"not a PKCS#8 private key"),
        ("ECC_NIST_P256", "SIGN_VERIFY", offline_material("ECC_NIST_P384")),  # other curve
        ("ECC_NIST_P384", "SIGN_VERIFY", offline_material("ECC_NIST_EDWARDS25519")),
        ("ECC_NIST_EDWARDS25519", "SIGN_VERIFY", offline_material("ECC_NIST_P256")),
        ("RSA_3072", "SIGN_VERIFY", offline_material("RSA_2048")),  # other size
    ],
    ids=[
        "hmac-short",
        "hmac-long",
        "garbage",
        "curve",
        "ed25519-for-p384",
        "p256-for-ed25519",
        "rsa-size",
    ],
)
def test_material_of_the_wrong_type_or_size_is_refused(
    kms_m: Any, spec: str, usage: str, wrong: bytes
) -> None:
    key_id = external_key(kms_m, KeySpec=spec, KeyUsage=usage)
    code, _ = refused(
        import_material,
        kms=kms_m,
        key_id=key_id,
        material=wrong,
        algorithm="RSA_AES_KEY_WRAP_SHA_256",
    )
    assert code == "IncorrectKeyMaterialException"
    assert kms_m.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"] == "PendingImport"


def test_asymmetric_reimport_same_key_and_refusal_of_another(kms_m: Any) -> None:
    key_id = external_key(kms_m, KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")
    import_material(kms_m, key_id, offline_material("ECC_NIST_P256"))
    kms_m.delete_imported_key_material(KeyId=key_id)
    assert kms_m.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"] == "PendingImport"
    other = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    code, _ = refused(import_material, kms=kms_m, key_id=key_id, material=other)
    assert code == "IncorrectKeyMaterialException"
    import_material(kms_m, key_id, offline_material("ECC_NIST_P256"))
    assert kms_m.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"] == "Enabled"
    # Asymmetric keys take no NEW_KEY_MATERIAL once they have material.
    code, _ = refused(
        import_material, kms=kms_m, key_id=key_id, material=other, ImportType="NEW_KEY_MATERIAL"
    )
    assert code == "UnsupportedOperationException"


@pytest.mark.parametrize("spec", ["ML_DSA_44", "ML_DSA_87"])
def test_post_quantum_keys_cannot_be_external(kms_m: Any, spec: str) -> None:
    code, message = refused(
        kms_m.create_key, Origin="EXTERNAL", KeySpec=spec, KeyUsage="SIGN_VERIFY"
    )
    assert (code, message) == (
        "UnsupportedOperationException",
        f"KeySpec {spec} does not support imported key material in keyledger.",
    )
