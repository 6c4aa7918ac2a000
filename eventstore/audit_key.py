"""The audit-signing key: Ed25519, kept like the other key material (wrapped by the root key).

It signs the audit trail's digests. Its public half is published (GET /audit/public-key and
``audit-public-key.pem`` in the data directory) so digests verify offline, as CloudTrail
publishes the public keys of its digest signatures (ListPublicKeys).
"""

from __future__ import annotations

import hashlib
import threading
import time
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from domain.crypto import unwrap, wrap
from eventstore.database import Database
from eventstore.keystore import PRAGMAS
from eventstore.root_key import ROOT_KEY_ENV, RootKeyError

PUBLIC_KEY_FILE = "audit-public-key.pem"
_AAD = b"keyledger audit-signing key v1"
_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS audit_signing_keys (fingerprint TEXT PRIMARY KEY, "
    "public_pem TEXT NOT NULL, wrapped BLOB NOT NULL, created INTEGER NOT NULL)"
)


def fingerprint(public_key: Ed25519PublicKey) -> str:
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()


def public_pem(public_key: Ed25519PublicKey) -> str:
    return public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode("ascii")


def load_public_key(pem: bytes) -> Ed25519PublicKey:
    key = serialization.load_pem_public_key(pem)
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError("the audit public key must be an Ed25519 key")
    return key


class AuditSigner:
    """Signs digests; the private key is only ever stored wrapped."""

    algorithm = "Ed25519"

    def __init__(self, private_key: Ed25519PrivateKey) -> None:
        self._key = private_key
        self.public_key = private_key.public_key()
        self.fingerprint = fingerprint(self.public_key)
        self.public_pem = public_pem(self.public_key)

    def __repr__(self) -> str:
        return f"AuditSigner({self.fingerprint[:16]}…)"

    def sign(self, data: bytes) -> bytes:
        return self._key.sign(data)


class AuditKeyStore:
    """A table beside the wrapping keys (same file, same pragmas, same root key)."""

    def __init__(self, path: str, root_key: bytes) -> None:
        self._root_key = root_key
        self._lock = threading.Lock()
        self._db = Database(path, PRAGMAS)
        self._db.execute(_SCHEMA)

    def check_root_key(self) -> None:
        """Refuse a root key that is not the one this keystore was written with (the
        signing key is made at the first start, so every used keystore has one)."""
        with self._lock:
            row = self._db.execute(
                "SELECT fingerprint, wrapped FROM audit_signing_keys ORDER BY created LIMIT 1"
            ).fetchone()
        if row is None:
            return
        try:
            unwrap(self._root_key, bytes(row[1]), _AAD + row[0].encode())
        except InvalidTag:
            raise RootKeyError(
                "the root key does not match the keystore: start with the root key this "
                f"store was created with ({ROOT_KEY_ENV} or root.key in the data directory)"
            ) from None

    def signer(self) -> AuditSigner:
        """The current signing key, made (and stored wrapped) on first use."""
        with self._lock:
            row = self._db.execute(
                "SELECT fingerprint, wrapped FROM audit_signing_keys ORDER BY created DESC LIMIT 1"
            ).fetchone()
            if row is not None:
                raw = unwrap(self._root_key, bytes(row[1]), _AAD + row[0].encode())
                return AuditSigner(Ed25519PrivateKey.from_private_bytes(raw))
            key = Ed25519PrivateKey.generate()
            signer = AuditSigner(key)
            raw = key.private_bytes(
                serialization.Encoding.Raw,
                serialization.PrivateFormat.Raw,
                serialization.NoEncryption(),
            )
            wrapped = wrap(self._root_key, raw, _AAD + signer.fingerprint.encode())
            self._db.execute(
                "INSERT INTO audit_signing_keys VALUES (?, ?, ?, ?)",
                (signer.fingerprint, signer.public_pem, wrapped, int(time.time())),
            )
            return signer

    def public_keys(self) -> dict[str, Ed25519PublicKey]:
        """Every audit public key ever used, by fingerprint (no root key needed)."""
        with self._lock:
            rows = self._db.execute("SELECT fingerprint, public_pem FROM audit_signing_keys")
            return {fp: load_public_key(pem.encode()) for fp, pem in rows.fetchall()}

    def close(self) -> None:
        with self._lock:
            self._db.close()


def publish(signer: AuditSigner, data_dir: Path | None) -> None:
    """Write the public key next to the stores, for auditors and offline verification."""
    if data_dir is not None:
        (data_dir / PUBLIC_KEY_FILE).write_text(signer.public_pem)
