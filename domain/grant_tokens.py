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

from domain.errors import InvalidGrantTokenError
from domain.token_mac import TAG_BYTES, TokenMac, derive_secret

_VERSION = 1
_LAYOUT = struct.Struct(">B16s32s16s")  # version | key id | grant id | nonce
TOKEN_BYTES = _LAYOUT.size + TAG_BYTES
NONCE_BYTES = 16


@dataclass(frozen=True)
class GrantRef:
    """What a valid token names."""

    key_id: UUID
    grant_id: str


class GrantTokens:
    """Issues and reads tokens with one secret (every host sharing the root key agrees)."""

    def __init__(self, secret: bytes) -> None:
        self._mac = TokenMac(secret)

    @classmethod
    def from_root_key(cls, root_key: bytes) -> GrantTokens:
        """A key of its own for tokens, derived from the root key with HKDF (RFC 5869):
        tokens stay valid across restarts and on every host that shares the root key."""
        return cls(derive_secret(root_key, b"keyledger grant tokens v1"))

    def __repr__(self) -> str:
        return "GrantTokens(<redacted>)"

    def issue(self, key_id: UUID, grant_id: str, nonce: bytes) -> str:
        body = _LAYOUT.pack(_VERSION, key_id.bytes, bytes.fromhex(grant_id), nonce)
        raw = body + self._mac.tag(body)
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
        if not self._mac.verify(body, tag):
            raise InvalidGrantTokenError
        _, key_id, grant_id, _ = _LAYOUT.unpack(body)
        return GrantRef(UUID(bytes=key_id), grant_id.hex())
