"""Views shared by several processes in PostgreSQL, and the read cache's NOTIFY mark,
against a real PostgreSQL (the session fixture in tests/conftest.py)."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from uuid import uuid4

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from domain.grant_tokens import GrantTokens
from domain.usage import RequestRecorded
from domain.values import RequestContext
from eventstore.audit_key import AuditSigner
from eventstore.clock import system_clock
from eventstore.database import postgres_env
from eventstore.keystore import Keystore
from eventstore.ledger import KeyLedger
from eventstore.notify import ChangeMark, Listener
from eventstore.usage_ledger import UsageLedger
from projections.audit_integrity import verify_store
from projections.audit_runner import AuditRunner
from projections.audit_view import LEDGERS, AuditView, open_datastore
from projections.runner import PollingRunner
from projections.usage_view import UsageView
from projections.view_store import open_view_datastore, postgres_location

MONTH = datetime.now(UTC).strftime("%Y-%m")


def _record(account: str) -> RequestRecorded:
    request_id = str(uuid4())
    context = RequestContext(f"arn:aws:iam::{account}:root", account, "us-east-1", request_id)
    return RequestRecorded(
        originator_id=RequestRecorded.id_for(request_id),
        originator_version=1,
        timestamp=datetime.now(UTC),
        operation="Encrypt",
        request=context.as_dict(),
        key_arn=f"arn:aws:kms:us-east-1:{account}:key/{uuid4()}",
        parameters={},
        error_code=None,
        error_message=None,
    )


def _record_while_following(
    usage: UsageLedger, runners: Sequence[PollingRunner], view: UsageView | AuditView
) -> int:
    """Record 210 requests in batches of 7 while every runner catches up in a loop on its
    own thread, until ``view`` has them all; the log's head."""
    stop = threading.Event()

    def follow(runner: PollingRunner) -> None:
        while not stop.is_set():
            runner.catch_up()

    threads = [threading.Thread(target=follow, args=(r,)) for r in runners]
    for thread in threads:
        thread.start()
    try:
        for _ in range(30):
            usage.record_batch([_record("111111111111") for _ in range(7)])
        head = usage.recorder.max_notification_id() or 0
        deadline = time.monotonic() + 30
        while view.position(usage.name) < head:
            assert time.monotonic() < deadline
            time.sleep(0.02)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    return head


def test_runners_of_several_processes_apply_each_event_once(pg_store: str) -> None:
    """Three runners, each with its own connections to the one shared view (as three
    processes have), follow the log while it grows: the request counts, which a second
    application of any event would inflate, come out exact."""
    usage = UsageLedger({"AGGREGATE_CACHE_MAXSIZE": "100"} | postgres_env(pg_store))
    location = postgres_location(pg_store, "usage")
    views = [UsageView(open_view_datastore(location)) for _ in range(3)]
    for view in views:
        view.create_table()
    # Batches of different sizes: the runners' ranges overlap without coinciding, which is
    # where a tracking row alone (it only refuses to move backwards) would let an event
    # through twice.
    runners = [
        PollingRunner(usage, view, name="usage", interval=0.01, batch=batch)
        for view, batch in zip(views, (3, 5, 7), strict=True)
    ]
    head = _record_while_following(usage, runners, views[0])
    for view in views:  # every process reads the same rows
        assert sum(r.count for r in view.requests(MONTH, None)) == 210
        assert view.position(usage.name) == head
    for view in views:
        view.datastore.close()
    usage.close()


def test_audit_runners_of_several_processes_append_each_record_once_to_one_chain(
    pg_store: str,
) -> None:
    """Three audit runners, each with its own connections to the one shared audit view,
    follow the ledgers while they grow and sign a digest after every pass: every request
    is in the trail once, each ledger's chain is one line (it verifies), and so is the
    digest chain."""
    env = {"AGGREGATE_CACHE_MAXSIZE": "100"} | postgres_env(pg_store)
    usage = UsageLedger(env)
    keys = KeyLedger(
        env, Keystore(":memory:", bytes(32)), system_clock, GrantTokens.from_root_key(bytes(32))
    )
    signer = AuditSigner(Ed25519PrivateKey.generate())
    location = postgres_location(pg_store, "audit")
    views = [AuditView(open_datastore(location)) for _ in range(3)]
    for view in views:
        view.create_table()
    runners = [
        AuditRunner(
            keys,
            usage,
            view,
            interval=0.01,
            batch=batch,
            signer=signer,
            digest_interval=0,
            clock=system_clock,
        )
        for view, batch in zip(views, (3, 5, 7), strict=True)
    ]
    head = _record_while_following(usage, runners, views[0])
    for view in views:  # every process reads the same trail
        assert view.count() == 210
        assert view.position(usage.name) == head
        assert view.heads()[LEDGERS[1]][0] == 210
    report = verify_store(views[0], {signer.fingerprint: signer.public_key})
    assert report.ok, report.problems
    assert report.records == 210
    # At least two links: a chain to check. How many passes sign one depends on the load
    # (three, not four, under a fuzz campaign beside the suite).
    assert report.digests == len(views[0].digests()) >= 2
    for view in views:
        view.datastore.close()
    keys.close()
    usage.close()


def test_the_notify_mark_moves_on_another_writers_append_and_distrusts_a_dead_listener(
    pg_store: str,
) -> None:
    usage = UsageLedger({"AGGREGATE_CACHE_MAXSIZE": "100"} | postgres_env(pg_store))
    mark = ChangeMark()
    assert mark() != mark()  # not listening yet: every look is a change
    channel = usage.recorder.channel_name  # type: ignore[attr-defined]
    listener = Listener(pg_store, {channel: [mark.bump]}, mark.listening_changed)
    listener.start()
    try:
        deadline = time.monotonic() + 10
        while not mark.listening:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        time.sleep(0.1)
        seen = mark()
        assert mark() == seen  # nothing appended: the mark stands (no round trip asked)
        other = UsageLedger({"AGGREGATE_CACHE_MAXSIZE": "100"} | postgres_env(pg_store))
        other.record_batch([_record("222222222222")])  # another writer (process) appends
        deadline = time.monotonic() + 1.0
        while mark() == seen:
            assert time.monotonic() < deadline, "no NOTIFY within 1 s"
            time.sleep(0.001)
        other.close()
    finally:
        listener.stop()
    assert mark() != mark()  # stopped listening: trust nothing again
    usage.close()
