"""keyledger on PostgreSQL: a real server started as an unprivileged user, real
`keyledger serve --store postgresql://…` processes, real boto3."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from pathlib import Path

import psycopg

from tests.postgres import PASSWORD, Postgres
from tests.support import REPO, ProcessServer, free_port

ROOT_KEY = {"KEYLEDGER_ROOT_KEY": base64.b64encode(bytes(range(32))).decode()}


def _serve(data_dir: Path, store: str, *extra: str) -> ProcessServer:
    """Every process on one store shares the root key (here through the environment)."""
    return ProcessServer(data_dir, extra_args=("--store", store, *extra), env=ROOT_KEY).start()


def test_a_server_on_postgresql_serves_keys(tmp_path: Path, pg_store: str) -> None:
    server = _serve(tmp_path / "a", pg_store)
    try:
        kms = server.client()
        key_id = kms.create_key(Description="on pg")["KeyMetadata"]["KeyId"]
        kms.create_alias(AliasName="alias/pg", TargetKeyId=key_id)
        blob = kms.encrypt(KeyId="alias/pg", Plaintext=b"hello")["CiphertextBlob"]
        assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == b"hello"
        assert [a["AliasName"] for a in kms.list_aliases(KeyId=key_id)["Aliases"]] == ["alias/pg"]
    finally:
        server.stop()
    # Restart on the same database (a new data directory: the views rebuild from its log).
    again = _serve(tmp_path / "b", pg_store)
    try:
        kms = again.client()
        assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == b"hello"
        assert kms.describe_key(KeyId="alias/pg")["KeyMetadata"]["Description"] == "on pg"
    finally:
        again.stop()
    assert not (tmp_path / "a" / "keyledger.db").exists()  # the ledgers are in PostgreSQL


def _start_fails(tmp_path: Path, store: str, env: dict[str, str] | None = None) -> str:
    """`keyledger serve` that must refuse to start: its output (one clear line)."""
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "api",
            "serve",
            "--port",
            str(free_port()),
            "--data-dir",
            str(tmp_path / "refused"),
            "--store",
            store,
            "--log-format",
            "text",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **ROOT_KEY, **(env or {})},
        check=False,
    )
    assert done.returncode == 2, done.stderr
    lines = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]
    assert len(lines) == 1, lines
    assert PASSWORD not in lines[0]
    return lines[0]


def test_bad_stores_stop_the_server_with_one_line(
    tmp_path: Path, postgres: Postgres, pg_store: str
) -> None:
    unreachable = f"postgresql://u:{PASSWORD}@127.0.0.1:{free_port()}/db"
    assert "cannot open the PostgreSQL store" in _start_fails(tmp_path, unreachable)
    wrong = pg_store.replace(PASSWORD, "not-the-password")
    line = _start_fails(tmp_path, wrong)
    assert "password authentication failed" in line and "not-the-password" not in line

    server = _serve(tmp_path / "a", pg_store)
    server.client().create_key()
    server.stop()
    other_root = {"KEYLEDGER_ROOT_KEY": base64.b64encode(bytes(32)).decode()}
    assert "root key does not match" in _start_fails(tmp_path, pg_store, other_root)

    with psycopg.connect(pg_store, autocommit=True) as conn:
        conn.execute("UPDATE keyledger_store SET version = 99")
        events = conn.execute("SELECT count(*) FROM keyledger_events").fetchone()[0]
    assert "version 99" in _start_fails(tmp_path, pg_store)
    with psycopg.connect(pg_store, autocommit=True) as conn:  # and nothing was written
        assert conn.execute("SELECT count(*) FROM keyledger_events").fetchone()[0] == events
