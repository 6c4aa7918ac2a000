"""keyledger on PostgreSQL: a real server started as an unprivileged user, real
`keyledger serve --store postgresql://…` processes, real boto3."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from botocore.exceptions import ClientError

from tests.e2e.authz_config import CAST, toml_text
from tests.postgres import PASSWORD, Postgres
from tests.support import REPO, ProcessServer, advance, free_port

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


@pytest.fixture
def pair(tmp_path: Path, pg_store: str) -> Iterator[tuple[ProcessServer, ProcessServer]]:
    """Two `keyledger serve` processes (as if on two hosts) on one PostgreSQL."""
    first = _serve(tmp_path / "a", pg_store, "--dev-clock")
    second = _serve(tmp_path / "b", pg_store, "--dev-clock")
    try:
        yield first, second
    finally:
        first.stop()
        second.stop()


def test_two_processes_lose_no_update_and_one_alias_wins(
    pair: tuple[ProcessServer, ProcessServer],
) -> None:
    a, b = (server.client() for server in pair)
    key_id = a.create_key()["KeyMetadata"]["KeyId"]
    failures: list[Exception] = []

    def tag(kms: Any, prefix: str) -> None:
        for n in range(15):
            try:
                kms.tag_resource(KeyId=key_id, Tags=[{"TagKey": f"{prefix}{n}", "TagValue": "v"}])
            except Exception as error:  # noqa: BLE001 (any failure is a lost update)
                failures.append(error)

    workers = [threading.Thread(target=tag, args=(c, p)) for c, p in ((a, "a"), (b, "b"))]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert failures == []
    for kms in (a, b):
        tags = {t["TagKey"] for t in kms.list_resource_tags(KeyId=key_id, Limit=50)["Tags"]}
        assert tags == {f"{p}{n}" for p in "ab" for n in range(15)}

    targets = [c.create_key()["KeyMetadata"]["KeyId"] for c in (a, b)]
    for round_ in range(5):
        outcomes: list[str] = []
        name = f"alias/race{round_}"
        racers = [
            threading.Thread(target=_create_alias, args=(c, name, t, outcomes))
            for c, t in zip((a, b), targets, strict=True)
        ]
        for racer in racers:
            racer.start()
        for racer in racers:
            racer.join()
        assert sorted(outcomes) == ["AlreadyExistsException", "ok"], outcomes
        owner = a.describe_key(KeyId=f"alias/race{round_}")["KeyMetadata"]["KeyId"]
        assert b.describe_key(KeyId=f"alias/race{round_}")["KeyMetadata"]["KeyId"] == owner


def _create_alias(kms: Any, name: str, target: str, outcomes: list[str]) -> None:
    try:
        kms.create_alias(AliasName=name, TargetKeyId=target)
        outcomes.append("ok")
    except ClientError as error:
        outcomes.append(error.response["Error"]["Code"])


# The stated bound for a change through one process to be enforced by another. Key state
# and policy: the other process's read cache drops the key when its listener reads the
# NOTIFY that PostgreSQL sends at the commit (milliseconds; bench/postgres.py measures).
# Grants: that, plus the grants view's catch-up (no propagation delay configured here).
BOUND_SECONDS = 1.0


def refused_within(call: Any, code: str, **params: Any) -> float:
    """Seconds until ``call`` is refused with ``code``; fails the test after the bound."""
    began = time.monotonic()
    while True:
        try:
            call(**params)
        except ClientError as error:
            assert error.response["Error"]["Code"] == code, error.response
            return time.monotonic() - began
        if time.monotonic() - began > BOUND_SECONDS:
            pytest.fail(f"still allowed {BOUND_SECONDS}s after the change was acknowledged")
        time.sleep(0.01)


def test_a_disable_through_one_is_refused_through_the_other_within_the_bound(
    pair: tuple[ProcessServer, ProcessServer],
) -> None:
    a, b = (server.client() for server in pair)
    key_id = a.create_key()["KeyMetadata"]["KeyId"]
    blob = b.encrypt(KeyId=key_id, Plaintext=b"x")["CiphertextBlob"]  # b keeps the key cached
    for _ in range(10):
        assert b.decrypt(CiphertextBlob=blob)["Plaintext"] == b"x"  # cached, and current
        a.disable_key(KeyId=key_id)
        refused_within(b.decrypt, "DisabledException", CiphertextBlob=blob)
        a.enable_key(KeyId=key_id)
        began = time.monotonic()
        while True:  # and the enable comes through within the same bound
            try:
                assert b.decrypt(CiphertextBlob=blob)["Plaintext"] == b"x"
                break
            except ClientError:
                assert time.monotonic() - began < BOUND_SECONDS
                time.sleep(0.01)
    a.put_key_policy(
        KeyId=key_id,
        PolicyName="default",
        Policy=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Principal": {"AWS": "*"},
                        "Action": "kms:*",
                        "Resource": "*",
                    },
                    {
                        "Effect": "Deny",
                        "Principal": {"AWS": "*"},
                        "Action": "kms:Decrypt",
                        "Resource": "*",
                    },
                ],
            }
        ),
    )
    refused_within(b.decrypt, "AccessDeniedException", CiphertextBlob=blob)


def test_a_grant_revoked_through_one_is_refused_through_the_other_within_the_bound(
    tmp_path: Path, pg_store: str
) -> None:
    """``nobody`` has no IAM policy: only a grant lets it encrypt. The grant is made and
    revoked through one process, and used through the other, without its grant token."""
    config = tmp_path / "cast.toml"
    config.write_text(toml_text())
    first = _serve(tmp_path / "a", pg_store, "--config", str(config))
    second = _serve(tmp_path / "b", pg_store, "--config", str(config))
    try:
        admin = first.client(
            aws_access_key_id=CAST["root-a"].access_key_id,
            aws_secret_access_key=CAST["root-a"].secret_access_key,
        )
        grantee = second.client(
            aws_access_key_id=CAST["nobody"].access_key_id,
            aws_secret_access_key=CAST["nobody"].secret_access_key,
        )
        key_arn = admin.create_key()["KeyMetadata"]["Arn"]
        refused_within(grantee.encrypt, "AccessDeniedException", KeyId=key_arn, Plaintext=b"x")
        for _ in range(5):
            grant = admin.create_grant(
                KeyId=key_arn, GranteePrincipal=CAST["nobody"].arn, Operations=["Encrypt"]
            )
            began = time.monotonic()
            while True:  # granted through the other process within the bound
                try:
                    grantee.encrypt(KeyId=key_arn, Plaintext=b"x")
                    break
                except ClientError as error:
                    assert error.response["Error"]["Code"] == "AccessDeniedException"
                    assert time.monotonic() - began < BOUND_SECONDS
                    time.sleep(0.01)
            admin.revoke_grant(KeyId=key_arn, GrantId=grant["GrantId"])
            refused_within(grantee.encrypt, "AccessDeniedException", KeyId=key_arn, Plaintext=b"x")
    finally:
        first.stop()
        second.stop()


def test_scheduled_work_runs_once_across_processes(
    pair: tuple[ProcessServer, ProcessServer], pg_store: str
) -> None:
    a, b = (server.client() for server in pair)
    doomed = a.create_key()["KeyMetadata"]["KeyId"]
    rotating = b.create_key()["KeyMetadata"]["KeyId"]
    a.schedule_key_deletion(KeyId=doomed, PendingWindowInDays=7)
    b.enable_key_rotation(KeyId=rotating, RotationPeriodInDays=90)
    b.list_keys()
    a.list_keys()  # both processes' views know of the due work
    days = 24 * 3600
    for step in (8 * days, 83 * days):
        movers = [threading.Thread(target=advance, args=(s, step)) for s in pair]
        for mover in movers:
            mover.start()
        for mover in movers:
            mover.join()
    with psycopg.connect(pg_store) as conn:
        counts = dict(
            conn.execute(
                "SELECT topic, count(*) FROM keyledger_events WHERE topic IN "
                "('keyledger:Cmk.Deleted', 'keyledger:Cmk.Rotated') GROUP BY topic"
            ).fetchall()
        )
    assert counts == {"keyledger:Cmk.Deleted": 1, "keyledger:Cmk.Rotated": 1}
    for kms in (a, b):
        with pytest.raises(ClientError) as gone:
            kms.describe_key(KeyId=doomed)
        assert gone.value.response["Error"]["Code"] == "NotFoundException"


def test_migrate_a_sqlite_directory_into_postgresql(tmp_path: Path, pg_store: str) -> None:
    source = tmp_path / "sqlite"
    server = ProcessServer(source, env=ROOT_KEY).start()
    try:
        kms = server.client()
        key_id = kms.create_key(Description="moved")["KeyMetadata"]["KeyId"]
        kms.create_alias(AliasName="alias/moved", TargetKeyId=key_id)
        kms.tag_resource(KeyId=key_id, Tags=[{"TagKey": "k", "TagValue": "v"}])
        blob = kms.encrypt(KeyId=key_id, Plaintext=b"carried")["CiphertextBlob"]
    finally:
        server.stop()
    command = [sys.executable, "-m", "api", "migrate", "--from", str(source), "--to", pg_store]
    env = {**os.environ, **ROOT_KEY}
    first = subprocess.run(command, cwd=REPO, capture_output=True, text=True, env=env, check=False)
    assert first.returncode == 0, first.stderr
    assert "verified: event counts equal" in first.stdout
    assert PASSWORD not in first.stdout + first.stderr
    second = subprocess.run(command, cwd=REPO, capture_output=True, text=True, env=env, check=False)
    assert second.returncode == 0, second.stderr
    assert "copied 0 key events, 0 usage records and 0 keystore rows" in second.stdout

    moved = _serve(tmp_path / "pg-views", pg_store)
    try:
        kms = moved.client()
        assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == b"carried"
        assert kms.describe_key(KeyId="alias/moved")["KeyMetadata"]["Description"] == "moved"
        assert kms.list_resource_tags(KeyId=key_id)["Tags"] == [{"TagKey": "k", "TagValue": "v"}]
    finally:
        moved.stop()


def test_rebuild_and_status_on_postgresql_while_serving(tmp_path: Path, pg_store: str) -> None:
    server = _serve(tmp_path / "a", pg_store)
    try:
        kms = server.client()
        for n in range(5):
            key_id = kms.create_key()["KeyMetadata"]["KeyId"]
            kms.create_alias(AliasName=f"alias/r{n}", TargetKeyId=key_id)
        names = {a["AliasName"] for a in kms.list_aliases()["Aliases"]}
        with psycopg.connect(pg_store, autocommit=True) as conn:  # a damaged shared view
            conn.execute("DELETE FROM keyledger_view_keys.aliases WHERE name = 'alias/r3'")
        assert "alias/r3" not in {a["AliasName"] for a in kms.list_aliases()["Aliases"]}
        done = _admin(tmp_path, pg_store, "projections", "rebuild", "keys")
        assert "1 rows differed from the live view (now corrected)" in done.stdout, done
        assert {a["AliasName"] for a in kms.list_aliases()["Aliases"]} == names
        kms.create_alias(AliasName="alias/after", TargetKeyId=key_id)  # the runner goes on
        assert "alias/after" in {a["AliasName"] for a in kms.list_aliases()["Aliases"]}
        status = _admin(tmp_path, pg_store, "projections", "status", "--json", "--sample", "0")
        views = {v["name"]: v for v in json.loads(status.stdout)["views"]}
        assert views["keys"]["lag_events"] == 0 and views["keys"]["position"] > 0
        assert views["grants"]["schema_version"] == views["grants"]["code_schema_version"]
    finally:
        server.stop()
    assert not (tmp_path / "a" / "views.db").exists()  # the views are in PostgreSQL


def _admin(tmp_path: Path, store: str, *args: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, "-m", "api", *args, "--data-dir", str(tmp_path / "a"), "--store", store],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **ROOT_KEY},
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done
