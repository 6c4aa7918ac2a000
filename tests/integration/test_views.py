"""The keys view: built by the polling runner, resumed from its tracking after a restart."""

from __future__ import annotations

import functools
from pathlib import Path

from eventsourcing.sqlite import SQLiteDatastore

from eventstore.ledger import KeyLedger
from projections.keys_view import KeysView
from projections.runner import PollingRunner
from tests.integration.stores import open_ledger
from tests.unit.test_cmk import CTX


def open_view(path: Path) -> KeysView:
    view = KeysView(SQLiteDatastore(str(path)))
    view.create_table()
    return view


def create(ledger: KeyLedger, n: int) -> list[str]:
    return [
        ledger.run(
            functools.partial(
                ledger.create_key, ctx=CTX, description="", policy=None, tags={"i": str(i)}
            )
        )["KeyId"]
        for i in range(n)
    ]


def test_a_view_started_late_catches_up_with_everything_recorded(tmp_path: Path) -> None:
    ledger = open_ledger(tmp_path)
    keys = create(ledger, 3)
    ledger.run(
        functools.partial(ledger.create_alias, ctx=CTX, alias_name="alias/a", target_key_id=keys[0])
    )
    view = open_view(tmp_path / "views.db")
    runner = PollingRunner(ledger, view)
    # every event recorded: 3 keys and an alias, and the quota counters they took slots in
    assert runner.catch_up() == ledger.recorder.max_notification_id() >= 4
    assert view.list_keys(CTX.account, CTX.region, "", 10) == sorted(keys)
    aliases = view.list_aliases(CTX.account, CTX.region, None, "", 10)
    assert [(a["name"], a["target_key_id"]) for a in aliases] == [("alias/a", keys[0])]
    assert view.list_tags(keys[1], "", 10) == [("i", "1")]


def test_after_a_restart_the_view_resumes_where_it_stopped(tmp_path: Path) -> None:
    ledger = open_ledger(tmp_path)
    first = create(ledger, 2)
    view = open_view(tmp_path / "views.db")
    PollingRunner(ledger, view).catch_up()
    view.datastore.close()
    seen = ledger.recorder.max_notification_id()
    later = create(ledger, 2)
    ledger.run(functools.partial(ledger.untag_resource, ctx=CTX, key_id=first[0], tag_keys=["i"]))
    reopened = open_view(tmp_path / "views.db")
    runner = PollingRunner(ledger, reopened)
    assert runner.position == seen
    # only what was recorded while it was away
    assert runner.catch_up() == ledger.recorder.max_notification_id() - seen
    assert reopened.list_keys(CTX.account, CTX.region, "", 10) == sorted(first + later)
    assert reopened.list_tags(first[0], "", 10) == []


def test_two_runners_on_one_view_apply_each_event_once(tmp_path: Path) -> None:
    ledger = open_ledger(tmp_path)
    view = open_view(tmp_path / "views.db")
    one, two = PollingRunner(ledger, view), PollingRunner(ledger, view)
    create(ledger, 2)
    assert one.catch_up() == ledger.recorder.max_notification_id()
    assert two.catch_up() == 0
    assert two.position == one.position == view.position(ledger.name)
