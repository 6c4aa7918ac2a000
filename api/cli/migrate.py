"""``keyledger migrate --from DIR --to postgresql://…``: a SQLite data directory into
PostgreSQL, then verified: event counts, every key's replayed state, the audit chain."""

from __future__ import annotations

import argparse
import os
import uuid
from pathlib import Path

from api.app import Stores, open_stores
from api.cli.common import console, errors, progress
from eventstore.database import StoreError, check_store_version, is_postgres, redact
from eventstore.migrate import copy_keystore, copy_log
from projections.audit_integrity import verify_store


def add_parser(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    migrate = commands.add_parser(
        "migrate", help="copy a SQLite data directory into PostgreSQL, then verify the copy"
    )
    migrate.add_argument("--from", dest="source", type=Path, required=True)
    migrate.add_argument("--to", dest="target", required=True, help="postgresql://…")
    migrate.set_defaults(run=run_migrate)


def run_migrate(args: argparse.Namespace) -> int:
    if not is_postgres(args.target):
        errors.print("--to must be a postgresql:// URL")
        return 2
    source = open_stores(args.source, os.environ, root=True)
    try:
        check_store_version(args.target)
        target = open_stores(args.source, os.environ, root=True, store=args.target)
        try:
            return _migrate(source, target, args.target)
        finally:
            target.close()
    except StoreError as error:
        errors.print(str(error), soft_wrap=True)
        return 2
    finally:
        source.close()


def _migrate(source: Stores, target: Stores, url: str) -> int:
    copied = {}
    for name, src, dst in (
        ("key events", source.ledger, target.ledger),
        ("usage records", source.usage, target.usage),
    ):
        with progress(f"copying {name}", src.recorder.max_notification_id()) as advance:
            copied[name] = copy_log(src, dst, advance)
    keys = copy_keystore(str(source.data_dir / "keystore.db"), url)
    console.print(
        f"copied {copied['key events']} key events, {copied['usage records']} usage records "
        f"and {keys} keystore rows into {redact(url)}",
        soft_wrap=True,
    )
    return 0 if _verify(source, target) else 1


def _verify(source: Stores, target: Stores) -> bool:
    ok = True
    for name, src, dst in (
        ("key", source.ledger, target.ledger),
        ("usage", source.usage, target.usage),
    ):
        mine, theirs = _ids(src), _ids(dst)
        if len(mine) != len(theirs):
            errors.print(f"{name} events: {len(mine)} in the source, {len(theirs)} in the target")
            ok = False
    keys = {i for i, topic in _ids(source.ledger) if topic.startswith("keyledger:Cmk.")}
    for key_id in keys:
        if vars(source.ledger.repository.get(key_id)) != vars(target.ledger.repository.get(key_id)):
            errors.print(f"key {key_id} replays differently in the target")
            ok = False
    report = verify_store(source.audit, source.audit_keys.public_keys())
    if not report.ok:
        errors.print(f"the source's audit chain is broken at {report.first_bad}")
        ok = False
    console.print(
        f"verified: event counts equal, {len(keys)} keys replay to the same state, "
        f"audit chain of {report.records} records intact"
        if ok
        else "[red]NOT verified[/red]",
        soft_wrap=True,
    )
    return ok


def _ids(app: object) -> list[tuple[uuid.UUID, str]]:
    found, position = [], 0
    recorder = app.recorder  # type: ignore[attr-defined]
    while notifications := recorder.select_notifications(
        start=position, limit=10_000, inclusive_of_start=False
    ):
        found += [(n.originator_id, n.topic) for n in notifications]
        position = notifications[-1].id
    return found
