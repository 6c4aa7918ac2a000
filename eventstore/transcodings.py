"""Transcodings the ledgers register: events carry wrapped material as bytes."""

from __future__ import annotations

import base64

from eventsourcing.persistence import Transcoding


class BytesAsBase64(Transcoding):
    # The name is persisted in every stored event: never rename it.
    type = bytes
    name = "bytes_b64"

    def encode(self, obj: bytes) -> str:
        return base64.b64encode(obj).decode("ascii")

    def decode(self, data: str) -> bytes:
        return base64.b64decode(data)
