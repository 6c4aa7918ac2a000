"""Digests over the audit chains, and the checks that prove the trail unaltered.

Modelled on CloudTrail log file integrity validation (security.md section 7.1): each
digest names, for both chains, the range of records it covers and the chain hash at
each end, carries the hash and signature of the digest before it, and is signed with
the audit-signing key. A digest is made even when nothing happened, to assert that.
``verify_store`` checks the view in place; ``export`` writes CloudTrail-format log files
(gzipped JSON, a ``Records`` array) with digest files; ``verify_export`` checks such a
directory offline with nothing but the published public key.
"""

from __future__ import annotations

import gzip
import hashlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import orjson
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from projections.audit_view import GENESIS, LEDGERS, AuditView, StoredRecord, canonical, link

DIGEST_VERSION = "1.0"
Heads = Mapping[str, tuple[int, str]]
Previous = tuple[int, bytes, str] | None


class Signer(Protocol):
    algorithm: str
    fingerprint: str

    def sign(self, data: bytes) -> bytes: ...


def make_digest(signer: Signer, now: datetime) -> Callable[[Previous, Heads], tuple[bytes, str]]:
    """The digest maker ``AuditView.append_digest`` calls inside its transaction."""

    def make(previous: Previous, heads: Heads) -> tuple[bytes, str]:
        before = orjson.loads(previous[1]) if previous else None
        chains = {}
        for ledger in LEDGERS:
            start = before["chains"][ledger] if before else None
            chains[ledger] = {
                "startPosition": start["endPosition"] if start else 0,
                "startHash": start["endHash"] if start else GENESIS,
                "endPosition": heads[ledger][0],
                "endHash": heads[ledger][1],
            }
        digest = {
            "digestVersion": DIGEST_VERSION,
            "sequence": (previous[0] if previous else 0) + 1,
            "digestStartTime": before["digestEndTime"] if before else None,
            "digestEndTime": now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "chains": chains,
            "previousDigestHashValue": hashlib.sha256(previous[1]).hexdigest()
            if previous
            else None,
            "previousDigestSignature": previous[2] if previous else None,
            "digestPublicKeyFingerprint": signer.fingerprint,
            "digestSignatureAlgorithm": signer.algorithm,
        }
        data = canonical(digest)
        return data, signer.sign(data).hex()

    return make


@dataclass
class Report:
    """What a verification found; ``first_bad`` names the first damaged position."""

    records: int = 0
    digests: int = 0
    problems: list[str] = field(default_factory=list)
    first_bad: str | None = None
    unsigned: dict[str, int] = field(default_factory=dict)  # records after the last digest

    @property
    def ok(self) -> bool:
        return not self.problems

    def fail(self, where: str, what: str) -> None:
        if self.first_bad is None:
            self.first_bad = where
        self.problems.append(f"{where}: {what}")


def _check_signature(
    report: Report,
    where: str,
    data: bytes,
    signature: str,
    public_keys: Mapping[str, Ed25519PublicKey],
) -> dict[str, Any] | None:
    try:
        digest = orjson.loads(data)
    except orjson.JSONDecodeError:
        report.fail(where, "digest is not JSON")
        return None
    key = public_keys.get(digest.get("digestPublicKeyFingerprint", ""))
    if key is None:
        report.fail(where, "public key not found for fingerprint")
        return None
    try:
        key.verify(bytes.fromhex(signature), data)
    except (InvalidSignature, ValueError):
        report.fail(where, "signature verification failed")
        return None
    return dict(digest)


def _check_digest_link(
    report: Report, where: str, digest: Mapping[str, Any], previous: tuple[bytes, str] | None
) -> None:
    if previous is None:
        return
    if digest.get("previousDigestHashValue") != hashlib.sha256(previous[0]).hexdigest():
        report.fail(where, "previous digest hash does not match (a digest is missing)")
    elif digest.get("previousDigestSignature") != previous[1]:
        report.fail(where, "previous digest signature does not match")


# -- the trail in the view ---------------------------------------------------------------


