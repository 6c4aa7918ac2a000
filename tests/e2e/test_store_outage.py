"""A store that cannot commit (issue 15): a request fails fast with AWS's retryable
DependencyTimeoutException (HTTP 503), the log says so once per incident, GET /ready says
not ready, and the server recovers by itself when the store does."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from api.config import Settings
from api.services import SERVICES
from tests.postgres import start as start_postgres
from tests.support import REPO, ProcessServer, ThreadServer, keyledger_cli

# A request fails within this many seconds while the store cannot commit: the writer waits
# at most STORE_LOCK_TIMEOUT (2 s) for the lock, for its batch and the one ahead of it.
BOUND_SECONDS = 6.0

HOLD_LOCK = """
import sqlite3, sys
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
sys.stdin.readline()
db.execute("ROLLBACK")
"""


@contextlib.contextmanager
def holding_lock(database: Path) -> Iterator[None]:
    """Another process holds an exclusive lock on ``database`` until the block ends."""
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(database)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        yield
    finally:
        assert holder.stdin is not None
        holder.stdin.write("\n")
        holder.stdin.close()
        holder.wait(10)


def ready(server: ThreadServer | ProcessServer) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(f"{server.endpoint}/ready", timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def refused_fast(call: Callable[[], Any]) -> tuple[str, int, float]:
    began = time.monotonic()
    with pytest.raises(ClientError) as caught:
        call()
    elapsed = time.monotonic() - began
    response = caught.value.response
    return response["Error"]["Code"], response["ResponseMetadata"]["HTTPStatusCode"], elapsed


def wait_until(condition: Callable[[], bool], seconds: float = 15) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return False


def assert_one_line_per_incident(caplog: pytest.LogCaptureFixture) -> None:
    keyledger = [r for r in caplog.records if r.name.startswith("keyledger")]
    assert not [r for r in keyledger if r.exc_info], [r.getMessage() for r in keyledger]
    incidents = [r for r in keyledger if "cannot commit" in r.getMessage()]
    assert len(incidents) == 1, [r.getMessage() for r in incidents]
    assert any("commits again" in r.getMessage() for r in keyledger)


def test_a_locked_usage_store_is_a_fast_retryable_refusal(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    server = ThreadServer(Settings(data_dir=tmp_path / "data", port=0)).start()
    try:
        kms = server.client()
        key_id = kms.create_key()["KeyMetadata"]["KeyId"]
        caplog.set_level(logging.INFO)
        with holding_lock(tmp_path / "data" / "usage.db"):
            for _ in range(3):
                code, status, elapsed = refused_fast(
                    lambda: kms.encrypt(KeyId=key_id, Plaintext=b"x")
                )
                assert (code, status) == ("DependencyTimeoutException", 503)
                assert elapsed < BOUND_SECONDS
            status, body = ready(server)
            assert status == 503 and body["checks"]["commits_usage"] is False
        assert wait_until(lambda: ready(server)[0] == 200)  # recovers without a request
        assert kms.encrypt(KeyId=key_id, Plaintext=b"x")["KeyId"]
        assert_one_line_per_incident(caplog)
    finally:
        server.stop()


def test_a_locked_key_store_refuses_commands_but_records_the_refusal(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    server = ThreadServer(Settings(data_dir=tmp_path / "data", port=0)).start()
    try:
        kms = server.client()
        caplog.set_level(logging.INFO)
        with holding_lock(tmp_path / "data" / "keyledger.db"):
            code, status, elapsed = refused_fast(kms.create_key)
            assert (code, status) == ("DependencyTimeoutException", 503)
            assert elapsed < BOUND_SECONDS
            assert ready(server)[1]["checks"]["commits_keyledger"] is False
        assert wait_until(lambda: ready(server)[0] == 200)
        assert len(kms.list_keys()["Keys"]) == 0  # nothing half-applied
        assert server.app is not None
        usage = server.app[SERVICES].usage
        records = [
            usage.mapper.to_domain_event(n)
            for n in usage.recorder.select_notifications(start=1, limit=1000)
        ]
        assert ("CreateKey", "DependencyTimeoutException") in {
            (r.operation, r.error_code) for r in records
        }
        kms.create_key()
        assert_one_line_per_incident(caplog)
    finally:
        server.stop()


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 24 MiB tmpfs of its own, so the test can fill it (we are root on CI and here)."""
    mount = tmp_path / "small"
    mount.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("filling a disk needs a small filesystem of its own: mounting needs root")
    made = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", str(mount)],
        check=False,
        capture_output=True,
    )
    if made.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {made.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(directory: Path) -> Path:
    filler = directory / "filler"
    with filler.open("wb") as out:
        try:
            while True:
                out.write(b"\0" * 65536)
                out.flush()
        except OSError:
            pass
    return filler


def test_a_full_disk_is_a_fast_retryable_refusal_and_recovers(
    small_disk: Path, caplog: pytest.LogCaptureFixture
) -> None:
    server = ThreadServer(Settings(data_dir=small_disk / "data", port=0)).start()
    try:
        kms = server.client()
        key_id = kms.create_key()["KeyMetadata"]["KeyId"]
        caplog.set_level(logging.INFO)
        filler = fill(small_disk)
        refusal = None
        for _ in range(2000):  # the WAL may still have room for a few records
            try:
                kms.encrypt(KeyId=key_id, Plaintext=b"x" * 4000)
            except ClientError as error:
                response = error.response
                refusal = (
                    response["Error"]["Code"],
                    response["ResponseMetadata"]["HTTPStatusCode"],
                )
                break
        assert refusal == ("DependencyTimeoutException", 503)
        code, status, elapsed = refused_fast(lambda: kms.encrypt(KeyId=key_id, Plaintext=b"x"))
        assert (code, status) == ("DependencyTimeoutException", 503) and elapsed < BOUND_SECONDS
        assert ready(server)[0] == 503
        filler.unlink()
        assert wait_until(lambda: ready(server)[0] == 200)
        sealed = kms.encrypt(KeyId=key_id, Plaintext=b"after")["CiphertextBlob"]
        assert kms.decrypt(CiphertextBlob=sealed)["Plaintext"] == b"after"
        api = [r for r in caplog.records if r.name == "keyledger.api" and r.exc_info]
        assert not api, [r.getMessage() for r in api]
        assert len([r for r in caplog.records if "cannot commit" in r.getMessage()]) >= 1
    finally:
        server.stop()


@pytest.fixture
def eio_shim(tmp_path: Path) -> Path:
    """tests/native/eio.c, built for this run: LD_PRELOAD makes chosen files fail with EIO."""
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None or not sys.platform.startswith("linux"):
        pytest.skip("injecting I/O errors needs a C compiler and LD_PRELOAD (Linux)")
    shim = tmp_path / "eio.so"
    source = REPO / "tests" / "native" / "eio.c"
    subprocess.run(
        [compiler, "-shared", "-fPIC", "-O2", "-o", str(shim), str(source), "-ldl"], check=True
    )
    return shim


@pytest.mark.parametrize("store", ["usage", "keyledger"])
def test_an_io_error_is_a_fast_retryable_refusal_and_recovers(
    tmp_path: Path, eio_shim: Path, store: str
) -> None:
    """Every write and sync of one store's file fails with EIO (a failing disk) while a
    switch file exists: Encrypt (answered only after its usage record is durable) or
    CreateKey (after its events) is refused fast and retryably, nothing refused is
    half-written, and everything works again after, by itself."""
    switch = tmp_path / "eio-on"
    data = tmp_path / "data"
    server = ProcessServer(
        data,
        env={
            "LD_PRELOAD": str(eio_shim),
            "KEYLEDGER_EIO_WHILE": str(switch),
            "KEYLEDGER_EIO_PATHS": str(data / f"{store}.db"),
        },
    ).start()
    try:
        kms = server.client()
        key_id = kms.create_key()["KeyMetadata"]["KeyId"]
        before = kms.encrypt(KeyId=key_id, Plaintext=b"before")["CiphertextBlob"]
        switch.touch()
        for _ in range(3):
            code, status, elapsed = refused_fast(
                lambda: (
                    kms.encrypt(KeyId=key_id, Plaintext=b"x")
                    if store == "usage"
                    else kms.create_key()
                )
            )
            assert (code, status) == ("DependencyTimeoutException", 503)
            assert elapsed < BOUND_SECONDS
        status, body = ready(server)
        assert status == 503 and body["checks"][f"commits_{store}"] is False
        switch.unlink()
        assert wait_until(lambda: ready(server)[0] == 200)  # recovers without a request
        assert [k["KeyId"] for k in kms.list_keys()["Keys"]] == [key_id]  # none half-made
        after = kms.encrypt(KeyId=key_id, Plaintext=b"after")["CiphertextBlob"]
        assert kms.decrypt(CiphertextBlob=before)["Plaintext"] == b"before"
        assert kms.decrypt(CiphertextBlob=after)["Plaintext"] == b"after"
    finally:
        server.stop()
    log = (tmp_path / f"server-{server.port}.log").read_text()
    assert "Traceback" not in log
    assert log.count("cannot commit") == 1, log
    assert "commits again" in log
    verified = keyledger_cli(data, "audit", "verify")
    assert verified.returncode == 0, verified.stdout + verified.stderr


def test_a_stopped_postgresql_is_a_fast_retryable_refusal_and_recovers(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The PostgreSQL store stopped under a running server (its own PostgreSQL, not the
    session's, which other tests share): refusals within the bound, one line per incident
    and store, not ready; PostgreSQL started again: the server recovers with no restart."""
    postgres = start_postgres()
    try:
        store = postgres.create_database()
        server = ThreadServer(Settings(data_dir=tmp_path / "data", port=0, store=store)).start()
        try:
            kms = server.client()
            key_id = kms.create_key()["KeyMetadata"]["KeyId"]
            sealed = kms.encrypt(KeyId=key_id, Plaintext=b"before")["CiphertextBlob"]
            caplog.set_level(logging.INFO)
            postgres.pause()
            for call in (
                lambda: kms.encrypt(KeyId=key_id, Plaintext=b"x"),
                lambda: kms.decrypt(CiphertextBlob=sealed),
                kms.create_key,
                lambda: kms.describe_key(KeyId=key_id),
                kms.list_keys,
            ):
                code, status, elapsed = refused_fast(call)
                assert (code, status) == ("DependencyTimeoutException", 503)
                assert elapsed < BOUND_SECONDS
            status, body = ready(server)
            assert status == 503 and body["checks"]["commits_usage"] is False
            postgres.resume()
            assert wait_until(lambda: ready(server)[0] == 200, 30)  # without a request
            assert kms.decrypt(CiphertextBlob=sealed)["Plaintext"] == b"before"
            kms.create_key()
        finally:
            server.stop()
    finally:
        postgres.stop()
    tracebacks = [r.getMessage() for r in caplog.records if r.exc_info]
    assert not tracebacks, tracebacks  # none of ours, none of aiohttp's
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    # One line per incident and part: each ledger's writer, the request path's reads, each
    # projection, the LISTEN connection (and the scheduler, if its pass came).
    parts = {m.split(" (")[0] for m in errors}
    assert len(errors) == len(parts), errors
    assert {"keyledger store cannot commit", "usage store cannot commit"} & parts
    messages = [r.getMessage() for r in caplog.records]
    assert any("commits again" in m for m in messages)
