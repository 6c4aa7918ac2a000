"""Shared fixtures: real servers on loopback and boto3 clients pointed at them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from api.config import Settings
from tests.postgres import Postgres
from tests.postgres import session as postgres_session
from tests.support import ThreadServer


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ThreadServer]:
    """A server on SQLite files in a fresh data directory."""
    running = ThreadServer(Settings(data_dir=tmp_path / "data", port=0)).start()
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
