"""``keyledger projections status | rebuild``: the read models, watched and rebuilt."""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime
from typing import Any

from eventsourcing.application import Application
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from api.app import Stores, view_paths
from api.cli.common import add_data_dir, console, errors, print_json, stores
from projections.grants_view import GrantsView
from projections.keys_view import KeysView
from projections.rebuild import Rebuild, RebuildRunning, rebuild_lock, stored
from projections.usage_view import UsageView
from projections.versioned_view import VersionedView

# The views a rebuild can replace. The audit view is not among them: its rows are
# hash-chained and covered by signed digests, so it is checked (`audit verify`), not
# regenerated; a damaged audit view is evidence, not a cache.
REBUILDABLE: dict[str, type[VersionedView]] = {
    "keys": KeysView,
    "grants": GrantsView,
    "usage": UsageView,
}
SCHEMA_VERSIONS = {name: view.SCHEMA_VERSION for name, view in REBUILDABLE.items()}


def add_parser(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    group = commands.add_parser("projections", help="the views' status, and rebuilds")
    actions = group.add_subparsers(dest="action", required=True)

    status = actions.add_parser("status", help="each view's position, lag and rate")
    add_data_dir(status)
    status.add_argument("--json", action="store_true")
    status.add_argument(
        "--sample", type=float, default=1.0, help="seconds to watch the positions for a rate"
    )
    status.set_defaults(run=run_status)

    rebuild = actions.add_parser(
        "rebuild", help="build a fresh view from position 0 beside the live one, then switch"
    )
    add_data_dir(rebuild)
    rebuild.add_argument("name", nargs="?", choices=sorted(REBUILDABLE))
    rebuild.add_argument("--all", action="store_true", help="every rebuildable view")
    rebuild.set_defaults(run=run_rebuild)


def _positions(opened: Stores) -> dict[str, dict[str, int]]:
    paths = view_paths(opened.data_dir, opened.store)
    return {name: stored(path)[1] for name, path in paths.items()}


def status_of(opened: Stores, sample: float) -> list[dict[str, Any]]:
    """Every view as its file has it, against the head of the ledgers it follows."""
    ledgers: dict[str, Application] = {a.name: a for a in (opened.ledger, opened.usage)}
    follows = {"keys": [opened.ledger.name], "grants": [opened.ledger.name]}
    follows["audit"] = follows["usage"] = [opened.ledger.name, opened.usage.name]
    before = _positions(opened)
    if sample > 0:
        time.sleep(sample)
    after = _positions(opened)
    now = datetime.now(UTC)
    views = []
    for name, path in view_paths(opened.data_dir, opened.store).items():
        version, _ = stored(path)
        position = head = lag_seconds = 0.0
        per_ledger = {}
        for app_name in follows[name]:
            app = ledgers[app_name]
            at = after[name].get(app_name, 0)
            top = app.recorder.max_notification_id() or 0
            per_ledger[app_name] = {"position": at, "head": top}
            position, head = position + at, head + top
            pending = app.recorder.select_notifications(start=at, limit=1, inclusive_of_start=False)
            if pending:
                age = now - app.mapper.to_domain_event(pending[0]).timestamp
                lag_seconds = max(lag_seconds, age.total_seconds())
        moved = sum(after[name].values()) - sum(before[name].values())
        views.append(
            {
                "name": name,
                "position": int(position),
                "head": int(head),
                "lag_events": int(head - position),
                "lag_seconds": round(lag_seconds, 3),
                "rate_events_per_second": round(moved / sample, 1) if sample > 0 else None,
                "schema_version": version if name != "audit" else 1,
                "code_schema_version": SCHEMA_VERSIONS.get(name, 1),
                "ledgers": per_ledger,
            }
        )
    return views


def run_status(args: argparse.Namespace) -> int:
    with stores(args) as opened:
        views = status_of(opened, args.sample)
    if args.json:
        print_json({"views": views})
        return 0
    table = Table("view", "position", "head", "lag (events)", "lag (s)", "events/s", "schema")
    for view in views:
        schema = str(view["schema_version"])
        if view["schema_version"] != view["code_schema_version"]:
            schema += f" (code: {view['code_schema_version']}; rebuilt at next start)"
        table.add_row(
            view["name"],
            str(view["position"]),
            str(view["head"]),
            str(view["lag_events"]),
            f"{view['lag_seconds']:.3f}",
            str(view["rate_events_per_second"]),
            schema,
        )
    console.print(table)
    return 0


def run_rebuild(args: argparse.Namespace) -> int:
    if args.all == (args.name is not None):
        errors.print(f"name one view ({', '.join(sorted(REBUILDABLE))}) or --all")
        return 2
    names = sorted(REBUILDABLE) if args.all else [args.name]
    paths = view_paths(args.data_dir, args.store)
    with stores(args) as opened:
        for name in names:
            try:
                with rebuild_lock(paths[name]):
                    _rebuild(opened, name, paths[name])
            except RebuildRunning as error:
                errors.print(f"[red]refused[/red]: {error}")
                return 3
    return 0


def _rebuild(opened: Stores, name: str, path: str) -> None:
    apps = [opened.ledger, opened.usage] if name == "usage" else [opened.ledger]
    rebuild = Rebuild(apps, REBUILDABLE[name], path)
    if rebuild.position:
        console.print(
            f"{name}: resuming the rebuild at position {rebuild.position}", soft_wrap=True
        )
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[rate]:>9,.0f} events/s"),
        TimeRemainingColumn(),
    )
    started, first = time.monotonic(), rebuild.position
    with Progress(*columns, console=errors, transient=True) as bar:
        task = bar.add_task(f"rebuilding {name}", total=rebuild.head(), completed=first, rate=0.0)

        def advance(n: int) -> None:
            rate = (rebuild.position - first) / max(time.monotonic() - started, 1e-6)
            bar.update(task, advance=n, total=max(rebuild.head(), 1), rate=rate)

        rebuild.build(advance)
    elapsed = time.monotonic() - started
    built = rebuild.position - first
    switched = rebuild.switch()
    same = (
        "equal to the live view"
        if switched.differences == 0
        else "not compared (the live view was behind)"
        if switched.differences < 0
        else f"{switched.differences} rows differed from the live view (now corrected)"
    )
    console.print(
        f"{name}: rebuilt {built} events in {elapsed:.2f}s "
        f"({built / max(elapsed, 1e-6):,.0f} events/s); switched at position "
        f"{switched.position} ({same}); live view write lock held {switched.seconds:.3f}s",
        soft_wrap=True,
    )
