"""Shared fixtures: real servers on loopback and boto3 clients pointed at them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from api.config import Settings
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
