"""The only user of AEAD and KDF primitives: ciphertext blobs and key wrapping."""

from __future__ import annotations

import os
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from uuid import UUID

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.kbkdf import KBKDFHMAC, CounterLocation, Mode

from domain.errors import InvalidCiphertextError

# Blob layout, version 1 (all of the header is AES-GCM associated data):
#   magic "K" | format 0x01 | key id (16) | material id (32) | nonce (32) | iv (12)
#   | ciphertext | tag (16)
# The blob carries the key and material version so Decrypt needs no KeyId, as KMS's
# does ("KMS stores this information in the ciphertext blob", Decrypt API reference).
MAGIC = b"K"
FORMAT_V1 = 1
MATERIAL_ID_BYTES = 32
NONCE_BYTES = 32
IV_BYTES = 12
TAG_BYTES = 16
_HEADER = struct.Struct(f">cB16s{MATERIAL_ID_BYTES}s{NONCE_BYTES}s{IV_BYTES}s")
HEADER_BYTES = _HEADER.size
_KDF_LABEL = b"keyledger symmetric ciphertext v1"


@dataclass(frozen=True)
class BlobHeader:
    key_id: UUID
    material_id: str  # 64 lowercase hex, as DescribeKey's CurrentKeyMaterialId
    nonce: bytes
    iv: bytes
    raw: bytes


def canonical_context(context: Mapping[str, str] | None) -> bytes:
    """Unambiguous encoding of an encryption context: pairs sorted by UTF-8 key,
    each key and value length-prefixed, so {"ab": "c"} and {"a": "bc"} differ
    (KMS: order may vary, everything else must match exactly)."""
    items = sorted((k.encode(), v.encode()) for k, v in (context or {}).items())
    parts = [struct.pack(">I", len(items))]
    for key, value in items:
        parts += [struct.pack(">I", len(key)), key, struct.pack(">I", len(value)), value]
    return b"".join(parts)


def derive_key(material: bytes, nonce: bytes) -> bytes:
    """Per-call key: NIST SP 800-108 KDF in counter mode with HMAC-SHA256, the mode KMS
    documents for its derived-key encryption (Campagna & Gueron 2019)."""
    kdf = KBKDFHMAC(
        algorithm=hashes.SHA256(),
        mode=Mode.CounterMode,
        length=32,
        rlen=4,
        llen=4,
        location=CounterLocation.BeforeFixed,
        label=_KDF_LABEL,
        context=nonce,
        fixed=None,
    )
    return kdf.derive(material)


def seal(
    material: bytes,
    key_id: UUID,
    material_id: str,
    plaintext: bytes,
    context: Mapping[str, str] | None,
) -> bytes:
    nonce, iv = os.urandom(NONCE_BYTES), os.urandom(IV_BYTES)
    header = _HEADER.pack(MAGIC, FORMAT_V1, key_id.bytes, bytes.fromhex(material_id), nonce, iv)
    aad = header + canonical_context(context)
    return header + AESGCM(derive_key(material, nonce)).encrypt(iv, plaintext, aad)


def parse_header(blob: bytes) -> BlobHeader:
    if len(blob) < HEADER_BYTES + TAG_BYTES:
        raise InvalidCiphertextError
    magic, version, key_id, material_id, nonce, iv = _HEADER.unpack_from(blob)
    if magic != MAGIC or version != FORMAT_V1:
        raise InvalidCiphertextError
    return BlobHeader(UUID(bytes=key_id), material_id.hex(), nonce, iv, blob[:HEADER_BYTES])


def open_blob(
    material: bytes, header: BlobHeader, blob: bytes, context: Mapping[str, str] | None
) -> bytes:
    aad = header.raw + canonical_context(context)
    try:
        return AESGCM(derive_key(material, header.nonce)).decrypt(
            header.iv, blob[HEADER_BYTES:], aad
        )
    except InvalidTag:
        raise InvalidCiphertextError from None


def wrap(wrapping_key: bytes, secret: bytes, aad: bytes) -> bytes:
    """AES-256-GCM key wrap with a random IV: iv | ciphertext | tag."""
    iv = os.urandom(IV_BYTES)
    return iv + AESGCM(wrapping_key).encrypt(iv, secret, aad)


def unwrap(wrapping_key: bytes, wrapped: bytes, aad: bytes) -> bytes:
    """Raises ``InvalidTag`` on any mismatch: a wrong key or a moved blob is a fault of
    the store, not of the caller, so the caller decides what to answer."""
    return AESGCM(wrapping_key).decrypt(wrapped[:IV_BYTES], wrapped[IV_BYTES:], aad)


def material_aad(purpose: bytes, key_id: UUID, material_id: str) -> bytes:
    """Binds a wrapped secret to its purpose, key and material version, so wrapped
    blobs cannot be swapped between keys, versions or layers of the hierarchy."""
    return b"keyledger|" + purpose + b"|" + key_id.bytes + bytes.fromhex(material_id)
