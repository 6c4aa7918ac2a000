"""HMAC keys (RFC 2104, FIPS 198-1): HMAC_224..512, one MAC algorithm per key spec."""

from __future__ import annotations

import os

from cryptography.hazmat.primitives import hashes, hmac

from domain.messages import verified

_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "HMAC_SHA_224": hashes.SHA224,
    "HMAC_SHA_256": hashes.SHA256,
    "HMAC_SHA_384": hashes.SHA384,
    "HMAC_SHA_512": hashes.SHA512,
}


def generate(key_spec: str) -> bytes:
    """Key length equals the spec's bit size (HMAC key spec reference)."""
    return os.urandom(int(key_spec.removeprefix("HMAC_")) // 8)


def mac(key: bytes, algorithm: str, message: bytes) -> bytes:
    h = hmac.HMAC(key, _HASHES[algorithm]())
    h.update(message)
    return h.finalize()


def verify(key: bytes, algorithm: str, message: bytes, tag: bytes) -> bool:
    h = hmac.HMAC(key, _HASHES[algorithm]())
    h.update(message)
    return verified(lambda: h.verify(tag))  # a constant-time compare
