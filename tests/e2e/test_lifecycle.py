"""Key rotation and scheduled deletion, end to end against `keyledger serve --dev-clock`.

POST /_dev/clock moves the server's clock and answers only after the scheduler has run
everything that became due, so a test can jump days ahead and check the outcome at once.
"""

from __future__ import annotations

import http.client
import json
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

from eventstore.keystore import WrappingKeyMissing
from tests.integration.stores import open_ledger
from tests.support import REPO, ProcessServer, advance, free_port, refused, unvalidated

pytestmark = pytest.mark.slow

DAY = 86_400
DEV_CLOCK = ("--dev-clock",)
KILL_BEFORE_SHRED = {"KEYLEDGER_DEV_FAULT": "kill-before-shred"}
ALL_INTERFACES = "0.0.0.0"  # noqa: S104 - only to check that --dev-clock refuses it


# -- helpers -----------------------------------------------------------------------------


@pytest.fixture
def servers() -> Iterator[list[ProcessServer]]:
    """Servers started by a test; any still running at the end is killed."""
    started: list[ProcessServer] = []
    yield started
    for server in started:
        if server.process is not None and server.process.poll() is None:
            server.stop(signal.SIGKILL)


def start(
    servers: list[ProcessServer],
    data_dir: Path,
    *,
    dev_clock: bool = True,
    env: dict[str, str] | None = None,
) -> ProcessServer:
    server = ProcessServer(data_dir, extra_args=DEV_CLOCK if dev_clock else (), env=env or {})
    servers.append(server)
    return server.start()


def all_rotations(kms: Any, key_id: str, **params: Any) -> list[dict[str, Any]]:
    """Every ListKeyRotations entry, following NextMarker."""
    entries: list[dict[str, Any]] = []
    marker: dict[str, str] = {}
    for _ in range(1000):
        page = kms.list_key_rotations(KeyId=key_id, **params, **marker)
        entries += page["Rotations"]
        if not page["Truncated"]:
            assert "NextMarker" not in page
            return entries
        marker = {"Marker": page["NextMarker"]}
    raise AssertionError("ListKeyRotations never stopped paging")


def automatic_rotations(kms: Any, key_id: str) -> list[dict[str, Any]]:
    return [r for r in all_rotations(kms, key_id) if r["RotationType"] == "AUTOMATIC"]


def epoch(moment: datetime) -> float:
    return moment.timestamp()


def close_to(moment: datetime, expected: float, tolerance: float = 120.0) -> bool:
    return abs(epoch(moment) - expected) <= tolerance


def wrapped_rows(data_dir: Path, key_id: str) -> dict[str, bytes]:
    """The keystore's stored (root-wrapped) wrapping keys of one key, read-only."""
    uri = f"file:{data_dir / 'keystore.db'}?mode=ro"
    db = sqlite3.connect(uri, uri=True)
    try:
        rows = db.execute(
            "SELECT material_id, wrapped FROM wrapping_keys WHERE key_id = ?", (key_id,)
        ).fetchall()
    finally:
        db.close()
    return {material_id: bytes(wrapped) for material_id, wrapped in rows}


def material_ids(kms: Any, key_id: str) -> list[str]:
    entries = all_rotations(kms, key_id, IncludeKeyMaterial="ALL_KEY_MATERIAL")
    return [entry["KeyMaterialId"] for entry in entries]


def unwrapped_wrapping_keys(data_dir: Path, key_id: str, ids: list[str]) -> list[bytes]:
    """What only the server can compute: the plaintext wrapping key of each material."""
    ledger = open_ledger(data_dir)
    try:
        return [ledger.keystore.wrapping_key(UUID(key_id), material_id) for material_id in ids]
    finally:
        ledger.close()
        ledger.keystore.close()