def verify_store(
    view: AuditView,
    public_keys: Mapping[str, Ed25519PublicKey],
    progress: Callable[[int], None] = lambda _n: None,
) -> Report:
    """Walk both chains and every digest; report the first position that disagrees."""
    report = Report()
    digests = view.digests()
    wanted: dict[str, set[int]] = {ledger: set() for ledger in LEDGERS}
    parsed: list[tuple[int, dict[str, Any]]] = []
    previous: tuple[bytes, str] | None = None
    expected_seq = 1
    for seq, data, signature in digests:
        where = f"digest {seq}"
        if seq != expected_seq:
            report.fail(f"digest {expected_seq}", "digest is missing")
        expected_seq = seq + 1
        digest = _check_signature(report, where, data, signature, public_keys)
        if digest is not None:
            _check_digest_link(report, where, digest, previous)
            parsed.append((seq, digest))
            for ledger, chain in digest["chains"].items():
                wanted.setdefault(ledger, set()).add(chain["endPosition"])
        previous = (data, signature)
        report.digests += 1
    computed: dict[tuple[str, int], str] = {}
    for ledger in LEDGERS:
        length = 0
        for pos, value in _walk_chain(report, ledger, view.chain(ledger), progress):
            length = pos
            if pos in wanted[ledger]:
                computed[(ledger, pos)] = value
        signed = parsed[-1][1]["chains"][ledger]["endPosition"] if parsed else 0
        if length > signed:
            report.unsigned[ledger] = length - signed
    for seq, digest in parsed:
        for ledger, chain in digest["chains"].items():
            pos = chain["endPosition"]
            actual = GENESIS if pos == 0 else computed.get((ledger, pos))
            if actual != chain["endHash"]:
                report.fail(
                    f"{ledger} records {chain['startPosition'] + 1}..{pos}",
                    f"chain does not match signed digest {seq}",
                )
    return report


def _walk_chain(
    report: Report, ledger: str, records: Iterable[StoredRecord], progress: Callable[[int], None]
) -> Iterator[tuple[int, str]]:
    """Recompute one chain from the record bytes; compare with the stored links."""
    before, head, expected = GENESIS, GENESIS, 1
    for stored in records:
        where = f"{ledger} record {expected}"
        if stored.chain_pos != expected:
            report.fail(where, f"record missing (found position {stored.chain_pos})")
            expected = stored.chain_pos
        data = bytes(stored.record)
        computed = link(head, data)
        if computed != stored.hash:
            if link(before, data) == stored.hash:
                # This record links to the one before its predecessor: that one was put in.
                report.fail(f"{ledger} record {expected - 1}", "record inserted")
            else:
                report.fail(where, "hash does not match (record modified or reordered)")
            computed = stored.hash  # resynchronise, so one damage is reported once
        before, head = head, computed
        report.records += 1
        if report.records % 10000 == 0:
            progress(10000)
        yield stored.chain_pos, head
        expected += 1
    progress(report.records % 10000)


# -- export and offline verification ------------------------------------------------------


def export(
    view: AuditView,
    directory: Path,
    start: datetime | None,
    end: datetime | None,
    progress: Callable[[int], None] = lambda _n: None,
) -> tuple[int, int]:
    """Write the digests whose period overlaps [start, end] and the records they cover.

    Layout (after CloudTrail's): ``<dir>/logs/<seq>_<ledger>.json.gz`` holding
    ``{"Records": [...]}`` and ``<dir>/digests/<seq>.json`` holding the signed digest
    verbatim, its signature, and the SHA-256 of each log file it covers. Returns
    (digests, records) written.
    """
    (directory / "logs").mkdir(parents=True, exist_ok=True)
    (directory / "digests").mkdir(parents=True, exist_ok=True)
    written = records = 0
    streams = {ledger: _Cursor(view.chain(ledger)) for ledger in LEDGERS}
    for seq, data, signature in view.digests():
        digest = orjson.loads(data)
        chosen = _overlaps(digest, start, end)
        log_files = []
        for ledger in LEDGERS:
            chain = digest["chains"][ledger]
            rows = streams[ledger].take(chain["startPosition"], chain["endPosition"])
            if not chosen:
                continue
            name = f"{seq:08d}_{ledger}.json.gz"
            body = b'{"Records":[' + b",".join(bytes(r.record) for r in rows) + b"]}"
            blob = gzip.compress(body, mtime=0)
            (directory / "logs" / name).write_bytes(blob)
            log_files.append(
                {
                    "s3Object": f"logs/{name}",
                    "ledger": ledger,
                    "hashValue": hashlib.sha256(blob).hexdigest(),
                    "hashAlgorithm": "SHA-256",
                    "firstPosition": chain["startPosition"] + 1,
                    "lastPosition": chain["endPosition"],
                }
            )
            records += len(rows)
            progress(len(rows))
        if chosen:
            entry = {"digest": digest, "signature": signature, "logFiles": log_files}
            # The signed bytes are kept verbatim beside the parsed copy.
            (directory / "digests" / f"{seq:08d}.json").write_bytes(
                orjson.dumps(entry | {"signedDigest": data.decode()}, option=orjson.OPT_INDENT_2)
            )
            written += 1
    return written, records


