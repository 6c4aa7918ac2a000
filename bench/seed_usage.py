"""Fill a data directory's usage ledger with N request records, as if N Encrypt /
Decrypt / GenerateDataKey calls had been answered (the flat-cost run "after 1,000,000
usage records"). Run it on a stopped server's data directory; the server projects the
records into its audit and billing views when it starts.

    .venv/bin/python -m bench.seed_usage --data-dir /tmp/kl-1m --records 1000000
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from uuid import uuid4

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from api.app import open_usage_ledger
from api.config import DEFAULT_ACCOUNT, Settings
from domain.usage import RequestRecorded
from domain.values import RequestContext, key_arn

OPERATIONS = ("Encrypt", "Decrypt", "GenerateDataKey")


def records(count: int, arn: str, region: str) -> list[RequestRecorded]:
    found = []
    for i in range(count):
        request_id = str(uuid4())
        operation = OPERATIONS[i % len(OPERATIONS)]
        ctx = RequestContext(
            principal=f"arn:aws:iam::{DEFAULT_ACCOUNT}:root",
            account=DEFAULT_ACCOUNT,
            region=region,
            request_id=request_id,
            source_ip="127.0.0.1",
            user_agent="keyledger-seed",
            access_key_id="test",
            operation=operation,
        )
        found.append(
            RequestRecorded(
                originator_id=RequestRecorded.id_for(request_id),
                originator_version=1,
                timestamp=datetime.now(UTC),
                operation=operation,
                request=ctx.as_dict(),
                key_arn=arn,
                parameters={"KeyId": arn},
                error_code=None,
                error_message=None,
            )
        )
    return found


def seed(data_dir: Path, count: int, arn: str, region: str, batch: int = 2000) -> float:
    """Save ``count`` records in transactions of ``batch``; returns records per second."""
    ledger = open_usage_ledger(Settings(data_dir=data_dir))
    began = time.perf_counter()
    columns = (
        TextColumn("usage records"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns) as progress:
        task = progress.add_task("seed", total=count)
        done = 0
        while done < count:
            size = min(batch, count - done)
            ledger.record_batch(records(size, arn, region))
            done += size
            progress.update(task, completed=done)
    ledger.close()
    return count / (time.perf_counter() - began)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--data-dir", type=Path, required=True)
    p.add_argument("--records", type=int, default=1_000_000)
    p.add_argument("--region", default="us-east-1")
    p.add_argument("--key-id", default=str(uuid4()), help="the key the records name")
    args = p.parse_args(argv)
    args.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    arn = key_arn(args.region, DEFAULT_ACCOUNT, args.key_id)
    rate = seed(args.data_dir, args.records, arn, args.region)
    print(f"{args.records} usage records in {args.data_dir} ({rate:.0f} records/s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
