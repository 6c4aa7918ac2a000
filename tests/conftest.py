"""Shared fixtures: real servers on loopback and boto3 clients pointed at them."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from api.config import Settings
from bench.at_rest import files_holding
from tests.postgres import Postgres
from tests.postgres import session as postgres_session
from tests.support import SECRETS_SEEN, ThreadServer

# KEYLEDGER_TEST_STORE=postgresql runs the tests that use `server` against PostgreSQL (a
# fresh database each); .ci/run does so for the subset named there.
TEST_STORE_ENV = "KEYLEDGER_TEST_STORE"


@pytest.fixture
def server(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[ThreadServer]:
    """A server on SQLite files in a fresh data directory (or on PostgreSQL, above)."""
    store = None
    if os.environ.get(TEST_STORE_ENV) == "postgresql":
        store = request.getfixturevalue("pg_store")
    running = ThreadServer(Settings(data_dir=tmp_path / "data", port=0, store=store)).start()
    yield running
    running.stop()


@pytest.fixture
def kms(server: ThreadServer) -> Any:
    return server.client()


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    """One PostgreSQL server for the session (see tests/postgres.py)."""
    yield from postgres_session()


@pytest.fixture
def pg_store(postgres: Postgres) -> str:
    """A fresh, empty database on it: its postgresql:// URL."""
    return postgres.create_database()


@pytest.fixture(scope="session", autouse=True)
def no_secret_at_rest(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """After the whole session's workloads: no plaintext or data key that any test's KMS
    client sent or was given (tests/support.py) is in any file of any data directory the
    session made (SQLite stores, WAL and SHM included, keys, views), raw, base64 or hex."""
    yield
    base = tmp_path_factory.getbasetemp()
    stores = {p.parent for name in ("keyledger.db", "root.key") for p in base.rglob(name)}
    files = [f for store in sorted(stores) for f in store.iterdir() if f.is_file()]
    found = files_holding(files, SECRETS_SEEN)
    assert not found, f"secrets at rest: {found}"
