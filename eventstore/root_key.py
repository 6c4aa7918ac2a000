"""Where the root key comes from: KEYLEDGER_ROOT_KEY, else a 0600 file in the data directory."""

from __future__ import annotations

import base64
import binascii
import logging
import os
from collections.abc import Mapping
from pathlib import Path

log = logging.getLogger("keyledger.rootkey")
ROOT_KEY_ENV = "KEYLEDGER_ROOT_KEY"
ROOT_KEY_FILE = "root.key"


class RootKeyError(RuntimeError):
    """The configured root key is unusable; the server must not start."""


def load_root_key(data_dir: Path, environ: Mapping[str, str]) -> bytes:
    if ROOT_KEY_ENV in environ:
        return _decode(environ[ROOT_KEY_ENV], ROOT_KEY_ENV)
    path = data_dir / ROOT_KEY_FILE
    if path.exists():
        return _decode(path.read_text(), str(path))
    key = os.urandom(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(base64.b64encode(key).decode("ascii") + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    log.warning(
        "generated a new root key in %s (mode 0600); back it up or set %s", path, ROOT_KEY_ENV
    )
    return key


def _decode(text: str, source: str) -> bytes:
    try:
        key = base64.b64decode(text.strip(), validate=True)
    except binascii.Error:
        raise RootKeyError(f"root key from {source} is not base64") from None
    if len(key) != 32:
        raise RootKeyError(f"root key from {source} must be 32 bytes, got {len(key)}")
    return key
