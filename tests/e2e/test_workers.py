"""Several server processes on one store: `keyledger serve --workers N`, and servers on
separate ports sharing a data directory (the same mechanism, with a known route)."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.e2e.authz_config import CAST, toml_text
from tests.e2e.test_limits import racing
from tests.support import ProcessServer, advance, client, keyledger_cli, refused

NOBODY = CAST["nobody"]


def _as(server: ProcessServer, name: str) -> Any:
    cast = CAST[name]
    return server.client(
        aws_access_key_id=cast.access_key_id, aws_secret_access_key=cast.secret_access_key
    )


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[tuple[ProcessServer, ProcessServer]]:
    """Two servers on one fresh store, started at the same moment, with the
    authorization cast and grants that propagate at once."""
    config = tmp_path / "keyledger.toml"
    config.write_text(toml_text() + "\n[grants]\npropagation_seconds = 0\n")
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    servers = [ProcessServer(data_dir, extra_args=("--config", str(config))) for _ in range(2)]
    starters = [threading.Thread(target=server.start) for server in servers]
    for starter in starters:
        starter.start()
    for starter in starters:
        starter.join(60)
    try:
        for server in servers:
            assert server.process is not None and server.process.poll() is None
        yield servers[0], servers[1]
    finally:
        for server in servers:
            if server.process is not None and server.process.poll() is None:
                server.stop()


def test_servers_started_together_on_a_fresh_store_both_serve(
    pair: tuple[ProcessServer, ProcessServer],
) -> None:
    one, two = (_as(server, "root-a") for server in pair)
    key = one.create_key()["KeyMetadata"]["KeyId"]
    assert two.describe_key(KeyId=key)["KeyMetadata"]["Enabled"] is True


def test_a_change_answered_by_one_server_judges_the_next_request_on_the_other(
    pair: tuple[ProcessServer, ProcessServer],
) -> None:
    """Disable, re-enable and a policy change: no bound, the very next request sees it
    (the other server's read cache checks the store's change mark per request)."""
    a, b = (_as(server, "root-a") for server in pair)
    key = a.create_key()["KeyMetadata"]["KeyId"]
    blob = b.encrypt(KeyId=key, Plaintext=b"warm the cache")["CiphertextBlob"]
    for _ in range(3):
        a.disable_key(KeyId=key)
        assert refused(b.encrypt, KeyId=key, Plaintext=b"x")[0] == "DisabledException"
        assert refused(b.decrypt, CiphertextBlob=blob)[0] == "DisabledException"
        a.enable_key(KeyId=key)
        b.encrypt(KeyId=key, Plaintext=b"x")
        assert b.decrypt(CiphertextBlob=blob)["Plaintext"] == b"warm the cache"
    deny_encrypt = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "root",
                "Effect": "Allow",
                "Principal": {"AWS": CAST["root-a"].arn},
                "Action": "kms:*",
                "Resource": "*",
            },
            {
                "Sid": "no encrypt",
                "Effect": "Deny",
                "Principal": {"AWS": CAST["root-a"].arn},
                "Action": "kms:Encrypt",
                "Resource": "*",
            },
        ],
    }
    a.put_key_policy(KeyId=key, PolicyName="default", Policy=json.dumps(deny_encrypt))
    assert refused(b.encrypt, KeyId=key, Plaintext=b"x")[0] == "AccessDeniedException"
    assert b.decrypt(CiphertextBlob=blob)["Plaintext"] == b"warm the cache"


def test_a_grant_revoked_through_one_server_is_refused_by_the_other_within_a_poll(
    pair: tuple[ProcessServer, ProcessServer],
) -> None:
    """Grants are read from each server's grants view (eventually consistent by design);
    with propagation_seconds = 0 the other server's view polls every 0.25 s."""
    a_root, b_nobody = _as(pair[0], "root-a"), _as(pair[1], "nobody")
    key = a_root.create_key()["KeyMetadata"]["KeyId"]
    grant = a_root.create_grant(KeyId=key, GranteePrincipal=NOBODY.arn, Operations=["Encrypt"])

    def allowed() -> bool:
        try:
            b_nobody.encrypt(KeyId=key, Plaintext=b"x")
        except ClientError as error:
            assert error.response["Error"]["Code"] == "AccessDeniedException"
            return False
        return True

    deadline = time.monotonic() + 5
    while not allowed():
        assert time.monotonic() < deadline, "the grant never reached the other server"
        time.sleep(0.02)
    a_root.revoke_grant(KeyId=key, GrantId=grant["GrantId"])
    revoked = time.monotonic()
    while allowed():
        assert time.monotonic() - revoked < 1.0, "the revoke took longer than the bound"
        time.sleep(0.02)


