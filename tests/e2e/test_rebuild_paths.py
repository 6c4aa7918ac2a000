"""The rebuild's fast path (stored rows, projections/*_rows.py) makes the same views as the
events path (the library's mapper and each view's own ``project``, which the live runners
use), row for row, over a history that reaches every event the views read."""

from __future__ import annotations

import os
import sqlite3
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from api.app import open_stores, view_paths
from projections.grants_view import GrantsView
from projections.keys_view import KeysView
from projections.rebuild import Rebuild, stored
from projections.usage_view import UsageView
from projections.versioned_view import VersionedView
from tests.e2e.byok import external_key, import_material
from tests.e2e.test_lifecycle import DEV_CLOCK
from tests.postgres import logs_copied
from tests.support import ProcessServer, advance, refused

DAY = 86_400
GRANTEE = "arn:aws:iam::000000000000:role/app"


def _history(kms: Any, server: ProcessServer) -> None:
    """Every kind of event the keys, grants and usage views read, in awkward orders."""
    a = kms.create_key(Tags=[{"TagKey": "team", "TagValue": "a"}])["KeyMetadata"]["KeyId"]
    b = kms.create_key(Description="b")["KeyMetadata"]["KeyId"]
    kms.create_alias(AliasName="alias/moving", TargetKeyId=a)
    kms.update_alias(AliasName="alias/moving", TargetKeyId=b)
    kms.delete_alias(AliasName="alias/moving")
    kms.create_alias(AliasName="alias/moving", TargetKeyId=a)  # recreated
    kms.tag_resource(KeyId=a, Tags=[{"TagKey": "env", "TagValue": "x"}])
    kms.tag_resource(KeyId=a, Tags=[{"TagKey": "env", "TagValue": "y"}])
    kms.untag_resource(KeyId=a, TagKeys=["team"])
    kms.disable_key(KeyId=b)
    kms.enable_key(KeyId=b)
    kms.update_key_description(KeyId=b, Description="b2")
    kms.enable_key_rotation(KeyId=a, RotationPeriodInDays=90)
    kms.rotate_key_on_demand(KeyId=a)
    kms.enable_key_rotation(KeyId=b, RotationPeriodInDays=90)
    kms.disable_key_rotation(KeyId=b)
    kept = kms.create_grant(KeyId=a, GranteePrincipal=GRANTEE, Operations=["Encrypt"])
    kms.create_grant(
        KeyId=a,
        GranteePrincipal=GRANTEE,
        RetiringPrincipal=GRANTEE,
        Operations=["Decrypt", "Encrypt"],
        Constraints={"EncryptionContextSubset": {"app": "x"}},
        Name="named",
    )
    revoked = kms.create_grant(KeyId=b, GranteePrincipal=GRANTEE, Operations=["Decrypt"])
    kms.revoke_grant(KeyId=b, GrantId=revoked["GrantId"])
    kms.retire_grant(KeyId=a, GrantId=kept["GrantId"])
    kms.create_grant(KeyId=b, GranteePrincipal=GRANTEE, Operations=["Encrypt"])
    for _ in range(3):
        kms.encrypt(KeyId=a, Plaintext=b"billed")
    refused(kms.encrypt, KeyId=b, Plaintext=b"x" * 5000)  # failed: recorded, not billed

    expiring = external_key(kms)
    valid_to = datetime.now(UTC) + timedelta(days=2)
    import_material(
        kms, expiring, os.urandom(32), ExpirationModel="KEY_MATERIAL_EXPIRES", ValidTo=valid_to
    )
    removed = external_key(kms, Tags=[{"TagKey": "byok", "TagValue": "1"}])
    import_material(kms, removed, os.urandom(32))
    kms.delete_imported_key_material(KeyId=removed)
    kms.create_alias(AliasName="alias/on-b", TargetKeyId=b)
    kms.schedule_key_deletion(KeyId=b, PendingWindowInDays=7)
    kms.cancel_key_deletion(KeyId=b)
    kms.schedule_key_deletion(KeyId=b, PendingWindowInDays=7)
    # the material expires, b is deleted (tags, grants go), a rotates automatically
    advance(server, 91 * DAY)
    # and keys left in the other states
    c = kms.create_key(Tags=[{"TagKey": "left", "TagValue": "disabled"}])["KeyMetadata"]["KeyId"]
    kms.disable_key(KeyId=c)
    d = kms.create_key()["KeyMetadata"]["KeyId"]
    kms.schedule_key_deletion(KeyId=d, PendingWindowInDays=30)
    kms.list_keys()


