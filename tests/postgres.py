"""A real PostgreSQL server for tests: initdb'd in a temporary directory, run by an
unprivileged user (PostgreSQL refuses to run as root), on a free loopback port.

Without the server programs the tests that need it skip, saying why; with
KEYLEDGER_REQUIRE_POSTGRES=1 (set by .ci/run) that skip is a failure instead.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from api.app import Stores, open_stores
from eventstore.migrate import copy_log
from tests.support import free_port

USER = "keyledger-pg"
PASSWORD = "pg-secret-for-tests"
REQUIRE_ENV = "KEYLEDGER_REQUIRE_POSTGRES"


def _bin_dir() -> Path | None:
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(candidates[-1]).parent if candidates else None


def _as_user(*args: str) -> list[str]:
    if os.geteuid() == 0:
        return ["runuser", "-u", USER, "--", *args]
    return list(args)


@dataclass
class Postgres:
    port: int
    directory: Path
    bin_dir: Path
    durable: bool = False  # fsync on (benchmarks); tests run with it off

    def url(self, database: str = "postgres", password: str = PASSWORD) -> str:
        return f"postgresql://{USER}:{password}@127.0.0.1:{self.port}/{database}"

    def create_database(self) -> str:
        import psycopg

        name = f"kl_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def pause(self) -> None:
        """Stop the server, keeping its data: an outage, for the tests of one."""
        subprocess.run(
            _as_user(
                str(self.bin_dir / "pg_ctl"), "-D", str(self.directory / "db"), "-m", "fast", "stop"
            ),
            check=False,
            capture_output=True,
        )

    def resume(self) -> None:
        """Start the server again on the same port and data (after ``pause``)."""
        _run_server(self.bin_dir, self.directory, self.port, self.durable)

    def stop(self) -> None:
        self.pause()
        shutil.rmtree(self.directory, ignore_errors=True)


def start(durable: bool = False) -> Postgres:
    """``durable``: PostgreSQL's defaults (fsync on), as benchmarks need; tests run with
    fsync off, since a test's database dies with the test anyway."""
    bin_dir = _bin_dir()
    if bin_dir is None:
        message = "PostgreSQL server programs (initdb, pg_ctl) are not installed"
        if os.environ.get(REQUIRE_ENV) == "1":
            pytest.fail(f"{message}, and {REQUIRE_ENV}=1")
        pytest.skip(message)
    if os.geteuid() == 0:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", USER], check=False, capture_output=True
        )
    directory = Path(tempfile.mkdtemp(prefix="keyledger-pg-"))
    password_file = directory / "pw"
    password_file.write_text(PASSWORD)
    if os.geteuid() == 0:
        shutil.chown(directory, USER)
        shutil.chown(password_file, USER)
    subprocess.run(
        _as_user(
            str(bin_dir / "initdb"),
            "-D",
            str(directory / "db"),
            "-U",
            USER,
            "--auth=scram-sha-256",
            f"--pwfile={password_file}",
            "--encoding=UTF8",
            "--no-sync",
        ),
        check=True,
        capture_output=True,
    )
    port = free_port()
    _run_server(bin_dir, directory, port, durable)
    return Postgres(port, directory, bin_dir, durable)


def _run_server(bin_dir: Path, directory: Path, port: int, durable: bool) -> None:
    options = f"-c listen_addresses=127.0.0.1 -p {port} -k {directory} -c max_connections=200"
    if not durable:
        options += " -c fsync=off"
    subprocess.run(
        _as_user(
            str(bin_dir / "pg_ctl"),
            "-D",
            str(directory / "db"),
            "-o",
            options,
            "-l",
            str(directory / "log"),
            "-w",
            "start",
        ),
        check=True,
        capture_output=True,
    )


def session() -> Iterator[Postgres]:
    server = start()
    try:
        yield server
    finally:
        server.stop()


@contextmanager
def logs_copied(data_dir: Path, url: str, pg_dir: Path) -> Iterator[Stores]:
    """The logs of a SQLite data directory copied into the database at ``url`` (as
    `keyledger migrate` copies them), opened there with ``pg_dir`` for the view files."""
    pg_dir.mkdir()
    target = open_stores(pg_dir, os.environ, store=url)
    try:
        source = open_stores(data_dir, os.environ)
        try:
            copy_log(source.ledger, target.ledger)
            copy_log(source.usage, target.usage)
        finally:
            source.close()
        yield target
    finally:
        target.close()
