"""Rebuild speed: events per second of `projections rebuild` on a store of N events.

Seeds a data directory through a real `keyledger serve` (keys, aliases, tags, grants),
then adds tag events through the write model directly (the fast way to a large log),
optionally request records into the usage ledger, and times `Rebuild.build` for the keys,
grants and usage views (the best of ``--repeat`` runs; wall and CPU time), on SQLite and,
with ``--postgres``, with the same logs copied into a throwaway PostgreSQL.

    .venv/bin/python -m bench.projections --events 150000 --usage 50000 --repeat 3 --postgres
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from eventsourcing.sqlite import SQLiteDatastore

from api.app import Stores, open_stores, view_paths
from api.config import DEFAULT_ACCOUNT
from bench.seed_usage import records as usage_records
from domain.values import RequestContext, key_arn
from projections.grants_view import GrantsView
from projections.keys_view import KeysView
from projections.rebuild import Rebuild
from projections.usage_view import UsageView
from projections.versioned_view import VersionedView
from tests.postgres import logs_copied
from tests.postgres import start as start_postgres
from tests.support import ProcessServer

KEYS = 100
ARN = key_arn("us-east-1", DEFAULT_ACCOUNT, str(uuid.uuid4()))
VIEWS: dict[str, type[VersionedView]] = {"keys": KeysView, "grants": GrantsView, "usage": UsageView}


def seed(data_dir: Path, events: int) -> int:
    server = ProcessServer(data_dir).start()
    try:
        kms = server.client()
        ids = []
        for n in range(KEYS):
            key_id = kms.create_key()["KeyMetadata"]["KeyId"]
            kms.create_alias(AliasName=f"alias/b{n}", TargetKeyId=key_id)
            kms.create_grant(
                KeyId=key_id,
                GranteePrincipal="arn:aws:iam::000000000000:role/app",
                Operations=["Encrypt"],
            )
            ids.append(key_id)
    finally:
        server.stop()
    opened = open_stores(data_dir, os.environ, root=True)
    ledger = opened.ledger
    written = ledger.recorder.max_notification_id() or 0
    while written < events:
        cmks = [ledger.repository.get(uuid.UUID(k)) for k in ids]
        for round_ in range(10):
            for cmk in cmks:
                ctx = RequestContext.service("000000000000", "us-east-1", str(uuid.uuid4()))
                cmk.tag({"round": f"{written}-{round_}"}, ctx, datetime.now(UTC))
        ledger.save(*cmks)
        written += 10 * len(cmks)
    total = ledger.recorder.max_notification_id() or 0
    opened.close()
    return total


def seed_usage(data_dir: Path, records: int) -> None:
    """Request records (Encrypt, Decrypt, GenerateDataKey) into the usage ledger."""
    opened = open_stores(data_dir, os.environ)
    try:
        done = opened.usage.recorder.max_notification_id() or 0
        while done < records:
            size = min(2000, records - done)
            opened.usage.record_batch(usage_records(size, ARN, "us-east-1"))
            done += size
    finally:
        opened.close()


def _heads(opened: Stores) -> dict[str, int]:
    return {
        app.name: app.recorder.max_notification_id() or 0 for app in (opened.ledger, opened.usage)
    }


def measure(opened: Stores, data_dir: Path, events_path: bool, repeat: int) -> dict[str, Any]:
    """Rebuild each view ``repeat`` times (the best run counts: the machine is shared)."""
    results: dict[str, Any] = {}
    for name, view in VIEWS.items():
        apps = [opened.ledger, opened.usage] if name == "usage" else [opened.ledger]
        best: dict[str, Any] | None = None
        for _ in range(repeat):
            rebuild = Rebuild(apps, view, view_paths(data_dir)[name])
            if events_path:
                rebuild.rows = None  # the library's mapper and the view's own project
            started, cpu = time.perf_counter(), time.process_time()
            built = rebuild.build()
            seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
            switched = rebuild.switch()
            run = {
                "events": built,
                "seconds": round(seconds, 3),
                "cpu_seconds": round(cpu, 3),
                "events_per_second": round(built / seconds),
                "switch_lock_seconds": switched.seconds,
                "differences": switched.differences,
            }
            if best is None or run["seconds"] < best["seconds"]:
                best = run
        results[name] = best
    return results


def on_postgres(data_dir: Path, work: Path, events_path: bool, repeat: int) -> dict[str, Any]:
    """The same logs copied into a throwaway PostgreSQL (as `keyledger migrate` copies them),
    rebuilt from there into the views (which stay SQLite files, see README)."""
    postgres = start_postgres()
    try:
        url = postgres.create_database()
        pg_dir = work / "pg"
        with logs_copied(data_dir, url, pg_dir) as target:
            for name, view in VIEWS.items():  # empty live views, as a first start makes them
                live = view(SQLiteDatastore(view_paths(pg_dir)[name]))
                live.create_table()
                live.datastore.close()
            results = measure(target, pg_dir, events_path, repeat)
            results["log_events"] = _heads(target)
        return results
    finally:
        postgres.stop()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=100_000, help="key events in the log")
    parser.add_argument("--usage", type=int, default=0, help="usage records (the usage view)")
    parser.add_argument("--repeat", type=int, default=1, help="the best of N rebuilds counts")
    parser.add_argument("--events-path", action="store_true", help="without the rows fast path")
    parser.add_argument("--postgres", action="store_true", help="also with the logs in PostgreSQL")
    parser.add_argument("--json", action="store_true")
    parser.add_argument(
        "--data-dir", type=Path, help="seed here once and reuse it on later runs (repeat timings)"
    )
    args = parser.parse_args()
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = args.data_dir or Path(tmp) / "data"
        if not (data_dir / "keyledger.db").exists():
            seed(data_dir, args.events)
        seed_usage(data_dir, args.usage)
        opened = open_stores(data_dir, os.environ)
        try:
            results["sqlite"] = measure(opened, data_dir, args.events_path, args.repeat)
            results["sqlite"]["log_events"] = _heads(opened)
        finally:
            opened.close()
        if args.postgres:
            results["postgresql"] = on_postgres(data_dir, Path(tmp), args.events_path, args.repeat)
    if args.json:
        print(json.dumps(results, indent=2))
        return
    for store, views in results.items():
        print(f"{store}: logs {views['log_events']}")
        for name in VIEWS:
            r = views[name]
            print(
                f"  {name:7} {r['events']:>8} events  {r['seconds']:>7.2f} s "
                f"(cpu {r['cpu_seconds']:.2f} s)  {r['events_per_second']:>9,} events/s  "
                f"switch lock {r['switch_lock_seconds']} s"
            )


if __name__ == "__main__":
    main()
