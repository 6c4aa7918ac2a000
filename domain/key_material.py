"""The one interface the operations use for key material of every type.

Material is what the ledger wraps and stores: PKCS#8 DER for asymmetric keys (ML-DSA and
ML-KEM in the seed form of their IETF LAMPS profiles), the secret bytes for HMAC keys.
Each family of primitives lives in its own module; this one picks the module by key spec,
checks the algorithm fits the spec, and never holds material longer than one call.
"""

from __future__ import annotations

from typing import Any

from cryptography.hazmat.primitives import serialization

from domain import ecc_keys, hmac_keys, pq_keys, rsa_keys
from domain.key_specs import check_algorithm, spec_info

_PKCS8 = (serialization.Encoding.DER, serialization.PrivateFormat.PKCS8)
_SPKI = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
_GENERATORS = {
    "rsa": rsa_keys.generate,
    "ecc": ecc_keys.generate,
    "ed25519": ecc_keys.generate,
    "ml_dsa": pq_keys.generate,
    "ml_kem": pq_keys.generate,
}


def generate(key_spec: str) -> bytes:
    """Fresh material for a key of this spec. CPU-heavy for RSA: never on the event
    loop or the writer thread (cryptography releases the GIL while it works)."""
    family = spec_info(key_spec).family
    if family == "hmac":
        return hmac_keys.generate(key_spec)
    key = _GENERATORS[family](key_spec)
    return bytes(key.private_bytes(*_PKCS8, serialization.NoEncryption()))


def private_key(material: bytes) -> Any:
    """The key object of PKCS#8 material. The RSA consistency check is skipped: the
    material was made here and is authenticated by AES-GCM when unwrapped."""
    return serialization.load_der_private_key(
        material, password=None, unsafe_skip_rsa_key_validation=True
    )


def public_key_der(material: bytes) -> bytes:
    """DER SubjectPublicKeyInfo (RFC 5280), as GetPublicKey returns it."""
    return bytes(private_key(material).public_key().public_bytes(*_SPKI))


def key_pair(pair_spec: str) -> tuple[bytes, bytes]:
    """GenerateDataKeyPair: (PKCS#8 DER private key, DER SPKI public key)."""
    material = generate(pair_spec)
    return material, public_key_der(material)


def sign(key_spec: str, material: bytes, algorithm: str, message_type: str, data: bytes) -> bytes:
    info = spec_info(key_spec)
    check_algorithm(key_spec, algorithm, info.signing)
    key = private_key(material)
    if info.family == "rsa":
        return rsa_keys.sign(key, key_spec, algorithm, message_type, data)
    if info.family == "ecc":
        return ecc_keys.sign_ecdsa(key, key_spec, algorithm, message_type, data)
    if info.family == "ed25519":
        return ecc_keys.sign_ed25519(key, key_spec, algorithm, message_type, data)
    return pq_keys.sign(key, key_spec, message_type, data)


def verify(
    key_spec: str,
    material: bytes,
    algorithm: str,
    message_type: str,
    data: bytes,
    *,
    signature: bytes,
) -> bool:
    info = spec_info(key_spec)
    check_algorithm(key_spec, algorithm, info.signing)
    key = private_key(material).public_key()
    if info.family == "rsa":
        return rsa_keys.verify(key, key_spec, algorithm, message_type, data, signature=signature)
    if info.family == "ecc":
        return ecc_keys.verify_ecdsa(
            key, key_spec, algorithm, message_type, data, signature=signature
        )
    if info.family == "ed25519":
        return ecc_keys.verify_ed25519(
            key, key_spec, algorithm, message_type, data, signature=signature
        )
    return pq_keys.verify(key, key_spec, message_type, data, signature)


def encrypt(key_spec: str, material: bytes, algorithm: str, plaintext: bytes) -> bytes:
    check_algorithm(key_spec, algorithm, spec_info(key_spec).encryption)
    return rsa_keys.encrypt(private_key(material).public_key(), key_spec, algorithm, plaintext)


def decrypt(key_spec: str, material: bytes, algorithm: str, ciphertext: bytes) -> bytes:
    check_algorithm(key_spec, algorithm, spec_info(key_spec).encryption)
    return rsa_keys.decrypt(private_key(material), algorithm, ciphertext)


def mac(key_spec: str, material: bytes, algorithm: str, message: bytes) -> bytes:
    check_algorithm(key_spec, algorithm, spec_info(key_spec).mac)
    return hmac_keys.mac(material, algorithm, message)


def verify_mac(key_spec: str, material: bytes, algorithm: str, message: bytes, tag: bytes) -> bool:
    check_algorithm(key_spec, algorithm, spec_info(key_spec).mac)
    return hmac_keys.verify(material, algorithm, message, tag)


def derive_shared_secret(key_spec: str, material: bytes, algorithm: str, peer: bytes) -> bytes:
    check_algorithm(key_spec, algorithm, spec_info(key_spec).agreement)
    return ecc_keys.derive_shared_secret(private_key(material), peer)


def encapsulate(key_spec: str, material: bytes, algorithm: str) -> tuple[bytes, bytes]:
    check_algorithm(key_spec, algorithm, spec_info(key_spec).encapsulation)
    return pq_keys.encapsulate(private_key(material).public_key())


def decapsulate(key_spec: str, material: bytes, algorithm: str, ciphertext: bytes) -> bytes:
    check_algorithm(key_spec, algorithm, spec_info(key_spec).encapsulation)
    return pq_keys.decapsulate(private_key(material), ciphertext)
