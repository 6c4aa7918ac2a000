"""Per-material wrapping keys: mutable, deletable, themselves wrapped by the root key."""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Iterable
from uuid import UUID

from domain.crypto import material_aad, unwrap, wrap
from eventstore.database import Database

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS wrapping_keys (material_id TEXT PRIMARY KEY, "
    "key_id TEXT NOT NULL, wrapped BLOB NOT NULL)",
    "CREATE INDEX IF NOT EXISTS wrapping_keys_by_key ON wrapping_keys (key_id)",
    "CREATE TABLE IF NOT EXISTS import_keys (wrapping_key_id TEXT PRIMARY KEY, "
    "key_id TEXT NOT NULL, expires REAL NOT NULL, wrapped BLOB NOT NULL)",
    "CREATE INDEX IF NOT EXISTS import_keys_by_expiry ON import_keys (expires)",
)
PRAGMAS = ("journal_mode=WAL", "synchronous=FULL", "secure_delete=ON")
_PURPOSE = b"wrapping-key"
_IMPORT_PURPOSE = b"import-wrapping-key"


class ShreddingIncomplete(RuntimeError):
    """Rows were deleted but old page images may remain; the repair pass retries."""


class WrappingKeyMissing(LookupError):
    """The wrapping key of a material version is gone (destroyed, or never stored)."""


