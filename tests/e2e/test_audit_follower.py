"""`serve --audit-follower process`: the audit view is projected by a child process
(`keyledger audit follow`), which the server starts and stops, and which signs the closing
digest."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.support import ProcessServer
from tests.support import keyledger_cli as cli

pytestmark = pytest.mark.slow


def followers(data: Path) -> list[str]:
    found = subprocess.run(
        ["pgrep", "-f", f"audit follow --data-dir {data}"],
        capture_output=True,
        text=True,
        check=False,
    )
    return found.stdout.split()


def test_a_follower_process_projects_signs_and_stops_with_the_server(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    server = ProcessServer(data, extra_args=("--audit-follower", "process")).start()
    try:
        kms = server.client()
        key = kms.create_key()["KeyMetadata"]["KeyId"]
        for _ in range(3):
            kms.encrypt(KeyId=key, Plaintext=b"followed")
        assert len(followers(data)) == 1
        # no read through the server: only the follower can have projected these
        deadline = time.monotonic() + 10
        records: list[dict[str, object]] = []
        while time.monotonic() < deadline and len(records) < 4:
            records = json.loads(cli(data, "audit", "query", "--key", key, "--json").stdout)
            time.sleep(0.1)
        assert [r["eventName"] for r in records] == ["Encrypt"] * 3 + ["CreateKey"]
        trail = server.client("cloudtrail").lookup_events(
            LookupAttributes=[{"AttributeKey": "EventName", "AttributeValue": "Encrypt"}]
        )
        assert len(trail["Events"]) == 3
    finally:
        assert server.stop(signal.SIGTERM) == 0
    assert followers(data) == []
    verified = cli(data, "audit", "verify")
    assert verified.returncode == 0, verified.stderr
    assert "1 digests verified" in verified.stdout  # the follower's closing digest
    assert "not covered" not in verified.stderr