# -- --workers 2 -----------------------------------------------------------------------


def _start_both(server: ProcessServer) -> None:
    """Start, and wait until both workers listen (each logs it once)."""
    server.start()
    log = server.data_dir.parent / f"server-{server.port}.log"
    deadline = time.monotonic() + 60
    while log.read_text().count('"listening"') + log.read_text().count(": listening") < 2:
        assert time.monotonic() < deadline, "the second worker did not start"
        time.sleep(0.05)


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[ProcessServer]:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    server = ProcessServer(data_dir, extra_args=("--workers", "2"))
    _start_both(server)
    try:
        yield server
    finally:
        assert server.stop() == 0


def _fresh(server: ProcessServer) -> Any:
    """A client with its own connection: the kernel spreads connections over workers."""
    return client(server.endpoint)


def test_concurrent_conflicting_commands_on_one_key_lose_no_update(
    workers: ProcessServer,
) -> None:
    key = _fresh(workers).create_key()["KeyMetadata"]["KeyId"]
    clients = [_fresh(workers) for _ in range(24)]
    names = iter(range(24))
    lock = threading.Lock()

    def tag() -> None:
        with lock:
            n = next(names)
        clients[n].tag_resource(KeyId=key, Tags=[{"TagKey": f"t{n}", "TagValue": str(n)}])

    assert racing(tag, 24) == Counter({"ok": 24})
    reader = _fresh(workers)
    deadline = time.monotonic() + 10
    while True:
        tags = reader.list_resource_tags(KeyId=key)["Tags"]
        if len(tags) == 24 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert {t["TagKey"] for t in tags} == {f"t{n}" for n in range(24)}


def test_a_create_alias_race_across_workers_has_one_winner(workers: ProcessServer) -> None:
    key = _fresh(workers).create_key()["KeyMetadata"]["KeyId"]
    clients = iter([_fresh(workers) for _ in range(16)])
    lock = threading.Lock()

    def create() -> None:
        with lock:
            kms = next(clients)
        kms.create_alias(AliasName="alias/contested", TargetKeyId=key)

    assert racing(create, 16) == Counter({"ok": 1, "AlreadyExistsException": 15})


def test_a_deletion_falls_due_in_both_workers_and_happens_once(tmp_path: Path) -> None:
    """Each worker has its own dev clock; advancing through many connections moves both
    past the waiting period, and each runs its due work then. The key is deleted (and
    shredded) once: one DeleteKey service event in the trail."""
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    server = ProcessServer(data_dir, extra_args=("--workers", "2", "--dev-clock"))
    _start_both(server)
    try:
        kms = _fresh(server)
        key = kms.create_key()["KeyMetadata"]["KeyId"]
        kms.schedule_key_deletion(KeyId=key, PendingWindowInDays=7)
        for _ in range(12):
            advance(server, 8 * 86400)  # new connection each: both workers get some
        assert refused(kms.describe_key, KeyId=key)[0] == "NotFoundException"
        trail = client(server.endpoint, "cloudtrail")
        deadline = time.monotonic() + 10
        while True:
            events = trail.lookup_events(
                LookupAttributes=[{"AttributeKey": "EventName", "AttributeValue": "DeleteKey"}]
            )["Events"]
            names = Counter(event["EventName"] for event in events)
            if names["DeleteKey"] or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert names["DeleteKey"] == 1, names
    finally:
        assert server.stop() == 0


def test_workers_refuse_a_unix_socket(tmp_path: Path) -> None:
    socket_path = str(tmp_path / "s")
    done = keyledger_cli(
        tmp_path / "d", "serve", "--workers", "2", "--unix-socket", socket_path, "--port", "0"
    )
    assert done.returncode == 2 and "--unix-socket" in done.stderr
