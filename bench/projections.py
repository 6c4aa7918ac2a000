"""Rebuild speed: events per second of `projections rebuild` on a store of N events.

Seeds a data directory through a real `keyledger serve` (keys, aliases, tags, grants),
then adds tag events through the write model directly (the fast way to a large log),
and times `Rebuild.build` for the keys and grants views.

    .venv/bin/python -m bench.projections --events 200000
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

from api.app import open_stores, view_paths
from domain.values import RequestContext
from projections.grants_view import GrantsView
from projections.keys_view import KeysView
from projections.rebuild import Rebuild
from tests.support import ProcessServer

KEYS = 100


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


def _head(data_dir: Path) -> int:
    opened = open_stores(data_dir, os.environ)
    try:
        return opened.ledger.recorder.max_notification_id() or 0
    finally:
        opened.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--json", action="store_true")
    parser.add_argument(
        "--data-dir", type=Path, help="seed here once and reuse it on later runs (repeat timings)"
    )
    args = parser.parse_args()
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = args.data_dir or Path(tmp) / "data"
        if args.data_dir and (data_dir / "keyledger.db").exists():
            total = _head(data_dir)
        else:
            total = seed(data_dir, args.events)
        opened = open_stores(data_dir, os.environ)
        for name, view in (("keys", KeysView), ("grants", GrantsView)):
            rebuild = Rebuild([opened.ledger], view, view_paths(data_dir)[name])
            started = time.perf_counter()
            built = rebuild.build()
            seconds = time.perf_counter() - started
            switched = rebuild.switch()
            results[name] = {
                "events": built,
                "seconds": round(seconds, 3),
                "events_per_second": round(built / seconds),
                "switch_lock_seconds": switched.seconds,
            }
        opened.close()
    results["log_events"] = total
    if args.json:
        print(json.dumps(results, indent=2))
        return
    for name in ("keys", "grants"):
        r = results[name]
        print(
            f"{name:7} {r['events']:>8} events  {r['seconds']:>7.2f} s  "
            f"{r['events_per_second']:>8,} events/s  switch lock {r['switch_lock_seconds']} s"
        )


if __name__ == "__main__":
    main()
