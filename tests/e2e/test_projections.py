"""Projection tooling end to end: `keyledger projections status | rebuild` against a
running `keyledger serve`, with boto3 load, a kill -9 mid-rebuild, and a held lock."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from api.app import view_paths
from projections.rebuild import rebuild_lock
from tests.support import REPO, ProcessServer, keyledger_cli


@pytest.fixture
def served(tmp_path: Path) -> Iterator[ProcessServer]:
    server = ProcessServer(tmp_path / "data").start()
    try:
        yield server
    finally:
        server.stop()


def _populate(kms: Any, count: int) -> list[str]:
    keys = []
    for n in range(count):
        key_id = kms.create_key(Tags=[{"TagKey": "n", "TagValue": str(n)}])["KeyMetadata"]["KeyId"]
        kms.create_alias(AliasName=f"alias/p{n}", TargetKeyId=key_id)
        kms.create_grant(
            KeyId=key_id,
            GranteePrincipal="arn:aws:iam::000000000000:role/app",
            Operations=["Encrypt"],
        )
        keys.append(key_id)
    return keys


def _rows(path: str, table: str) -> list[tuple[Any, ...]]:
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return sorted(db.execute(f"SELECT * FROM {table}").fetchall())  # noqa: S608
    finally:
        db.close()


def test_status_on_the_command_line_and_over_http(served: ProcessServer) -> None:
    kms = served.client()
    _populate(kms, 3)
    kms.list_keys()  # the keys view has caught up with this server's writes
    done = keyledger_cli(served.data_dir, "projections", "status", "--json", "--sample", "0.2")
    assert done.returncode == 0, done.stderr
    views = {v["name"]: v for v in json.loads(done.stdout)["views"]}
    assert set(views) == {"keys", "grants", "audit", "usage"}
    for view in views.values():
        assert view["head"] > 0
        assert 0 <= view["lag_events"] == view["head"] - view["position"]
        assert view["schema_version"] == view["code_schema_version"]
        assert view["rate_events_per_second"] is not None
    assert views["keys"]["lag_events"] == 0  # ListKeys caught it up
    table = keyledger_cli(served.data_dir, "projections", "status", "--sample", "0")
    assert table.returncode == 0 and "grants" in table.stdout and "events/s" in table.stdout

    with urllib.request.urlopen(f"{served.endpoint}/projections", timeout=10) as response:
        over_http = {v["name"]: v for v in json.loads(response.read())["views"]}
    assert {"keys", "grants", "audit", "usage-keys", "usage-requests"} <= set(over_http)
    for view in over_http.values():
        assert {"position", "head", "lag_events", "lag_seconds"} <= set(view)
        assert {"rate_events_per_second", "schema_version"} <= set(view)
    assert over_http["keys"]["rate_events_per_second"] >= 0


def test_rebuild_while_a_load_runs_switches_to_an_equal_view(served: ProcessServer) -> None:
    kms = served.client()
    keys = _populate(kms, 5)
    failures: list[BaseException] = []
    made: list[str] = []
    stop = threading.Event()

    def load() -> None:
        client = served.client()
        n = 0
        while not stop.is_set():
            try:
                key_id = client.create_key()["KeyMetadata"]["KeyId"]
                client.create_alias(AliasName=f"alias/load{n}", TargetKeyId=key_id)
                client.tag_resource(KeyId=key_id, Tags=[{"TagKey": "t", "TagValue": str(n)}])
                client.encrypt(KeyId=key_id, Plaintext=b"x")
                client.list_aliases(KeyId=key_id)
                made.append(key_id)
                n += 1
            except Exception as error:  # noqa: BLE001 (every failure counts, whatever its kind)
                failures.append(error)

    worker = threading.Thread(target=load)
    worker.start()
    try:
        done = keyledger_cli(served.data_dir, "projections", "rebuild", "--all")
        second = keyledger_cli(served.data_dir, "projections", "rebuild", "keys")
    finally:
        stop.set()
        worker.join()
    assert done.returncode == 0, done.stderr
    assert second.returncode == 0, second.stderr
    assert failures == []
    assert made, "the load ran during the rebuild"
    # At the switch both copies stood at the same position and held the same rows.
    assert done.stdout.count("equal to the live view") == 3, done.stdout
    assert "equal to the live view" in second.stdout  # idempotent: the same view again
    assert not Path(view_paths(served.data_dir)["keys"] + ".rebuild").exists()

    # The server kept following the log into the switched view.
    after = kms.create_key()["KeyMetadata"]["KeyId"]
    listed = {
        k["KeyId"] for k in kms.get_paginator("list_keys").paginate().build_full_result()["Keys"]
    }
    assert {*keys, *made, after} <= listed
    aliases = kms.list_aliases(KeyId=made[-1])["Aliases"]
    assert [a["AliasName"] for a in aliases] == [f"alias/load{len(made) - 1}"]
    assert len(kms.list_grants(KeyId=keys[0])["Grants"]) == 1


_KILLED_MID_BUILD = """
import os, signal, sys
from pathlib import Path
from api.app import open_stores, view_paths
from projections.keys_view import KeysView
from projections.rebuild import Rebuild, rebuild_lock

