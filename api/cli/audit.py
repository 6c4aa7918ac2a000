"""``keyledger audit verify | export | digest | query``: the trail, checked and read."""

from __future__ import annotations

import argparse
import signal
from pathlib import Path
from typing import Any

from rich.table import Table

from api.cli.common import (
    add_data_dir,
    console,
    errors,
    parse_time,
    print_json,
    progress,
    stores,
)
from eventstore.audit_key import PUBLIC_KEY_FILE, fingerprint, load_public_key
from eventstore.clock import system_clock
from projections.audit_integrity import (
    Report,
    export,
    make_digest,
    verify_export,
    verify_store,
)
from projections.audit_runner import AuditRunner
from projections.audit_view import Filters

QUERY_LIMIT = 100


def add_parser(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    group = commands.add_parser("audit", help="verify, export and query the audit trail")
    actions = group.add_subparsers(dest="action", required=True)

    verify = actions.add_parser("verify", help="check the hash chains and signed digests")
    add_data_dir(verify)
    verify.add_argument("--dir", type=Path, help="verify an exported directory instead, offline")
    verify.add_argument(
        "--public-key", type=Path, help=f"PEM public key (default: <data-dir>/{PUBLIC_KEY_FILE})"
    )
    verify.set_defaults(run=run_verify)

    out = actions.add_parser("export", help="write CloudTrail-format log and digest files")
    add_data_dir(out)
    out.add_argument("--from", dest="start", type=parse_time)
    out.add_argument("--to", dest="end", type=parse_time)
    out.add_argument("directory", type=Path)
    out.set_defaults(run=run_export)

    follow = actions.add_parser(
        "follow", help="project the ledgers into the audit view until SIGTERM (serve starts it)"
    )
    add_data_dir(follow)
    follow.add_argument("--digest-interval", type=float, default=300.0)
    follow.set_defaults(run=run_follow)

    digest = actions.add_parser("digest", help="sign a digest now (needs the root key)")
    add_data_dir(digest)
    digest.set_defaults(run=run_digest)

    query = actions.add_parser("query", help="filter the trail")
    add_data_dir(query)
    query.add_argument("--key", help="key ARN or key id")
    query.add_argument("--principal", help="principal ARN")
    query.add_argument("--operation", help="event name, e.g. Decrypt")
    query.add_argument("--outcome", help="success, failure, or an error code")
    query.add_argument("--from", dest="start", type=parse_time)
    query.add_argument("--to", dest="end", type=parse_time)
    query.add_argument("--limit", type=int, default=QUERY_LIMIT)
    query.add_argument("--json", action="store_true", help="CloudTrail records as JSON")
    query.set_defaults(run=run_query)


def _public_keys(args: argparse.Namespace, opened: Any | None) -> dict[str, Any]:
    if args.public_key is not None:
        key = load_public_key(args.public_key.read_bytes())
        return {fingerprint(key): key}
    if opened is None:
        raise SystemExit("--public-key is required to verify an export")
    return dict(opened.audit_keys.public_keys())


def run_verify(args: argparse.Namespace) -> int:
    if args.dir is not None:
        keys = _public_keys(args, None)
        with progress("verifying export", None) as advance:
            report = verify_export(args.dir, keys, advance)
        return _report(report)
    with stores(args) as opened:
        keys = _public_keys(args, opened)
        with progress("verifying", opened.audit.count()) as advance:
            report = verify_store(opened.audit, keys, advance)
    return _report(report)


def _report(report: Report) -> int:
    for ledger, count in report.unsigned.items():
        # Not damage: the next digest (periodic, on shutdown, or `audit digest`) signs them.
        errors.print(f"note: the last {count} {ledger} records are not covered by a digest yet")
    if report.ok:
        console.print(
            f"[green]OK[/green]: {report.records} records and {report.digests} digests verified"
        )
        return 0
    errors.print(f"[red]INVALID[/red]: first bad position: {report.first_bad}")
    for problem in report.problems[:20]:
        errors.print(f"  {problem}")
    if len(report.problems) > 20:
        errors.print(f"  … and {len(report.problems) - 20} more")
    return 1


def run_export(args: argparse.Namespace) -> int:
    with stores(args) as opened, progress("exporting", opened.audit.count()) as advance:
        digests, records = export(opened.audit, args.directory, args.start, args.end, advance)
    console.print(f"exported {records} records under {digests} digests to {args.directory}")
    return 0


def run_digest(args: argparse.Namespace) -> int:
    with stores(args, root=True) as opened:
        seq, _, _ = opened.audit.append_digest(
            make_digest(opened.audit_keys.signer(), system_clock())
        )
    console.print(f"signed digest {seq}")
    return 0


def run_follow(args: argparse.Namespace) -> int:
    """The audit view's projection as a process of its own (``serve --audit-follower
    process``): it follows both ledgers, signs digests, and on SIGTERM signs a last one."""
    with stores(args, root=True) as opened:
        runner = AuditRunner(
            opened.ledger,
            opened.usage,
            opened.audit,
            signer=opened.audit_keys.signer(),
            digest_interval=args.digest_interval,
            clock=system_clock,
            interval=0.1,  # no nudges reach another process: poll a little faster
        )
        signal.signal(signal.SIGTERM, lambda *_: runner.stop_soon())
        runner.follow()
        runner.sign_now()
    return 0


def query_filters(args: argparse.Namespace) -> Filters:
    key = args.key
    return Filters(
        key_arn=key if key is None or key.startswith("arn:") else None,
        principal=args.principal,
        event_name=args.operation,
        outcome=args.outcome,
        start=args.start.timestamp() if args.start else None,
        end=args.end.timestamp() if args.end else None,
        key_id=key if key is not None and not key.startswith("arn:") else None,
    )


def run_query(args: argparse.Namespace) -> int:
    with stores(args) as opened:
        rows = opened.audit.lookup(query_filters(args), args.limit)
    records = [row.as_dict() for row in rows]
    if args.json:
        print_json(records)
        return 0
    table = Table("time", "event", "principal", "source IP", "key", "outcome", "request id")
    for record in records:
        identity = record.get("userIdentity") or {}
        keys = [r["ARN"].rsplit("/", 1)[-1] for r in record.get("resources") or []]
        table.add_row(
            record["eventTime"],
            record["eventName"],
            identity.get("arn") or identity.get("invokedBy") or "-",
            record.get("sourceIPAddress") or "-",
            ", ".join(keys) or "-",
            record.get("errorCode") or "ok",
            record.get("requestID") or "-",
        )
    console.print(table)
    return 0