class Keystore:
    """The middle of the key hierarchy (root key -> wrapping key -> key material).

    Destroying a key's rows is crypto-shredding: the wrapped material left in the
    immutable event log can no longer be unwrapped. secure_delete zeroes freed pages
    and a truncating WAL checkpoint drops old page images
    (https://sqlite.org/pragma.html#pragma_secure_delete). On PostgreSQL a DELETE leaves
    dead row versions in the table's pages until VACUUM reclaims them, so destroy runs
    VACUUM on the table at once (https://www.postgresql.org/docs/current/routine-vacuuming.html);
    what PostgreSQL cannot promise (WAL segments, replicas, base backups) is in the README.
    """

    def __init__(self, path: str, root_key: bytes, cache_size: int = 10_000) -> None:
        self._root_key = root_key
        self._lock = threading.Lock()
        # Wrapped (never plaintext) wrapping keys by material id; bounded like the read
        # cache (eventstore/read_cache.py), so memory does not grow with the key count.
        self._cache: dict[str, bytes] = {}
        self._cache_size = cache_size
        # Wrapping keys made by commands not saved yet: material id -> (key id, wrapped).
        self._staged: dict[str, tuple[str, bytes]] = {}
        self._db = Database(path, PRAGMAS)
        for statement in _SCHEMA:
            self._db.execute(statement)

    def __repr__(self) -> str:
        return "Keystore(<redacted>)"

    def new_wrapping_key(self, key_id: UUID, material_id: str) -> bytes:
        """Generate and return a fresh wrapping key; its wrapped row is staged, and made
        durable by ``store_staged`` before any event that refers to it is saved."""
        wrapping_key = os.urandom(32)
        wrapped = wrap(self._root_key, wrapping_key, material_aad(_PURPOSE, key_id, material_id))
        with self._lock:
            self._staged[material_id] = (str(key_id), wrapped)
            self._keep(material_id, wrapped)
        return wrapping_key

    def store_staged(self, material_ids: list[str]) -> None:
        """Make these staged wrapping keys durable, all in one transaction: a batch of
        64 CreateKey calls then costs one keystore commit, not 64 (group commit, as the
        ledgers have). Staged rows are let go whether or not the commit succeeds: a failed
        batch is answered with an error and its events are never saved."""
        with self._lock:
            rows = [(m, *self._staged.pop(m)) for m in material_ids if m in self._staged]
            if rows:
                self._db.executemany("INSERT INTO wrapping_keys VALUES (?, ?, ?)", rows)

    def wrapping_key(self, key_id: UUID, material_id: str) -> bytes:
        wrapped = self._cache.get(material_id) or self._load(material_id)
        return unwrap(self._root_key, wrapped, material_aad(_PURPOSE, key_id, material_id))

    def _keep(self, material_id: str, wrapped: bytes) -> None:
        if len(self._cache) >= self._cache_size:
            self._cache.clear()
        self._cache[material_id] = wrapped

    def _load(self, material_id: str) -> bytes:
        with self._lock:
            if material_id in self._staged:  # made by a command whose batch is not saved yet
                return self._staged[material_id][1]
            row = self._db.execute(
                "SELECT wrapped FROM wrapping_keys WHERE material_id = ?", (material_id,)
            ).fetchone()
            if row is None:
                raise WrappingKeyMissing(material_id)
            self._keep(material_id, bytes(row[0]))
            return bytes(row[0])

    def warm(self, material_ids: Iterable[str]) -> None:
        """Load the wrapped wrapping keys of these materials now (on a reader thread), so
        an operation on the event loop never waits for this store."""
        for material_id in material_ids:
            if material_id not in self._cache:
                # A missing one is reported by the operation that needs it.
                with contextlib.suppress(WrappingKeyMissing):
                    self._load(material_id)

    def key_ids(self) -> set[str]:
        """Keys that still have wrapping keys (the deletion repair pass compares)."""
        with self._lock:
            rows = self._db.execute("SELECT DISTINCT key_id FROM wrapping_keys").fetchall()
        return {row[0] for row in rows}

    def material_ids(self) -> set[str]:
        with self._lock:
            rows = self._db.execute("SELECT material_id FROM wrapping_keys").fetchall()
        return {row[0] for row in rows}

    def key_of(self, material_id: str) -> str | None:
        with self._lock:
            row = self._db.execute(
                "SELECT key_id FROM wrapping_keys WHERE material_id = ?", (material_id,)
            ).fetchone()
        return None if row is None else str(row[0])

    def forget(self, material_ids: list[str]) -> None:
        """Drop wrapping keys no event refers to (a command that was not saved)."""
        if not material_ids:
            return
        with self._lock:
            stored = [(m,) for m in material_ids if self._staged.pop(m, None) is None]
            if stored:
                self._db.executemany("DELETE FROM wrapping_keys WHERE material_id = ?", stored)
            for material_id in material_ids:
                self._cache.pop(material_id, None)

    def destroy(self, key_id: UUID) -> int:
        """Delete every wrapping key of a key; idempotent. Returns rows removed."""
        return self._shred("DELETE FROM wrapping_keys WHERE key_id = ?", [(str(key_id),)])

    def destroy_materials(self, material_ids: list[str]) -> int:
        """Crypto-shred some material versions of a key (imported material deleted or
        expired); idempotent. Returns rows removed."""
        rows = [(m,) for m in material_ids]
        return self._shred("DELETE FROM wrapping_keys WHERE material_id = ?", rows)

    # -- import wrapping keys (GetParametersForImport) -----------------------------

    def put_import_key(
        self, key_id: UUID, wrapping_key_id: str, private_der: bytes, expires: float
    ) -> None:
        """The private half of an import wrapping key, wrapped by the root key; it never
        enters the event log, so destroying the row leaves nothing to open."""
        aad = material_aad(_IMPORT_PURPOSE, key_id, wrapping_key_id)
        wrapped = wrap(self._root_key, private_der, aad)
        with self._lock:
            self._db.execute(
                "INSERT INTO import_keys VALUES (?, ?, ?, ?)",
                (wrapping_key_id, str(key_id), expires, wrapped),
            )

    def import_key(self, key_id: UUID, wrapping_key_id: str) -> bytes:
        with self._lock:
            row = self._db.execute(
                "SELECT wrapped FROM import_keys WHERE wrapping_key_id = ? AND key_id = ?",
                (wrapping_key_id, str(key_id)),
            ).fetchone()
        if row is None:
            raise WrappingKeyMissing(wrapping_key_id)
        aad = material_aad(_IMPORT_PURPOSE, key_id, wrapping_key_id)
        return unwrap(self._root_key, bytes(row[0]), aad)

    def destroy_import_key(self, wrapping_key_id: str) -> int:
        """After use (ImportKeyMaterial succeeded): the token is spent."""
        return self._shred(
            "DELETE FROM import_keys WHERE wrapping_key_id = ?", [(wrapping_key_id,)]
        )

    def destroy_expired_import_keys(self, now: float) -> int:
        """Import wrapping keys whose token has expired (the scheduler's pass)."""
        with self._lock:
            due = self._db.execute(
                "SELECT COUNT(*) FROM import_keys WHERE expires <= ?", (now,)
            ).fetchone()[0]
        if not due:
            return 0
        return self._shred("DELETE FROM import_keys WHERE expires <= ?", [(now,)])

    def _shred(self, statement: str, rows: list[tuple[object, ...]]) -> int:
        with self._lock:
            removed = 0
            for row in rows:
                removed += self._db.execute(statement, row).rowcount
            self._checkpoint()
            self._cache.clear()
            return removed

    def _checkpoint(self, attempts: int = 50) -> None:
        """Truncate the WAL so no page image of a destroyed row survives in it; a reader
        of another process may hold it briefly (the first column of the result is 1
        while the checkpoint could not complete). On PostgreSQL: VACUUM the tables, which
        removes the dead row versions from their pages."""
        if self._db.postgres:
            self._db.execute("VACUUM wrapping_keys, import_keys")
            return
        for _ in range(attempts):
            busy, _, _ = self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            if not busy:
                return
            time.sleep(0.1)
        raise ShreddingIncomplete("the keystore WAL could not be truncated")

    def close(self) -> None:
        with self._lock:
            self._db.close()
