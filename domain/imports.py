"""Bring your own key: wrapping keys, import tokens and the checks on imported material.

Pure: randomness and time are passed in; the RSA work here is CPU-heavy and runs on the
key generation threads, never on the event loop or the writer thread.
(https://docs.aws.amazon.com/kms/latest/developerguide/importing-keys.html)
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import cast
from uuid import UUID

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.keywrap import InvalidUnwrap, aes_key_unwrap_with_padding

from domain.errors import (
    IncorrectKeyMaterialError,
    InvalidCiphertextError,
    InvalidImportTokenError,
    UnsupportedOperationError,
    ValidationError,
)
from domain.key_specs import spec_info
from domain.token_mac import TAG_BYTES, TokenMac, derive_secret

TOKEN_LIFETIME_SECONDS = 24 * 3600  # "valid for 24 hours" (GetParametersForImport reference)
MAX_VALID_TO_DAYS = 365  # ImportKeyMaterial ValidTo: at most 365 days ahead
KEY_MATERIAL_EXPIRES = "KEY_MATERIAL_EXPIRES"
KEY_MATERIAL_DOES_NOT_EXPIRE = "KEY_MATERIAL_DOES_NOT_EXPIRE"
NEW_KEY_MATERIAL, EXISTING_KEY_MATERIAL = "NEW_KEY_MATERIAL", "EXISTING_KEY_MATERIAL"

# One byte per wrapping algorithm in the token; the hash of OAEP (MGF1 uses the same).
WRAPPING_ALGORITHMS: dict[str, tuple[int, type[hashes.HashAlgorithm]]] = {
    "RSAES_OAEP_SHA_1": (1, hashes.SHA1),
    "RSAES_OAEP_SHA_256": (2, hashes.SHA256),
    "RSA_AES_KEY_WRAP_SHA_1": (3, hashes.SHA1),
    "RSA_AES_KEY_WRAP_SHA_256": (4, hashes.SHA256),
}
_BY_CODE = {code: name for name, (code, _) in WRAPPING_ALGORITHMS.items()}
WRAPPING_KEY_SPECS = {"RSA_2048": 2048, "RSA_3072": 3072, "RSA_4096": 4096}
_PQ_FAMILIES = ("ml_dsa", "ml_kem")

_TOKEN = struct.Struct(">B16s16sBq")  # version | key id | wrapping key id | algorithm | expiry
_TOKEN_VERSION = 1


@dataclass(frozen=True)
class ImportRef:
    """What a valid import token names."""

    key_id: UUID
    wrapping_key_id: str  # 32 hex digits
    wrapping_algorithm: str
    expires: datetime


class ImportTokens:
    """Import tokens, authenticated by the server (same scheme as grant tokens), and
    key material ids for imported material."""

    def __init__(self, token_secret: bytes, material_secret: bytes) -> None:
        self._mac = TokenMac(token_secret)
        self._ids = TokenMac(material_secret)

    @classmethod
    def from_root_key(cls, root_key: bytes) -> ImportTokens:
        return cls(
            derive_secret(root_key, b"keyledger import tokens v1"),
            derive_secret(root_key, b"keyledger imported material ids v1"),
        )

    def __repr__(self) -> str:
        return "ImportTokens(<redacted>)"

    def issue(self, ref: ImportRef) -> bytes:
        code, _ = WRAPPING_ALGORITHMS[ref.wrapping_algorithm]
        body = _TOKEN.pack(
            _TOKEN_VERSION,
            ref.key_id.bytes,
            bytes.fromhex(ref.wrapping_key_id),
            code,
            int(ref.expires.timestamp()),
        )
        return body + self._mac.tag(body)

    def read(self, token: bytes) -> ImportRef:
        """InvalidImportTokenException for anything the server did not make."""
        if len(token) != _TOKEN.size + TAG_BYTES or token[0] != _TOKEN_VERSION:
            raise InvalidImportTokenError
        body, tag = token[: _TOKEN.size], token[_TOKEN.size :]
        if not self._mac.verify(body, tag):
            raise InvalidImportTokenError
        _, key_id, wrapping_key_id, code, expires = _TOKEN.unpack(body)
        return ImportRef(
            UUID(bytes=key_id),
            wrapping_key_id.hex(),
            _BY_CODE[code],
            datetime.fromtimestamp(expires, UTC),
        )

    def material_id(self, key_id: UUID, material: bytes) -> str:
        """The KeyMaterialId of imported material: the same material imported again into
        the same key has the same id, so ciphertexts made before a deletion name it. A
        keyed MAC, not a bare hash, so the id says nothing about the material."""
        return self._ids.tag(b"material|" + key_id.bytes + material).hex()


def check_wrapping_choice(algorithm: str, key_spec: str) -> None:
    """GetParametersForImport's WrappingAlgorithm and WrappingKeySpec. RSAES_PKCS1_V1_5 is
    no longer accepted by AWS (deprecated October 2023); SM2 only in China Regions."""
    if algorithm not in WRAPPING_ALGORITHMS:
        raise ValidationError(f"Wrapping algorithm {algorithm} is not supported.")
    if key_spec not in WRAPPING_KEY_SPECS:
        raise ValidationError(f"Wrapping key spec {key_spec} is not supported.")


def check_importable(key_spec: str) -> None:
    """CreateKey with Origin EXTERNAL: symmetric, HMAC, RSA and ECC keys (importing-keys
    "Supported key specs"); keyledger cannot import ML-DSA or ML-KEM material."""
    if spec_info(key_spec).family in _PQ_FAMILIES:
        raise UnsupportedOperationError(
            f"KeySpec {key_spec} does not support imported key material in keyledger."
        )


def new_wrapping_key(key_spec: str) -> tuple[bytes, bytes]:
    """(PKCS#8 DER private key, DER SPKI public key) of a fresh RSA wrapping key."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=WRAPPING_KEY_SPECS[key_spec])
    private = key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return bytes(private), bytes(public)


def unwrap_material(private_der: bytes, algorithm: str, encrypted: bytes) -> bytes:
    """Undo the customer's wrapping. RSAES_OAEP_*: OAEP (RFC 8017 §7.1) of the material.
    RSA_AES_KEY_WRAP_*: OAEP of an ephemeral AES key, followed by AES key wrap with
    padding (RFC 5649) of the material under it. Any failure: InvalidCiphertextException."""
    # The RSA consistency check is skipped: keyledger made this key, and AES-GCM
    # authenticated it when the keystore unwrapped it (the check costs ~100 ms for 4096).
    key = cast(
        rsa.RSAPrivateKey,
        serialization.load_der_private_key(private_der, None, unsafe_skip_rsa_key_validation=True),
    )
    _, hash_class = WRAPPING_ALGORITHMS[algorithm]
    oaep = padding.OAEP(mgf=padding.MGF1(hash_class()), algorithm=hash_class(), label=None)
    modulus_bytes = key.key_size // 8
    try:
        if algorithm.startswith("RSAES_OAEP"):
            return key.decrypt(encrypted, oaep)
        aes_key = key.decrypt(encrypted[:modulus_bytes], oaep)
        return aes_key_unwrap_with_padding(aes_key, encrypted[modulus_bytes:])
    except (ValueError, InvalidUnwrap):
        raise InvalidCiphertextError from None


_HMAC_LENGTHS = {
    "HMAC_224": (28, 64),
    "HMAC_256": (32, 64),
    "HMAC_384": (48, 128),
    "HMAC_512": (64, 128),
}  # bytes; importing-keys-conceptual "HMAC keys"
_CURVES = {
    "ECC_NIST_P256": ec.SECP256R1,
    "ECC_NIST_P384": ec.SECP384R1,
    "ECC_NIST_P521": ec.SECP521R1,
    "ECC_SECG_P256K1": ec.SECP256K1,
}


def checked_material(key_spec: str, material: bytes) -> bytes:
    """Imported material in the form keyledger keeps: 256 bits for SYMMETRIC_DEFAULT,
    the secret bytes for HMAC, PKCS#8 DER (RFC 5208) for RSA and ECC private keys,
    re-encoded so the same key always has the same bytes. Material of the wrong size or
    type: IncorrectKeyMaterialException ("invalid" key material, ImportKeyMaterial errors)."""
    family = spec_info(key_spec).family
    if family == "symmetric":
        if len(material) != 32:
            raise IncorrectKeyMaterialError("Key material must be 256 bits (32 bytes).")
        return material
    if family == "hmac":
        low, high = _HMAC_LENGTHS[key_spec]
        if not low <= len(material) <= high:
            raise IncorrectKeyMaterialError(
                f"Key material for {key_spec} must be {low} to {high} bytes."
            )
        return material
    try:
        key = serialization.load_der_private_key(material, password=None)
    except (ValueError, TypeError):
        raise IncorrectKeyMaterialError(
            "Key material must be a private key in PKCS#8 DER form."
        ) from None
    if not _fits(key, key_spec):
        raise IncorrectKeyMaterialError(f"Key material is not a {key_spec} private key.")
    return bytes(
        key.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )


def _fits(key: object, key_spec: str) -> bool:
    if key_spec.startswith("RSA_"):
        return isinstance(key, rsa.RSAPrivateKey) and key.key_size == int(key_spec[4:])
    if key_spec == "ECC_NIST_EDWARDS25519":
        return isinstance(key, ed25519.Ed25519PrivateKey)
    curve = _CURVES.get(key_spec)
    return (
        curve is not None
        and isinstance(key, ec.EllipticCurvePrivateKey)
        and isinstance(key.curve, curve)
    )


def check_expiry(
    expiration_model: str | None, valid_to: datetime | None, now: datetime
) -> tuple[str, datetime | None]:
    """ImportKeyMaterial's ExpirationModel and ValidTo (API reference): ValidTo is needed
    for KEY_MATERIAL_EXPIRES and refused otherwise; at most 365 days ahead."""
    model = expiration_model or (
        KEY_MATERIAL_EXPIRES if valid_to is not None else KEY_MATERIAL_DOES_NOT_EXPIRE
    )
    if model == KEY_MATERIAL_EXPIRES:
        if valid_to is None:
            raise ValidationError(
                "A validTo date must be set if the ExpirationModel is KEY_MATERIAL_EXPIRES"
            )
        if valid_to <= now:
            raise ValidationError("The validTo date must be in the future.")
        if (valid_to - now).total_seconds() > MAX_VALID_TO_DAYS * 86_400:
            raise ValidationError("The validTo date must be no more than 365 days from now.")
        return model, valid_to
    if valid_to is not None:
        raise ValidationError(
            "A validTo date must not be set if the ExpirationModel is KEY_MATERIAL_DOES_NOT_EXPIRE"
        )
    return model, None