class _Cursor:
    """Takes consecutive ranges from one chain's record stream."""

    def __init__(self, records: Iterator[StoredRecord]) -> None:
        self._records = records
        self._pending: StoredRecord | None = None

    def take(self, after: int, through: int) -> list[StoredRecord]:
        rows: list[StoredRecord] = []
        while True:
            row = self._pending or next(self._records, None)
            self._pending = None
            if row is None:
                return rows
            if row.chain_pos <= after:
                continue
            if row.chain_pos > through:
                self._pending = row
                return rows
            rows.append(row)


def _overlaps(digest: Mapping[str, Any], start: datetime | None, end: datetime | None) -> bool:
    begin = _parse_time(digest.get("digestStartTime"))
    finish = _parse_time(digest["digestEndTime"])
    if start is not None and finish is not None and finish < start:
        return False
    return not (end is not None and begin is not None and begin > end)


def _parse_time(text: str | None) -> datetime | None:
    if text is None:
        return None
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


def verify_export(
    directory: Path,
    public_keys: Mapping[str, Ed25519PublicKey],
    progress: Callable[[int], None] = lambda _n: None,
) -> Report:
    """Offline: signatures, the digest chain, each log file's hash, and each chain
    segment recomputed from its records to the hash the digest signed."""
    report = Report()
    previous: tuple[bytes, str] | None = None
    last_seq: int | None = None
    for path in sorted((directory / "digests").glob("*.json")):
        where = f"digests/{path.name}"
        try:
            entry = orjson.loads(path.read_bytes())
            data = entry["signedDigest"].encode()
        except (orjson.JSONDecodeError, KeyError, TypeError):
            report.fail(where, "unreadable digest file")
            previous = None
            continue
        digest = _check_signature(report, where, data, entry.get("signature", ""), public_keys)
        report.digests += 1
        if digest is None:
            previous = None
            continue
        if last_seq is not None and digest["sequence"] != last_seq + 1:
            report.fail(where, f"digest {last_seq + 1} is missing")
        elif previous is not None:
            _check_digest_link(report, where, digest, previous)
        previous, last_seq = (data, entry["signature"]), digest["sequence"]
        _verify_segments(report, directory, digest, entry.get("logFiles") or [], progress)
    if report.digests == 0:
        report.fail(str(directory), "no digest files")
    return report


def _verify_segments(
    report: Report,
    directory: Path,
    digest: Mapping[str, Any],
    log_files: list[Mapping[str, Any]],
    progress: Callable[[int], None],
) -> None:
    by_ledger = {f.get("ledger"): f for f in log_files}
    for ledger, chain in digest["chains"].items():
        log = by_ledger.get(ledger)
        if log is None:
            report.fail(f"digest {digest['sequence']} {ledger}", "log file not listed")
            continue
        path = directory / str(log["s3Object"])
        where = str(log["s3Object"])
        if not path.is_file():
            report.fail(where, "not found")
            continue
        blob = path.read_bytes()
        if hashlib.sha256(blob).hexdigest() != log["hashValue"]:
            report.fail(where, "hash value doesn't match")
        try:
            records = orjson.loads(gzip.decompress(blob))["Records"]
        except (OSError, EOFError, orjson.JSONDecodeError, KeyError, TypeError):
            report.fail(where, "not a CloudTrail log file")
            continue
        head = chain["startHash"]
        for record in records:
            head = link(head, canonical(record))
        report.records += len(records)
        progress(len(records))
        expected = chain["endPosition"] - chain["startPosition"]
        if len(records) != expected:
            report.fail(where, f"holds {len(records)} records, the digest covers {expected}")
        elif head != chain["endHash"]:
            report.fail(where, f"records do not match signed digest {digest['sequence']}")
