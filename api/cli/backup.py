"""``keyledger backup DEST`` and ``keyledger restore SRC``: the SQLite data directory,
copied consistently while the server runs, and verified by replay and the audit chain.
(On PostgreSQL use PostgreSQL's own tools; the README says which.)"""

from __future__ import annotations

import argparse
import os
import uuid
from pathlib import Path

from api.app import open_stores
from api.cli.common import add_data_dir, console, errors
from eventstore.backup import BackupError, copy_stores
from eventstore.root_key import ROOT_KEY_FILE
from projections.audit_integrity import verify_store

BATCH = 5000


def add_parser(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    backup = commands.add_parser(
        "backup", help="copy the data directory consistently (while serving), then verify it"
    )
    add_data_dir(backup)
    backup.add_argument("dest", type=Path, help="a new or empty directory")
    backup.add_argument(
        "--include-root-key",
        action="store_true",
        help=f"also copy {ROOT_KEY_FILE}: the backup then unwraps keys on its own",
    )
    backup.set_defaults(run=run_backup)

    restore = commands.add_parser(
        "restore", help="restore a backup into an empty --data-dir, then verify it"
    )
    add_data_dir(restore)
    restore.add_argument("source", type=Path, help="a directory written by `keyledger backup`")
    restore.set_defaults(run=run_restore)


def verify(data_dir: Path) -> bool:
    """Replay every key from the copied log and check the audit view's chains."""
    opened = open_stores(data_dir, os.environ)
    try:
        ledger = opened.ledger
        keys: set[uuid.UUID] = set()
        events, position = 0, 0
        while notifications := ledger.recorder.select_notifications(
            start=position, limit=BATCH, inclusive_of_start=False
        ):
            events += len(notifications)
            position = notifications[-1].id
            keys |= {n.originator_id for n in notifications if n.topic.startswith("keyledger:Cmk.")}
        for key_id in keys:
            ledger.repository.get(key_id)  # raises if the stream does not replay
        usage = opened.usage.recorder.max_notification_id() or 0
        report = verify_store(opened.audit, opened.audit_keys.public_keys())
    finally:
        opened.close()
    console.print(
        f"{events} key events ({len(keys)} keys replayed), {usage} usage records, "
        f"{report.records} audit records under {report.digests} digests",
        soft_wrap=True,
    )
    if not report.ok:
        errors.print(f"[red]INVALID[/red]: audit chain broken at {report.first_bad}")
        return False
    return True


def run_backup(args: argparse.Namespace) -> int:
    if args.store is not None:
        # Everything but the audit view is in the database (README: Backups on PostgreSQL).
        errors.print("backup is for SQLite data directories; on PostgreSQL use its own tools")
        return 2
    try:
        copied = copy_stores(args.data_dir, args.dest, root_key=args.include_root_key)
    except BackupError as error:
        errors.print(str(error), soft_wrap=True)
        return 2
    console.print(f"copied {', '.join(copied)} to {args.dest}", soft_wrap=True)
    if not args.include_root_key:
        console.print(
            f"the root key is not in the backup: keep it apart ({ROOT_KEY_FILE} or "
            "KEYLEDGER_ROOT_KEY); without it no key material in the backup can be used",
            soft_wrap=True,
        )
    return 0 if verify(args.dest) else 1


def run_restore(args: argparse.Namespace) -> int:
    if args.store is not None:
        errors.print("restore is for SQLite data directories; on PostgreSQL use its own tools")
        return 2
    try:
        copied = copy_stores(
            args.source, args.data_dir, root_key=(args.source / ROOT_KEY_FILE).exists()
        )
    except BackupError as error:
        errors.print(str(error), soft_wrap=True)
        return 2
    console.print(f"restored {', '.join(copied)} into {args.data_dir}", soft_wrap=True)
    return 0 if verify(args.data_dir) else 1
