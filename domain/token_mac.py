"""Server-authenticated tokens: an HMAC-SHA256 tag (RFC 2104) under a key of their own,
derived from the root key with HKDF (RFC 5869), so tokens stay valid across restarts and
on every host that shares the root key, and nobody but the server can make or alter one.
Grant tokens and import tokens both use it, each with its own HKDF ``info``."""

from __future__ import annotations

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, hmac
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

TAG_BYTES = 32


def derive_secret(root_key: bytes, info: bytes) -> bytes:
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info)
    return hkdf.derive(root_key)


class TokenMac:
    """Tags and checks token bodies with one derived secret."""

    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    def __repr__(self) -> str:
        return "TokenMac(<redacted>)"

    def tag(self, body: bytes) -> bytes:
        mac = hmac.HMAC(self._secret, hashes.SHA256())
        mac.update(body)
        return mac.finalize()

    def verify(self, body: bytes, tag: bytes) -> bool:
        check = hmac.HMAC(self._secret, hashes.SHA256())
        check.update(body)
        try:
            check.verify(tag)  # constant time
        except InvalidSignature:
            return False
        return True