def files_holding(data_dir: Path, secrets: list[bytes]) -> list[str]:
    """Which files of the data directory (WAL and SHM included) hold any of ``secrets``."""
    found = []
    for path in sorted(data_dir.iterdir()):
        if path.is_file():
            content = path.read_bytes()
            found += [f"{path.name}[{i}]" for i, s in enumerate(secrets) if s in content]
    return found


def wait_until(predicate: Any, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return bool(predicate())


# -- rotation on demand ------------------------------------------------------------------


def test_on_demand_rotation_keeps_every_generation_and_stops_at_25(
    servers: list[ProcessServer], tmp_path: Path
) -> None:
    server = start(servers, tmp_path / "data")
    kms = server.client()
    key = kms.create_key(Description="rotated on demand")["KeyMetadata"]
    key_id, arn = key["KeyId"], key["Arn"]
    kms.enable_key_rotation(KeyId=key_id, RotationPeriodInDays=90)
    scheduled = kms.get_key_rotation_status(KeyId=key_id)["NextRotationDate"]

    generations = [key["CurrentKeyMaterialId"]]
    sealed: list[tuple[str, bytes, bytes]] = []  # (material id, blob, plaintext)
    for generation in range(4):
        if generation:
            assert kms.rotate_key_on_demand(KeyId=key_id)["KeyId"] == arn
            current = kms.describe_key(KeyId=key_id)["KeyMetadata"]["CurrentKeyMaterialId"]
            assert current not in generations, "CurrentKeyMaterialId did not change"
            generations.append(current)
        plaintext = f"generation {generation}".encode()
        blob = kms.encrypt(KeyId=key_id, Plaintext=plaintext)["CiphertextBlob"]
        sealed.append((generations[-1], blob, plaintext))
        data_key = kms.generate_data_key(KeyId=arn, NumberOfBytes=32)
        assert data_key["KeyMaterialId"] == generations[-1]
        sealed.append((generations[-1], data_key["CiphertextBlob"], data_key["Plaintext"]))
    assert len(set(generations)) == 4

    for material_id, blob, plaintext in sealed:
        opened = kms.decrypt(CiphertextBlob=blob)
        assert opened["Plaintext"] == plaintext
        assert opened["KeyId"] == arn
        assert opened["KeyMaterialId"] == material_id

    rotations = all_rotations(kms, key_id)
    assert all_rotations(kms, key_id, IncludeKeyMaterial="ROTATIONS_ONLY") == rotations
    assert [r["RotationType"] for r in rotations] == ["ON_DEMAND"] * 3
    assert [r["KeyMaterialId"] for r in rotations] == generations[1:]
    assert [r["KeyMaterialState"] for r in rotations] == ["NON_CURRENT"] * 2 + ["CURRENT"]
    assert all(r["KeyId"] == arn for r in rotations)
    dates = [r["RotationDate"] for r in rotations]
    assert dates == sorted(dates)

    everything = all_rotations(kms, key_id, IncludeKeyMaterial="ALL_KEY_MATERIAL")
    assert [r["KeyMaterialId"] for r in everything] == generations
    assert everything[0]["KeyMaterialState"] == "NON_CURRENT"
    assert "RotationType" not in everything[0]
    assert everything[1:] == rotations

    # Limit=1: one entry a page, the same entries in the same order.
    for include, expected in (("ROTATIONS_ONLY", rotations), ("ALL_KEY_MATERIAL", everything)):
        pages, marker = [], {}
        while True:
            page = kms.list_key_rotations(
                KeyId=key_id, IncludeKeyMaterial=include, Limit=1, **marker
            )
            pages.append(page)
            if not page["Truncated"]:
                break
            marker = {"Marker": page["NextMarker"]}
            assert len(pages) <= len(expected)
        assert [len(p["Rotations"]) for p in pages] == [1] * len(expected)
        assert [p["Rotations"][0] for p in pages] == expected

    # On-demand rotation does not move the automatic schedule.
    status = kms.get_key_rotation_status(KeyId=key_id)
    assert status["NextRotationDate"] == scheduled
    assert status["RotationPeriodInDays"] == 90

    for _ in range(25 - 3):
        kms.rotate_key_on_demand(KeyId=key_id)
    current = kms.describe_key(KeyId=key_id)["KeyMetadata"]["CurrentKeyMaterialId"]
    assert refused(kms.rotate_key_on_demand, KeyId=key_id) == (
        "LimitExceededException",
        "The on-demand rotations limit has been reached for the given keyId. "
        f"No more on-demand rotations can be performed for this key: {arn}",
    )
    assert kms.describe_key(KeyId=key_id)["KeyMetadata"]["CurrentKeyMaterialId"] == current
    assert len(all_rotations(kms, key_id)) == 25
    assert kms.get_key_rotation_status(KeyId=key_id)["NextRotationDate"] == scheduled
    for material_id, blob, plaintext in sealed:
        assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == plaintext, material_id


# -- automatic rotation ------------------------------------------------------------------


def test_automatic_rotation_periods_schedule_and_disabled_keys(
    servers: list[ProcessServer], tmp_path: Path
) -> None:
    server = start(servers, tmp_path / "data")
    kms = server.client()
    now = advance(server, 0)

    def new_key(description: str) -> tuple[str, str]:
        metadata = kms.create_key(Description=description)["KeyMetadata"]
        return metadata["KeyId"], metadata["Arn"]

    yearly, yearly_arn = new_key("default period")
    status = kms.get_key_rotation_status(KeyId=yearly)
    assert status["KeyRotationEnabled"] is False
    assert status["KeyId"] == yearly_arn
    assert "NextRotationDate" not in status
    assert "RotationPeriodInDays" not in status
    kms.enable_key_rotation(KeyId=yearly)
    status = kms.get_key_rotation_status(KeyId=yearly)
    assert status["KeyId"] == yearly_arn
    assert status["KeyRotationEnabled"] is True
    assert status["RotationPeriodInDays"] == 365
    assert close_to(status["NextRotationDate"], now + 365 * DAY)

    quarterly, quarterly_arn = new_key("90 days")
    kms.enable_key_rotation(KeyId=quarterly, RotationPeriodInDays=90)
    status = kms.get_key_rotation_status(KeyId=quarterly)
    assert status["RotationPeriodInDays"] == 90
    assert close_to(status["NextRotationDate"], now + 90 * DAY)
    first_due = status["NextRotationDate"]
    first_material = kms.describe_key(KeyId=quarterly)["KeyMetadata"]["CurrentKeyMaterialId"]
    old_blob = kms.encrypt(KeyId=quarterly, Plaintext=b"before rotation")["CiphertextBlob"]

    # RotationPeriodInDays is 90..2560; botocore only checks the minimum itself.
    loose = unvalidated(server)
    for period in (89, 2561, 0):
        code, message = refused(
            loose.enable_key_rotation, KeyId=quarterly, RotationPeriodInDays=period
        )
        assert code == "ValidationException", (period, message)
        assert "rotationPeriodInDays" in message, message
    assert kms.get_key_rotation_status(KeyId=quarterly)["NextRotationDate"] == first_due

    # A Disabled key: EnableKeyRotation is refused, and a due rotation waits.
    paused, paused_arn = new_key("disabled while due")
    kms.enable_key_rotation(KeyId=paused, RotationPeriodInDays=90)
    kms.disable_key(KeyId=paused)
    assert refused(kms.enable_key_rotation, KeyId=paused, RotationPeriodInDays=180) == (
        "DisabledException",
        f"{paused_arn} is disabled.",
    )
    assert refused(kms.disable_key_rotation, KeyId=paused) == (
        "DisabledException",
        f"{paused_arn} is disabled.",
    )

    # DisableKeyRotation stops the schedule.
    stopped, _ = new_key("rotation disabled")
    kms.enable_key_rotation(KeyId=stopped, RotationPeriodInDays=90)
    kms.disable_key_rotation(KeyId=stopped)
    status = kms.get_key_rotation_status(KeyId=stopped)
    assert status["KeyRotationEnabled"] is False
    assert "NextRotationDate" not in status

    advance(server, 90 * DAY + 60)

    [rotation] = automatic_rotations(kms, quarterly)
    assert rotation["KeyId"] == quarterly_arn
    assert rotation["KeyMaterialState"] == "CURRENT"
    assert epoch(rotation["RotationDate"]) >= epoch(first_due)
    current = kms.describe_key(KeyId=quarterly)["KeyMetadata"]["CurrentKeyMaterialId"]
    assert current == rotation["KeyMaterialId"] != first_material
    status = kms.get_key_rotation_status(KeyId=quarterly)
    assert status["KeyRotationEnabled"] is True
    assert status["RotationPeriodInDays"] == 90
    next_due = status["NextRotationDate"]
    expected_next = rotation["RotationDate"] + timedelta(days=90)
    assert abs(epoch(next_due) - epoch(expected_next)) < 0.01
    assert epoch(next_due) >= epoch(first_due) + 90 * DAY
    assert kms.decrypt(CiphertextBlob=old_blob)["Plaintext"] == b"before rotation"
    fresh = kms.encrypt(KeyId=quarterly, Plaintext=b"after")
    assert kms.decrypt(CiphertextBlob=fresh["CiphertextBlob"])["KeyMaterialId"] == current

    assert all_rotations(kms, yearly) == []  # 365 days are not over
    assert all_rotations(kms, stopped) == []  # rotation was disabled
    assert all_rotations(kms, paused) == []  # the key is Disabled
    assert kms.get_key_rotation_status(KeyId=paused)["KeyRotationEnabled"] is True

    # Enabled again after its date passed, the key rotates at the next opportunity.
    kms.enable_key(KeyId=paused)
    advance(server, 0)
    assert len(automatic_rotations(kms, paused)) == 1

    # The next period: exactly one more rotation, at the new NextRotationDate.
    advance(server, epoch(next_due) - advance(server, 0) + 1)
    assert len(automatic_rotations(kms, quarterly)) == 2
    assert all_rotations(kms, yearly) == []


# -- scheduled deletion ------------------------------------------------------------------


def test_scheduled_deletion_pending_cancel_and_expiry(
    servers: list[ProcessServer], tmp_path: Path
) -> None:
    server = start(servers, tmp_path / "data")
    kms = server.client()
    now = advance(server, 0)

    month = kms.create_key(Description="default window")["KeyMetadata"]
    scheduled = kms.schedule_key_deletion(KeyId=month["KeyId"])
    assert scheduled["KeyId"] == month["Arn"]
    assert scheduled["KeyState"] == "PendingDeletion"
    assert scheduled["PendingWindowInDays"] == 30
    assert close_to(scheduled["DeletionDate"], now + 30 * DAY)

    doomed = kms.create_key(Description="7 days")["KeyMetadata"]
    key_id, arn = doomed["KeyId"], doomed["Arn"]
    for alias in ("alias/doomed-a", "alias/doomed-b"):
        kms.create_alias(AliasName=alias, TargetKeyId=key_id)
    kms.create_alias(AliasName="alias/moved-away", TargetKeyId=key_id)
    blob = kms.encrypt(KeyId=key_id, Plaintext=b"secret")["CiphertextBlob"]
    data_key_blob = kms.generate_data_key(KeyId=key_id, KeySpec="AES_128")["CiphertextBlob"]
    scheduled = kms.schedule_key_deletion(KeyId=key_id, PendingWindowInDays=7)
    assert scheduled["KeyId"] == arn
    assert scheduled["KeyState"] == "PendingDeletion"
    assert scheduled["PendingWindowInDays"] == 7
    assert close_to(scheduled["DeletionDate"], now + 7 * DAY)
    deletion_date = scheduled["DeletionDate"]

    pending = ("KMSInvalidStateException", f"{arn} is pending deletion.")
    assert refused(kms.schedule_key_deletion, KeyId=key_id, PendingWindowInDays=10) == pending

    spare = kms.create_key(Description="stays")["KeyMetadata"]
    for window in (6, 31):
        code, message = refused(
            kms.schedule_key_deletion, KeyId=spare["KeyId"], PendingWindowInDays=window
        )
        assert code == "ValidationException", (window, message)
        assert f"Value '{window}' at 'pendingWindowInDays'" in message, message
    assert kms.describe_key(KeyId=spare["KeyId"])["KeyMetadata"]["KeyState"] == "Enabled"
    # An alias may leave a key pending deletion (UpdateAlias from a pending source is OK).
    kms.update_alias(AliasName="alias/moved-away", TargetKeyId=spare["KeyId"])

    # While pending: no cryptography, no enabling, no new alias; DescribeKey works.
    assert refused(kms.encrypt, KeyId=key_id, Plaintext=b"x") == pending
    assert refused(kms.encrypt, KeyId="alias/doomed-a", Plaintext=b"x") == pending
    assert refused(kms.decrypt, CiphertextBlob=blob) == pending
    assert refused(kms.decrypt, CiphertextBlob=data_key_blob) == pending
    assert refused(kms.generate_data_key, KeyId=key_id, KeySpec="AES_256") == pending
    assert refused(kms.enable_key, KeyId=key_id) == pending
    assert refused(kms.create_alias, AliasName="alias/doomed-c", TargetKeyId=key_id) == pending
    metadata = kms.describe_key(KeyId=key_id)["KeyMetadata"]
    assert metadata["Enabled"] is False
    assert metadata["KeyState"] == "PendingDeletion"
    assert metadata["DeletionDate"] == deletion_date
    assert metadata["PendingDeletionWindowInDays"] == 7
    assert key_id in {k["KeyId"] for k in kms.list_keys()["Keys"]}

    # CancelKeyDeletion leaves the key Disabled; it needs a key pending deletion.
    assert kms.cancel_key_deletion(KeyId=month["KeyId"])["KeyId"] == month["Arn"]
    metadata = kms.describe_key(KeyId=month["KeyId"])["KeyMetadata"]
    assert metadata["KeyState"] == "Disabled"
    assert metadata["Enabled"] is False
    assert "DeletionDate" not in metadata
    assert "PendingDeletionWindowInDays" not in metadata
    assert refused(kms.cancel_key_deletion, KeyId=month["KeyId"]) == (
        "KMSInvalidStateException",
        f"{month['Arn']} is not pending deletion.",
    )
    assert refused(kms.cancel_key_deletion, KeyId=spare["KeyId"]) == (
        "KMSInvalidStateException",
        f"{spare['Arn']} is not pending deletion.",
    )

    # One minute before the end of the window, the key is still there.
    advance(server, 7 * DAY - 60)
    assert kms.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"] == "PendingDeletion"
    assert refused(kms.decrypt, CiphertextBlob=blob) == pending

    advance(server, 61)  # 7 days + 1 s after the window began
    gone = ("NotFoundException", f"Key '{arn}' does not exist")
    assert refused(kms.describe_key, KeyId=key_id) == gone
    assert refused(kms.describe_key, KeyId=arn) == gone
    assert refused(kms.decrypt, CiphertextBlob=blob) == gone
    assert refused(kms.decrypt, CiphertextBlob=data_key_blob) == gone
    assert refused(kms.cancel_key_deletion, KeyId=key_id) == gone
    code, message = refused(kms.describe_key, KeyId="alias/doomed-a")
    assert (code, message) == (
        "NotFoundException",
        f"Alias {arn.split(':key/')[0]}:alias/doomed-a is not found.",
    )
    aliases = {a["AliasName"]: a.get("TargetKeyId") for a in kms.list_aliases()["Aliases"]}
    assert not aliases.keys() & {"alias/doomed-a", "alias/doomed-b"}
    assert aliases["alias/moved-away"] == spare["KeyId"]  # no longer the deleted key's
    listed = {k["KeyId"] for k in kms.list_keys()["Keys"]}
    assert key_id not in listed
    assert {month["KeyId"], spare["KeyId"]} <= listed
    # The names are free again.
    kms.create_alias(AliasName="alias/doomed-a", TargetKeyId=spare["KeyId"])
    assert kms.describe_key(KeyId="alias/doomed-a")["KeyMetadata"]["KeyId"] == spare["KeyId"]
    # The cancelled 30-day key is not deleted when its old date passes.
    advance(server, 30 * DAY)
    assert kms.describe_key(KeyId=month["KeyId"])["KeyMetadata"]["KeyState"] == "Disabled"


def test_deletion_leaves_no_copy_of_the_wrapping_keys_in_any_file(
    servers: list[ProcessServer], tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    server = start(servers, data_dir)
    kms = server.client()
    doomed = kms.create_key(Description="shredded")["KeyMetadata"]["KeyId"]
    kms.rotate_key_on_demand(KeyId=doomed)
    kms.rotate_key_on_demand(KeyId=doomed)
    blob = kms.encrypt(KeyId=doomed, Plaintext=b"shred me")["CiphertextBlob"]
    survivor = kms.create_key(Description="control")["KeyMetadata"]["KeyId"]
    survivor_blob = kms.encrypt(KeyId=survivor, Plaintext=b"keep me")["CiphertextBlob"]

    ids = material_ids(kms, doomed)
    assert len(ids) == 3
    wrapped = wrapped_rows(data_dir, doomed)
    assert set(wrapped) == set(ids)
    unwrapped = unwrapped_wrapping_keys(data_dir, doomed, ids)
    secrets = [*wrapped.values(), *unwrapped]
    assert all(len(secret) >= 32 for secret in secrets)
    # The scan can see them: every stored (wrapped) form is on disk before the deletion.
    held = files_holding(data_dir, list(wrapped.values()))
    assert {name.split("[")[1] for name in held} == {f"{i}]" for i in range(len(wrapped))}
    survivor_wrapped = wrapped_rows(data_dir, survivor)
    assert len(survivor_wrapped) == 1

    kms.schedule_key_deletion(KeyId=doomed, PendingWindowInDays=7)
    advance(server, 7 * DAY + 1)
    assert refused(kms.decrypt, CiphertextBlob=blob)[0] == "NotFoundException"

    assert wrapped_rows(data_dir, doomed) == {}
    assert wrapped_rows(data_dir, survivor) == survivor_wrapped
    assert files_holding(data_dir, secrets) == [], "a destroyed wrapping key is still on disk"
    ledger = open_ledger(data_dir)
    try:
        assert doomed not in ledger.keystore.key_ids()
        assert survivor in ledger.keystore.key_ids()
        for material_id in ids:
            with pytest.raises(WrappingKeyMissing):
                ledger.keystore.wrapping_key(UUID(doomed), material_id)
    finally:
        ledger.close()
        ledger.keystore.close()
    assert kms.decrypt(CiphertextBlob=survivor_blob)["Plaintext"] == b"keep me"

    assert server.stop(signal.SIGTERM) == 0
    assert files_holding(data_dir, secrets) == [], "a destroyed wrapping key is on disk"


def test_kill_9_between_the_deleted_event_and_shredding_is_repaired_at_startup(
    servers: list[ProcessServer], tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    first = start(servers, data_dir, env=KILL_BEFORE_SHRED)
    kms = first.client()
    key = kms.create_key(Description="crash while shredding")["KeyMetadata"]
    key_id, arn = key["KeyId"], key["Arn"]
    kms.rotate_key_on_demand(KeyId=key_id)
    blob = kms.encrypt(KeyId=key_id, Plaintext=b"x")["CiphertextBlob"]
    survivor = kms.create_key(Description="control")["KeyMetadata"]["KeyId"]
    kms.schedule_key_deletion(KeyId=key_id, PendingWindowInDays=7)
    wrapped = wrapped_rows(data_dir, key_id)
    assert len(wrapped) == 2

    # The server kills itself in the middle of this request: the connection drops.
    with pytest.raises((OSError, http.client.HTTPException)):
        advance(first, 8 * DAY)
    assert first.process is not None
    assert first.process.wait(30) == -signal.SIGKILL
    assert wrapped_rows(data_dir, key_id) == wrapped, "shredded before the kill?"

    second = start(servers, data_dir, dev_clock=False)
    assert wait_until(lambda: wrapped_rows(data_dir, key_id) == {}), "not repaired"
    kms = second.client()
    gone = ("NotFoundException", f"Key '{arn}' does not exist")
    assert refused(kms.describe_key, KeyId=key_id) == gone
    assert refused(kms.decrypt, CiphertextBlob=blob) == gone
    assert key_id not in {k["KeyId"] for k in kms.list_keys()["Keys"]}
    assert len(wrapped_rows(data_dir, survivor)) == 1
    assert kms.describe_key(KeyId=survivor)["KeyMetadata"]["KeyState"] == "Enabled"
    assert files_holding(data_dir, list(wrapped.values())) == []


def test_due_work_runs_after_a_restart_and_only_once(
    servers: list[ProcessServer], tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    first = start(servers, data_dir)
    kms = first.client()
    doomed = kms.create_key(Description="deleted after restart")["KeyMetadata"]
    rotating = kms.create_key(Description="rotated after restart")["KeyMetadata"]
    kms.schedule_key_deletion(KeyId=doomed["KeyId"], PendingWindowInDays=7)
    kms.enable_key_rotation(KeyId=rotating["KeyId"], RotationPeriodInDays=90)
    blob = kms.encrypt(KeyId=rotating["KeyId"], Plaintext=b"across restarts")["CiphertextBlob"]
    assert first.stop(signal.SIGTERM) == 0

    second = start(servers, data_dir)
    kms = second.client()
    state = kms.describe_key(KeyId=doomed["KeyId"])["KeyMetadata"]["KeyState"]
    assert state == "PendingDeletion"
    assert all_rotations(kms, rotating["KeyId"]) == []
    advance(second, 91 * DAY)  # the dev clock starts again at real time after a restart

    assert refused(kms.describe_key, KeyId=doomed["KeyId"])[0] == "NotFoundException"
    assert wrapped_rows(data_dir, doomed["KeyId"]) == {}
    assert len(automatic_rotations(kms, rotating["KeyId"])) == 1
    advance(second, 0)
    advance(second, 0)
    assert len(automatic_rotations(kms, rotating["KeyId"])) == 1
    assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == b"across restarts"

    # Another restart: nothing runs again (the clock is back at real time).
    assert second.stop(signal.SIGTERM) == 0
    third = start(servers, data_dir)
    advance(third, 0)
    kms = third.client()
    assert len(automatic_rotations(kms, rotating["KeyId"])) == 1
    assert refused(kms.describe_key, KeyId=doomed["KeyId"])[0] == "NotFoundException"


def test_two_servers_on_one_data_dir_rotate_a_due_key_once(
    servers: list[ProcessServer], tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    a = start(servers, data_dir)
    b = start(servers, data_dir)
    kms_a, kms_b = a.client(), b.client()

    first = kms_a.create_key(Description="shared")["KeyMetadata"]["KeyId"]
    kms_a.enable_key_rotation(KeyId=first, RotationPeriodInDays=90)
    kms_b.describe_key(KeyId=first)  # B has the key in its aggregate cache too

    # One after the other: A rotates, B finds nothing left to do.
    advance(a, 91 * DAY)
    advance(b, 91 * DAY)
    for kms in (kms_a, kms_b):
        assert len(automatic_rotations(kms, first)) == 1

    # At the same time, for several keys.
    others = []
    for i in range(4):
        kms = (kms_a, kms_b)[i % 2]
        key_id = kms.create_key(Description=f"race {i}")["KeyMetadata"]["KeyId"]
        kms.enable_key_rotation(KeyId=key_id, RotationPeriodInDays=90)
        others.append(key_id)
    for kms in (kms_a, kms_b):  # both caches hold every key
        for key_id in (first, *others):
            kms.describe_key(KeyId=key_id)
    barrier = threading.Barrier(2)

    def race(server: ProcessServer) -> float:
        barrier.wait(10)
        return advance(server, 91 * DAY)

    with ThreadPoolExecutor(max_workers=2) as pool:
        list(pool.map(race, (a, b)))
    for kms in (kms_a, kms_b):
        assert len(automatic_rotations(kms, first)) == 2
        for key_id in others:
            assert len(automatic_rotations(kms, key_id)) == 1, key_id
    # Both still answer, and agree on the current material.
    for key_id in (first, *others):
        current_a = kms_a.describe_key(KeyId=key_id)["KeyMetadata"]["CurrentKeyMaterialId"]
        current_b = kms_b.describe_key(KeyId=key_id)["KeyMetadata"]["CurrentKeyMaterialId"]
        assert current_a == current_b
        sealed = kms_a.encrypt(KeyId=key_id, Plaintext=b"either")["CiphertextBlob"]
        assert kms_b.decrypt(CiphertextBlob=sealed)["Plaintext"] == b"either"


# -- the dev clock is for tests only -----------------------------------------------------


def test_dev_clock_is_refused_off_loopback_and_absent_without_the_flag(
    servers: list[ProcessServer], tmp_path: Path
) -> None:
    command = [sys.executable, "-m", "api", "serve", "--port", str(free_port())]
    command += ["--data-dir", str(tmp_path / "refused"), "--dev-clock", "--host", ALL_INTERFACES]
    result = subprocess.run(command, cwd=REPO, capture_output=True, timeout=30, check=False)
    assert result.returncode != 0
    assert b"--dev-clock is refused" in result.stderr + result.stdout

    server = start(servers, tmp_path / "data", dev_clock=False)
    with pytest.raises(urllib.error.HTTPError) as caught:
        advance(server, 30 * DAY)
    assert 400 <= caught.value.code < 500
    body = json.loads(caught.value.read())
    assert body["__type"]
    assert "message" in body
    kms = server.client()
    created = kms.create_key()["KeyMetadata"]["CreationDate"]
    assert abs(epoch(created) - datetime.now(UTC).timestamp()) < 300  # the clock did not move


def test_dev_clock_refuses_bad_advances_and_keeps_working(
    servers: list[ProcessServer], tmp_path: Path
) -> None:
    """advance_seconds is a number >= 0 that keeps the clock within the calendar; a
    refused advance is a 4xx JSON error and leaves the clock (and the server) usable."""
    server = start(servers, tmp_path / "data")
    before = advance(server, 0)
    bodies = [
        b'{"advance_seconds": -1}',
        b'{"advance_seconds": "5"}',
        b'{"advance_seconds": true}',
        b'{"advance_seconds": NaN}',
        b"{}",
        b"not json",
        b'{"advance_seconds": 1e12}',  # ~31,700 years: past datetime's year 9999
    ]
    for body in bodies:
        request = urllib.request.Request(
            f"{server.endpoint}/_dev/clock",
            data=body,
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with pytest.raises(urllib.error.HTTPError) as caught:
            urllib.request.urlopen(request, timeout=30)
        status, answer = caught.value.code, caught.value.read()
        assert 400 <= status < 500, (body, status, answer[:200])
        assert json.loads(answer)["__type"] == "ValidationException", body
    after = advance(server, 0)
    assert before <= after < before + 300
    assert server.client().create_key()["KeyMetadata"]["KeyState"] == "Enabled"