def _rows(path: str, view: type[VersionedView]) -> dict[str, list[tuple[Any, ...]]]:
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return {
            table: sorted(db.execute(f"SELECT * FROM {table}").fetchall())  # noqa: S608
            for table in view.VIEW_TABLES
        }
    finally:
        db.close()


def _build(data_dir: Path, name: str, view: type[VersionedView], *, rows: bool) -> Rebuild:
    opened = open_stores(data_dir, os.environ)
    apps = [opened.ledger, opened.usage] if name == "usage" else [opened.ledger]
    live = view_paths(data_dir)[name]
    rebuild = Rebuild(apps, view, f"{live}.{'rows' if rows else 'events'}", batch=7)
    if not rows:
        rebuild.rows = None
    rebuild.build()
    rebuild.fresh.datastore.close()
    opened.close()
    return rebuild


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One data directory with the whole history, written by a --dev-clock server."""
    data_dir = tmp_path_factory.mktemp("paths") / "data"
    server = ProcessServer(data_dir, extra_args=DEV_CLOCK).start()
    try:
        _history(server.client(), server)
        _wait_for_the_live_views(data_dir)
    finally:
        server.stop()
    return data_dir


def _wait_for_the_live_views(data_dir: Path) -> None:
    """The usage view polls once a second: let every live view reach the logs' heads."""
    heads = {}
    for name, store in (("KeyLedger", "keyledger.db"), ("UsageLedger", "usage.db")):
        db = sqlite3.connect(f"file:{data_dir / store}?mode=ro", uri=True)
        heads[name] = db.execute("SELECT MAX(rowid) FROM stored_events").fetchone()[0]
        db.close()
    paths = view_paths(data_dir)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        positions = [stored(paths[name])[1] for name in ("keys", "grants", "usage")]
        if (
            all(p.get("KeyLedger") == heads["KeyLedger"] for p in positions)
            and positions[2].get("UsageLedger") == heads["UsageLedger"]
        ):
            return
        time.sleep(0.1)
    raise AssertionError(f"the live views did not reach {heads}")


@pytest.mark.parametrize(
    ("name", "view"), [("keys", KeysView), ("grants", GrantsView), ("usage", UsageView)]
)
def test_rows_and_events_make_the_same_view(
    history: Path, name: str, view: type[VersionedView]
) -> None:
    data_dir = history
    by_rows = _build(data_dir, name, view, rows=True)
    by_events = _build(data_dir, name, view, rows=False)
    assert by_rows.positions == by_events.positions
    rows = _rows(by_rows.fresh_path, view)
    assert rows == _rows(by_events.fresh_path, view)
    assert rows == _rows(view_paths(data_dir)[name], view)  # the live runners' view
    assert any(rows.values())


@pytest.mark.parametrize(
    ("name", "view"), [("keys", KeysView), ("grants", GrantsView), ("usage", UsageView)]
)
def test_rows_read_from_postgresql_make_the_same_view(
    history: Path, pg_store: str, tmp_path: Path, name: str, view: type[VersionedView]
) -> None:
    """The same logs in PostgreSQL (copied as `keyledger migrate` copies them), rebuilt
    from there into a SQLite view file: the same rows as from the SQLite logs."""
    with logs_copied(history, pg_store, tmp_path / "pg") as target:
        apps = [target.ledger, target.usage] if name == "usage" else [target.ledger]
        rebuild = Rebuild(apps, view, view_paths(tmp_path / "pg")[name], batch=7)
        rebuild.build()
        rebuild.fresh.datastore.close()
    assert _rows(rebuild.fresh_path, view) == _rows(view_paths(history)[name], view)
