"""Consistent copies of a SQLite data directory while the server runs.

Each file is copied with SQLite's online backup API (https://sqlite.org/backup.html), which
gives a consistent snapshot of that file even while other connections write. Across files,
the order makes the copy restorable: views first (a view older than its log only catches
up after restore), then the ledgers, then the keystore last (it then holds the wrapping key
of every material version the copied log refers to; a key destroyed in between is shredded
again by the scheduler's repair pass).
"""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

from eventstore.root_key import ROOT_KEY_FILE

# In copy order (see above). keystore.db holds the wrapping keys and the audit-signing key,
# both wrapped by the root key.
FILES = (
    "views.db",
    "grants.db",
    "audit.db",
    "billing.db",
    "usage.db",
    "keyledger.db",
    "keystore.db",
)
PUBLIC_KEY_FILE = "audit-public-key.pem"


class BackupError(Exception):
    """The source or destination is not usable; one line for the operator."""


def copy_stores(source: Path, dest: Path, *, root_key: bool = False) -> list[str]:
    """Copy every store of ``source`` into the new directory ``dest``; returns the files.
    The root key is copied only with ``root_key=True``: it is the one secret kept apart."""
    if not (source / "keyledger.db").exists():
        raise BackupError(f"{source} holds no keyledger stores")
    if dest.exists() and any(dest.iterdir()):
        raise BackupError(f"{dest} is not empty: refusing to overwrite")
    dest.mkdir(mode=0o700, parents=True, exist_ok=True)
    copied = []
    for name in FILES:
        if not (source / name).exists():
            continue
        src = sqlite3.connect(f"file:{source / name}?mode=ro", uri=True, timeout=30)
        dst = sqlite3.connect(dest / name)
        try:
            src.backup(dst)
            dst.execute("PRAGMA journal_mode=WAL")
        finally:
            dst.close()
            src.close()
        (dest / name).chmod(0o600)
        copied.append(name)
    if (source / PUBLIC_KEY_FILE).exists():
        shutil.copy2(source / PUBLIC_KEY_FILE, dest / PUBLIC_KEY_FILE)
        copied.append(PUBLIC_KEY_FILE)
    if root_key:
        if not (source / ROOT_KEY_FILE).exists():
            raise BackupError(f"no {ROOT_KEY_FILE} in {source} (the root key comes from elsewhere)")
        shutil.copy2(source / ROOT_KEY_FILE, dest / ROOT_KEY_FILE)
        (dest / ROOT_KEY_FILE).chmod(0o600)
        copied.append(ROOT_KEY_FILE)
    return copied
