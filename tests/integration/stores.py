"""Open a server's stores directly, as an auditor or operator would."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from domain.grant_tokens import GrantTokens
from eventstore.clock import system_clock
from eventstore.keystore import Keystore
from eventstore.ledger import KeyLedger
from eventstore.root_key import load_root_key
from eventstore.usage_ledger import UsageLedger


def sqlite_env(path: Path) -> dict[str, str]:
    return {
        "PERSISTENCE_MODULE": "eventstore.sqlite:DurableSQLiteFactory",
        "SQLITE_DBNAME": str(path),
    }


def open_ledger(data_dir: Path) -> KeyLedger:
    root_key = load_root_key(data_dir, {})
    keystore = Keystore(str(data_dir / "keystore.db"), root_key)
    tokens = GrantTokens.from_root_key(root_key)
    return KeyLedger(sqlite_env(data_dir / "keyledger.db"), keystore, system_clock, tokens)


@contextmanager
def ledger_at(data_dir: Path) -> Iterator[KeyLedger]:
    """open_ledger, closed again (the keystore too) when the block ends."""
    ledger = open_ledger(data_dir)
    try:
        yield ledger
    finally:
        ledger.close()
        ledger.keystore.close()


def open_usage(data_dir: Path) -> UsageLedger:
    return UsageLedger(sqlite_env(data_dir / "usage.db"))


def recorded_request_ids(data_dir: Path) -> set[str]:
    """Request ids of every durable record: CMK/alias events and usage records."""
    ids: set[str] = set()
    for app in (open_ledger(data_dir), open_usage(data_dir)):
        for notification in app.recorder.select_notifications(start=1, limit=1_000_000):
            event = app.mapper.to_domain_event(notification)
            request = getattr(event, "request", None) or {}
            if request.get("request_id"):
                ids.add(request["request_id"])
        app.close()
    return ids
