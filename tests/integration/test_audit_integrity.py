"""Tamper evidence: the hash chains, signed digests, ``keyledger audit verify`` and
``audit export``, on real SQLite files written by a real server; and a rebuild of the
audit view from position 0 that reproduces the same records and the same chains."""

from __future__ import annotations

import contextlib
import gzip
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from eventsourcing.sqlite import SQLiteDatastore

from api.config import Settings
from eventstore.audit_key import AuditSigner
from projections.audit_integrity import make_digest
from projections.audit_runner import AuditRunner
from projections.audit_view import GENESIS, AuditView, link
from tests.integration.stores import open_ledger, open_usage
from tests.support import REPO, ThreadServer, keyledger_cli

SECRET = b"never in the trail"


@pytest.fixture(scope="module")
def trail_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A stopped server's data directory: keys, aliases, crypto calls, failures, and
    four signed digests (the third over an empty interval, the last at shutdown)."""
    data = tmp_path_factory.mktemp("trail") / "data"
    server = ThreadServer(Settings(data_dir=data, port=0)).start()
    kms = server.client()
    keys = [kms.create_key(Description=f"k{i}")["KeyMetadata"]["KeyId"] for i in range(3)]
    kms.create_alias(AliasName="alias/audit", TargetKeyId=keys[0])
    for i in range(12):
        kms.encrypt(KeyId=keys[i % 3], Plaintext=SECRET)
    run_cli("audit", "digest", data=data)
    kms.update_alias(AliasName="alias/audit", TargetKeyId=keys[1])
    for key in keys:
        kms.describe_key(KeyId=key)
    with contextlib.suppress(kms.exceptions.NotFoundException):
        kms.describe_key(KeyId="alias/missing")
    run_cli("audit", "digest", data=data)
    run_cli("audit", "digest", data=data)
    server.stop()
    yield data


def run_cli(*args: str, data: Path) -> subprocess.CompletedProcess[str]:
    return keyledger_cli(data, *args)


def verify(data: Path) -> subprocess.CompletedProcess[str]:
    return run_cli("audit", "verify", data=data)


@pytest.fixture
def copy(trail_dir: Path, tmp_path: Path) -> Path:
    target = tmp_path / "data"
    shutil.copytree(trail_dir, target)
    return target


def damage(data: Path, *statements: tuple[str, tuple[Any, ...]]) -> None:
    with sqlite3.connect(data / "audit.db") as db:
        for sql, params in statements:
            db.execute(sql, params)


def row(data: Path, ledger: str, pos: int) -> tuple[bytes, str]:
    with sqlite3.connect(data / "audit.db") as db:
        record, digest = db.execute(
            "SELECT record, hash FROM audit_records WHERE ledger = ? AND chain_pos = ?",
            (ledger, pos),
        ).fetchone()
    return bytes(record), digest


def first_bad(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 1, result.stdout + result.stderr
    line = next(x for x in result.stderr.splitlines() if "first bad position" in x)
    return line.split("first bad position: ", 1)[1].strip()


def test_an_intact_trail_verifies(trail_dir: Path) -> None:
    result = verify(trail_dir)
    assert result.returncode == 0, result.stderr
    assert "4 digests verified" in result.stdout  # the last one signed at shutdown


def test_a_modified_record_is_found(copy: Path) -> None:
    record, _ = row(copy, "UsageLedger", 5)
    forged = record.replace(b'"Encrypt"', b'"Decrypt"')
    assert forged != record
    damage(
        copy,
        (
            "UPDATE audit_records SET record = ? WHERE ledger = 'UsageLedger' AND chain_pos = 5",
            (forged,),
        ),
    )
    assert first_bad(verify(copy)) == "UsageLedger record 5"


def test_a_deleted_record_is_found(copy: Path) -> None:
    damage(copy, ("DELETE FROM audit_records WHERE ledger = 'KeyLedger' AND chain_pos = 2", ()))
    assert first_bad(verify(copy)) == "KeyLedger record 2"


def test_a_deleted_and_renumbered_record_is_found(copy: Path) -> None:
    damage(
        copy,
        ("DELETE FROM audit_records WHERE ledger = 'UsageLedger' AND chain_pos = 4", ()),
        (
            "UPDATE audit_records SET chain_pos = -(chain_pos - 1) "
            "WHERE ledger = 'UsageLedger' AND chain_pos > 4",
            (),
        ),
        ("UPDATE audit_records SET chain_pos = -chain_pos WHERE chain_pos < 0", ()),
    )
    assert first_bad(verify(copy)) == "UsageLedger record 4"


def test_an_inserted_record_is_found_even_with_a_correct_link(copy: Path) -> None:
    record, _ = row(copy, "UsageLedger", 6)
    _, previous = row(copy, "UsageLedger", 6)
    forged = record.replace(b"127.0.0.1", b"10.6.6.6")
    damage(
        copy,
        (
            "UPDATE audit_records SET chain_pos = -(chain_pos + 1) "
            "WHERE ledger = 'UsageLedger' AND chain_pos > 6",
            (),
        ),
        ("UPDATE audit_records SET chain_pos = -chain_pos WHERE chain_pos < 0", ()),
        (
            "INSERT INTO audit_records (ledger, chain_pos, position, event_id, event_time, "
            "event_name, event_source, read_only, record, hash) "
            "VALUES ('UsageLedger', 7, 0, 'x', 0, 'Encrypt', 'kms.amazonaws.com', 1, ?, ?)",
            (forged, link(previous, forged)),
        ),
    )
    assert first_bad(verify(copy)) == "UsageLedger record 7"


def test_reordered_records_are_found(copy: Path) -> None:
    move = "UPDATE audit_records SET chain_pos = ? WHERE ledger = 'UsageLedger' AND chain_pos = ?"
    damage(copy, (move, (-1, 8)), (move, (8, 9)), (move, (9, -1)))
    assert first_bad(verify(copy)) == "UsageLedger record 8"


def test_a_rewritten_chain_is_caught_by_the_signed_digest(copy: Path) -> None:
    """The strongest forger rewrites a record and every link after it; only the digest,
    signed with a key the forger does not hold, still disagrees."""
    with sqlite3.connect(copy / "audit.db") as db:
        rows = db.execute(
            "SELECT chain_pos, record FROM audit_records WHERE ledger = 'UsageLedger' "
            "ORDER BY chain_pos"
        ).fetchall()
        head = GENESIS
        for pos, record in rows:
            data = bytes(record).replace(b"127.0.0.1", b"10.9.9.9") if pos == 3 else bytes(record)
            head = link(head, data)
            db.execute(
                "UPDATE audit_records SET record = ?, hash = ? "
                "WHERE ledger = 'UsageLedger' AND chain_pos = ?",
                (data, head, pos),
            )
    assert first_bad(verify(copy)).startswith("UsageLedger records 1..")


def test_a_missing_digest_is_found(copy: Path) -> None:
    damage(copy, ("DELETE FROM audit_digests WHERE seq = 2", ()))
    assert first_bad(verify(copy)) == "digest 2"


def test_a_forged_digest_is_found(copy: Path) -> None:
    """Re-signed with a key that is not the published one; then with a claimed fingerprint."""
    forger = AuditSigner(Ed25519PrivateKey.generate())
    with sqlite3.connect(copy / "audit.db") as db:
        previous = db.execute(
            "SELECT digest, signature FROM audit_digests WHERE seq = 3"
        ).fetchone()
        db.execute("DELETE FROM audit_digests WHERE seq = 4")
    datastore = SQLiteDatastore(str(copy / "audit.db"))
    view = AuditView(datastore)
    view.create_table()
    view.append_digest(make_digest(forger, datetime.now(UTC)))
    datastore.close()
    assert first_bad(verify(copy)) == "digest 4"
    assert "public key not found" in verify(copy).stderr
    with sqlite3.connect(copy / "audit.db") as db:
        data = orjson.loads(
            db.execute("SELECT digest FROM audit_digests WHERE seq = 4").fetchone()[0]
        )
        data["digestPublicKeyFingerprint"] = orjson.loads(previous[0])["digestPublicKeyFingerprint"]
        forged = orjson.dumps(data, option=orjson.OPT_SORT_KEYS)
        db.execute(
            "UPDATE audit_digests SET digest = ?, signature = ? WHERE seq = 4",
            (forged, forger.sign(forged).hex()),
        )
    assert "signature verification failed" in verify(copy).stderr


def test_an_export_verifies_offline_and_an_edited_file_fails(
    trail_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "export"
    result = run_cli("audit", "export", str(out), data=trail_dir)
    assert result.returncode == 0, result.stderr
    logs = sorted((out / "logs").glob("*.json.gz"))
    assert logs and sorted(p.name for p in (out / "digests").glob("*.json")) == [
        "00000001.json",
        "00000002.json",
        "00000003.json",
        "00000004.json",
    ]
    records = [r for p in logs for r in orjson.loads(gzip.decompress(p.read_bytes()))["Records"]]
    assert {r["eventName"] for r in records} >= {"CreateKey", "Encrypt", "UpdateAlias"}
    assert SECRET.decode() not in str(records)
    # offline: a copy of the directory and the published public key, no stores
    offline = tmp_path / "offline"
    shutil.copytree(out, offline)
    public_key = tmp_path / "audit.pem"
    shutil.copy(trail_dir / "audit-public-key.pem", public_key)
    check = [sys.executable, "-m", "api", "audit", "verify", "--dir", str(offline)]
    check += ["--public-key", str(public_key)]
    ok = subprocess.run(check, cwd=REPO, capture_output=True, text=True, timeout=60, check=False)
    assert ok.returncode == 0, ok.stderr
    assert f"{len(records)} records and 4 digests verified" in ok.stdout
    # edit one record inside one log file, keeping it valid gzipped JSON
    victim = sorted((offline / "logs").glob("*UsageLedger.json.gz"))[0]
    body = orjson.loads(gzip.decompress(victim.read_bytes()))
    body["Records"][0]["sourceIPAddress"] = "10.0.0.1"
    victim.write_bytes(gzip.compress(orjson.dumps(body)))
    bad = subprocess.run(check, cwd=REPO, capture_output=True, text=True, timeout=60, check=False)
    assert bad.returncode == 1
    assert f"first bad position: logs/{victim.name}" in bad.stderr
    assert "hash value doesn't match" in bad.stderr


def test_an_export_limited_in_time_holds_only_its_digests(trail_dir: Path, tmp_path: Path) -> None:
    with sqlite3.connect(trail_dir / "audit.db") as db:
        second = orjson.loads(
            db.execute("SELECT digest FROM audit_digests WHERE seq = 2").fetchone()[0]
        )
    out = tmp_path / "export"
    end = second["digestEndTime"]
    result = run_cli("audit", "export", "--from", end, "--to", end, str(out), data=trail_dir)
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in (out / "digests").glob("*.json")) == [
        "00000002.json",
        "00000003.json",
    ]


def test_rebuilding_the_view_from_position_zero_gives_the_same_records_and_chain(
    trail_dir: Path, tmp_path: Path
) -> None:
    ledger, usage = open_ledger(trail_dir), open_usage(trail_dir)
    datastore = SQLiteDatastore(str(tmp_path / "rebuilt.db"))
    rebuilt = AuditView(datastore)
    rebuilt.create_table()
    # a small batch, so requests straddle batch boundaries differently than they did live
    AuditRunner(ledger, usage, rebuilt, batch=3).catch_up()
    query = (
        "SELECT ledger, chain_pos, position, event_id, record, hash FROM audit_records "
        "ORDER BY ledger, chain_pos"
    )
    with sqlite3.connect(trail_dir / "audit.db") as db:
        original = db.execute(query).fetchall()
    with sqlite3.connect(tmp_path / "rebuilt.db") as db:
        again = db.execute(query).fetchall()
    assert len(original) > 20
    assert again == original
    heads = rebuilt.heads()
    assert heads["UsageLedger"][1] == original[-1][5]
    datastore.close()
    ledger.close()
    usage.close()