data_dir = Path(sys.argv[1])
opened = open_stores(data_dir, os.environ)
path = view_paths(data_dir)["keys"]
with rebuild_lock(path):
    rebuild = Rebuild([opened.ledger], KeysView, path, batch=10)
    batches = []

    def advance(n):
        batches.append(n)
        if len(batches) == 2:
            print(rebuild.position, rebuild.head(), flush=True)
            os.kill(os.getpid(), signal.SIGKILL)

    rebuild.build(advance)
"""


def test_a_rebuild_killed_mid_way_resumes_and_a_second_one_is_refused(
    served: ProcessServer,
) -> None:
    kms = served.client()
    _populate(kms, 12)
    killed = subprocess.run(
        [sys.executable, "-c", _KILLED_MID_BUILD, str(served.data_dir)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert killed.returncode == -9, killed.stderr
    # two pages of 10 of the view's events in: mid-way through the log
    reached, head = map(int, killed.stdout.split())
    assert 20 <= reached < head

    path = view_paths(served.data_dir)["keys"]
    with rebuild_lock(path):  # as if another rebuild were running
        refused = keyledger_cli(served.data_dir, "projections", "rebuild", "keys")
    assert refused.returncode == 3
    assert "another rebuild" in refused.stderr

    before = {t: _rows(path, t) for t in ("keys", "aliases", "tags")}
    resumed = keyledger_cli(served.data_dir, "projections", "rebuild", "keys")
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming the rebuild at position {reached}" in resumed.stdout
    assert "equal to the live view" in resumed.stdout
    assert {t: _rows(path, t) for t in ("keys", "aliases", "tags")} == before
    assert len(before["keys"]) == 12 and len(before["aliases"]) == 12


def test_rebuild_repairs_a_damaged_view(served: ProcessServer) -> None:
    kms = served.client()
    keys = _populate(kms, 3)
    kms.list_keys()
    path = view_paths(served.data_dir)["keys"]
    db = sqlite3.connect(path)
    db.execute("DELETE FROM aliases")  # a damaged read model
    db.commit()
    db.close()
    assert kms.list_aliases(KeyId=keys[0])["Aliases"] == []
    done = keyledger_cli(served.data_dir, "projections", "rebuild", "keys")
    assert done.returncode == 0, done.stderr
    assert "3 rows differed from the live view (now corrected)" in done.stdout
    assert [a["AliasName"] for a in kms.list_aliases(KeyId=keys[0])["Aliases"]] == ["alias/p0"]


def test_rebuild_needs_a_name_or_all(tmp_path: Path) -> None:
    done = keyledger_cli(tmp_path, "projections", "rebuild")
    assert done.returncode == 2
    assert "--all" in done.stderr


def test_backup_while_serving_and_restore_round_trip(served: ProcessServer, tmp_path: Path) -> None:
    kms = served.client()
    keys = _populate(kms, 4)
    blob = kms.encrypt(KeyId=keys[0], Plaintext=b"kept")["CiphertextBlob"]
    backup = keyledger_cli(served.data_dir, "backup", str(tmp_path / "backup"))
    assert backup.returncode == 0, backup.stderr
    assert "4 keys replayed" in backup.stdout
    assert "the root key is not in the backup" in backup.stdout
    assert not (tmp_path / "backup" / "root.key").exists()
    with_key = keyledger_cli(
        served.data_dir, "backup", str(tmp_path / "full"), "--include-root-key"
    )
    assert with_key.returncode == 0, with_key.stderr
    assert (tmp_path / "full" / "root.key").read_bytes() == (
        served.data_dir / "root.key"
    ).read_bytes()
    refused = keyledger_cli(served.data_dir, "backup", str(tmp_path / "full"))
    assert refused.returncode == 2 and "not empty" in refused.stderr
    kms.create_key()  # after the backup: not in it

    restored = tmp_path / "restored"
    done = keyledger_cli(restored, "restore", str(tmp_path / "full"))
    assert done.returncode == 0, done.stderr
    assert "4 keys replayed" in done.stdout
    verified = keyledger_cli(restored, "audit", "verify")
    assert verified.returncode == 0, verified.stderr
    server = ProcessServer(restored).start()
    try:
        again = server.client()
        assert again.decrypt(CiphertextBlob=blob)["Plaintext"] == b"kept"
        listed = {k["KeyId"] for k in again.list_keys()["Keys"]}
        assert listed == set(keys)
        assert [a["AliasName"] for a in again.list_aliases(KeyId=keys[1])["Aliases"]] == [
            "alias/p1"
        ]
    finally:
        server.stop()
