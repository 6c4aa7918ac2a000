"""The crash campaign (bench/crash.py), short: a few SIGKILL cycles under mixed load from
four clients, on SQLite and on PostgreSQL; everything acknowledged survives, nothing cut
off is half applied, every acknowledged request has its record (read from the store), the
audit chain verifies, and no test plaintext, data key or key material is anywhere in the
data directory (nor in the PostgreSQL server's files). The by-hand run does 100 cycles."""

from __future__ import annotations

import base64
import os
from pathlib import Path

from bench.at_rest import files_holding
from bench.crash import Journal, checkpoint, run, scan
from tests.postgres import start


def test_three_crash_cycles_lose_nothing_acknowledged(tmp_path: Path) -> None:
    result = run(3, tmp_path / "data", clients=4, seed=15, at_rest=True, say=lambda _: None)
    assert result["failures"] == []
    assert result["requests_acknowledged"] > 0 and result["ciphertexts"] > 0
    assert result["scanned"]["key_materials_and_wrapping_keys"] >= 2 * result["keys"]
    assert result["scanned"]["controls_found"] > 0


def test_crash_cycles_on_postgresql_lose_nothing_acknowledged(tmp_path: Path) -> None:
    postgres = start()
    try:
        result = run(
            2,
            tmp_path / "data",
            clients=4,
            store=postgres.create_database(),
            seed=15,
            at_rest=True,
            scan_also=(postgres.directory,),
            before_scan=checkpoint,
            say=lambda _: None,
        )
    finally:
        postgres.stop()
    assert result["failures"] == []
    assert result["requests_acknowledged"] > 0 and result["audit_records"] > 0
    assert result["scanned"]["controls_found"] > 0  # it read where PostgreSQL keeps rows


def test_the_scan_finds_a_secret_wherever_it_lies(tmp_path: Path) -> None:
    """The scan looks needles up by aligned windows: a needle at any offset, in any of
    its three forms, is found; one that is absent is not."""
    secret, absent = os.urandom(32), os.urandom(32)
    journal = Journal("c0", request_ids=["0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"])
    for offset, form in enumerate((secret, base64.b64encode(secret), secret.hex().encode())):
        folder = tmp_path / str(offset)
        folder.mkdir()
        filler = os.urandom(4096 + offset * 3 + 1)
        (folder / "f").write_bytes(filler + form + filler + journal.request_ids[0].encode())
        hits, scanned = scan([folder], [journal], (secret,))
        assert len(hits) == 1 and scanned["controls_found"] == 1, (offset, hits)
        assert scan([folder], [journal], (absent,))[0] == []


def test_the_scan_finds_repetitive_secrets_in_repetitive_files(tmp_path: Path) -> None:
    """A plaintext of one repeated byte in a file full of such bytes (SQLite pages are
    mostly zeros) is found, and does not make every other secret's lookup crawl."""
    zeros, xs, random_secret = b"\0" * 40, b"x" * 4096, os.urandom(32)
    (tmp_path / "pages").write_bytes(b"\0" * 2_000_000 + b"x" * 5000)
    found = files_holding([tmp_path / "pages"], [zeros, xs, random_secret])
    assert found == {tmp_path / "pages": 2}
