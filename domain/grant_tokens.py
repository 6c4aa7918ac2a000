"""Grant tokens: non-secret, but authenticated by the server, naming one grant of one key.

A token lets a request use a grant before the grants view has it (KMS "Using a grant
token", grant-manage.html#using-grant-token). Anyone may hold one; nobody but the server
can make or alter one, so a token is an HMAC-SHA256 tag (RFC 2104) over its version, key
id, grant id and a fresh nonce, under a key derived from the root key. A fresh nonce per
CreateGrant gives "a new token each time" for the same grant; all of them stay valid.
"""

from __future__ import annotations

import base64
import binascii
import struct
from dataclasses import dataclass
from uuid import UUID

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, hmac
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from domain.errors import InvalidGrantTokenError

_VERSION = 1
_LAYOUT = struct.Struct(">B16s32s16s")  # version | key id | grant id | nonce
_TAG_BYTES = 32
TOKEN_BYTES = _LAYOUT.size + _TAG_BYTES
NONCE_BYTES = 16


@dataclass(frozen=True)
class GrantRef:
    """What a valid token names."""

    key_id: UUID
    grant_id: str


class GrantTokens:
    """Issues and reads tokens with one secret (every host sharing the root key agrees)."""

    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    @classmethod
    def from_root_key(cls, root_key: bytes) -> GrantTokens:
        """A key of its own for tokens, derived from the root key with HKDF (RFC 5869):
        tokens stay valid across restarts and on every host that shares the root key."""
        hkdf = HKDF(
            algorithm=hashes.SHA256(), length=32, salt=None, info=b"keyledger grant tokens v1"
        )
        return cls(hkdf.derive(root_key))

    def __repr__(self) -> str:
        return "GrantTokens(<redacted>)"

    def issue(self, key_id: UUID, grant_id: str, nonce: bytes) -> str:
        body = _LAYOUT.pack(_VERSION, key_id.bytes, bytes.fromhex(grant_id), nonce)
        raw = body + self._tag(body)
        return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")

    def read(self, token: str) -> GrantRef:
        """The grant a token names; InvalidGrantTokenException for anything else."""
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        except (binascii.Error, ValueError):
            raise InvalidGrantTokenError from None
        if len(raw) != TOKEN_BYTES or raw[0] != _VERSION:
            raise InvalidGrantTokenError
        body, tag = raw[: _LAYOUT.size], raw[_LAYOUT.size :]
        check = hmac.HMAC(self._secret, hashes.SHA256())
        check.update(body)
        try:
            check.verify(tag)  # constant time
        except InvalidSignature:
            raise InvalidGrantTokenError from None
        _, key_id, grant_id, _ = _LAYOUT.unpack(body)
        return GrantRef(UUID(bytes=key_id), grant_id.hex())

    def _tag(self, body: bytes) -> bytes:
        mac = hmac.HMAC(self._secret, hashes.SHA256())
        mac.update(body)
        return mac.finalize()
