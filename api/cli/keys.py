"""``keyledger keys history | state``: forensics by replaying the event store."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from rich.table import Table

from api.cli.common import add_data_dir, console, errors, parse_time, print_json, stores
from domain.errors import NotFoundError
from projections import forensics


def add_parser(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    group = commands.add_parser("keys", help="a key's history and past state, by replay")
    actions = group.add_subparsers(dest="action", required=True)

    history = actions.add_parser("history", help="every event of a key")
    add_data_dir(history)
    history.add_argument("key", help="key id or key ARN")
    history.add_argument("--json", action="store_true")
    history.set_defaults(run=run_history)

    state = actions.add_parser("state", help="a key as it was at a past moment")
    add_data_dir(state)
    state.add_argument("key", help="key id or key ARN")
    state.add_argument("--at", required=True, type=parse_time, help="ISO 8601 or epoch seconds")
    state.add_argument("--json", action="store_true")
    state.set_defaults(run=run_state)


def _replay(args: argparse.Namespace, answer: Callable[..., Any], *more: Any) -> Any | None:
    """Replay the key's events from the event store (never the view)."""
    with stores(args) as opened:
        try:
            return answer(opened.ledger, args.key, *more)
        except NotFoundError as error:
            errors.print(error.message)
            return None


def run_history(args: argparse.Namespace) -> int:
    entries = _replay(args, forensics.history)
    if entries is None:
        return 1
    if args.json:
        print_json(entries)
        return 0
    table = Table("#", "time", "event", "by", "from", "request id", "details")
    for entry in entries:
        table.add_row(
            str(entry["version"]),
            entry["time"],
            entry["eventName"],
            entry["principal"] or "keyledger (service)",
            entry["sourceIPAddress"] or "-",
            entry["requestId"] or "-",
            _brief(entry["details"]),
        )
    console.print(table)
    return 0


def _brief(details: dict[str, Any]) -> str:
    shown = {k: v for k, v in details.items() if k not in ("keyId", "policy")}
    return ", ".join(f"{k}={v}" for k, v in shown.items())


def run_state(args: argparse.Namespace) -> int:
    state = _replay(args, forensics.state_at, args.at)
    if state is None:
        return 1
    if args.json:
        print_json(state)
        return 0
    metadata = state["KeyMetadata"]
    table = Table("field", "value", title=f"{metadata['Arn']} at {state['at']}")
    for name in ("KeyState", "Enabled", "Description", "KeySpec", "KeyUsage", "CreationDate"):
        table.add_row(name, str(metadata.get(name)))
    table.add_row("DeletionDate", str(metadata.get("DeletionDate")))
    table.add_row("Aliases", ", ".join(state["Aliases"]) or "-")
    table.add_row("Tags", ", ".join(f"{t['TagKey']}={t['TagValue']}" for t in state["Tags"]) or "-")
    rotation = state["Rotation"]
    table.add_row(
        "Rotation",
        f"enabled={rotation['KeyRotationEnabled']} "
        f"period={rotation['RotationPeriodInDays']} rotations={len(rotation['Rotations'])}",
    )
    if state["Grants"] is not None:
        table.add_row("Grants", str(len(state["Grants"])))
    table.add_row("Policy", state["Policy"])
    console.print(table)
    return 0
