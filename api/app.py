"""The composition root: the one place where stores, ledgers, views and the API are wired."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar
from uuid import uuid4

from aiohttp import web

from api.audit_follower import AuditFollower
from api.config import ConfigError, Settings
from api.dev import DEV_CLOCK, SCHEDULER, advance_clock
from api.dispatch import handle, not_found
from api.health import READY_MAX_LAG, health, ready
from api.observability import METRICS, Metrics, metrics_page, observe
from api.principals import Directory
from api.scheduler import Scheduler
from api.services import SERVICES, Services
from api.sigv4 import SigV4Verifier
from api.status import projections_status
from api.throttle import Throttle
from api.wire import load_kms_model, load_model
from domain.cmk import Cmk
from domain.grant_tokens import GrantTokens
from domain.grants import Grant
from domain.imports import ImportTokens
from domain.quotas import needs_key_spec
from domain.values import RequestContext
from eventstore.audit_key import AuditKeyStore, publish
from eventstore.clock import Clock, OffsetClock, system_clock
from eventstore.database import STORE_ENV, check_store_version, is_postgres, postgres_env
from eventstore.key_operations import KeyOperations
from eventstore.keystore import Keystore
from eventstore.ledger import KeyLedger
from eventstore.notify import ChangeMark, Listener
from eventstore.outage import store_unavailable
from eventstore.read_cache import ReadCache, sqlite_mark
from eventstore.root_key import load_root_key
from eventstore.sqlite import commit_probe
from eventstore.usage_ledger import UsageLedger
from eventstore.writer import BatchWriter
from projections.audit_runner import AuditRunner
from projections.audit_view import AuditView, open_datastore
from projections.grants_view import GrantsView
from projections.keys_view import KeysView
from projections.runner import PollingRunner
from projections.usage_view import UsageView, usage_runners
from projections.view_store import open_view_datastore, postgres_location

log = logging.getLogger("keyledger")
SETTINGS = web.AppKey("settings", Settings)
T = TypeVar("T")
R = TypeVar("R")
# STS answers GetCallerIdentity and CloudTrail LookupEvents on this port.
# Seconds a ledger write waits for SQLite's write lock (eventsourcing takes whole seconds).
# A request then fails within about twice this (its batch, and one ahead of it).
STORE_LOCK_TIMEOUT = "2"
SIGNED_SERVICES = frozenset({"kms", "sts", "cloudtrail"})
DEV_FAULT_ENV = "KEYLEDGER_DEV_FAULT"  # honoured only with --dev-clock (crash tests)
# Honoured only with --dev-clock: "paused" keeps the audit view's thread stopped, so
# bench/audit.py can measure what the projection costs the request path.
DEV_AUDIT_ENV = "KEYLEDGER_DEV_AUDIT"


def create_app(settings: Settings, clock: Clock | None = None) -> web.Application:
    """Build the aiohttp application; stores open on startup and close on cleanup."""
    app = web.Application(client_max_size=settings.max_body_bytes + 1, middlewares=[observe])
    app[SETTINGS] = settings
    app[METRICS] = Metrics()
    app[READY_MAX_LAG] = settings.ready_max_lag_seconds
    if clock is None:
        clock = OffsetClock() if settings.dev_clock else system_clock
    if isinstance(clock, OffsetClock):
        app[DEV_CLOCK] = clock
        app.router.add_post("/_dev/clock", advance_clock)
        log.warning("DEV CLOCK ENABLED: POST /_dev/clock moves this server's time")
    if settings.open_credentials:
        log.warning(
            "OPEN CREDENTIALS ENABLED: any access key and secret is accepted; a 12-digit "
            "access key id acts as the root of that account"
        )
    app.cleanup_ctx.append(_services_context(settings, clock))
    app.router.add_post("/", handle)
    app.router.add_get("/projections", projections_status)
    app.router.add_get("/health", health)
    app.router.add_get("/ready", ready)
    if settings.metrics_port is None:
        app.router.add_get("/metrics", metrics_page)
    app.router.add_route("*", "/{tail:.*}", not_found)
    return app


def create_metrics_app(api: web.Application) -> web.Application:
    """/metrics alone, for --metrics-port: scraped privately, not beside the API."""
    app = web.Application()
    app[METRICS] = api[METRICS]
    app.router.add_get("/metrics", metrics_page)
    return app


def _services_context(
    settings: Settings, clock: Clock
) -> Callable[[web.Application], AsyncIterator[None]]:
    async def services_context(app: web.Application) -> AsyncIterator[None]:
        loop = asyncio.get_running_loop()
        metrics = app[METRICS]
        services = await loop.run_in_executor(None, open_services, settings, clock, metrics)
        app[SERVICES] = services
        metrics.watch(services)
        fault = settings.environ.get(DEV_FAULT_ENV) if settings.dev_clock else None
        scheduler = Scheduler(services, settings.scheduler_interval, fault)
        app[SCHEDULER] = scheduler
        # With --workers, only the first runs the scheduler: its work is done once.
        task = asyncio.create_task(scheduler.run_forever()) if settings.run_scheduler else None
        yield
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await loop.run_in_executor(None, close_services, services)

    return services_context


def _stores(settings: Settings) -> dict[str, str]:
    """Where each store lives: SQLite files in the data directory, memory, or one
    PostgreSQL database shared by every process (ledgers, keystore and every view)."""
    if settings.data_dir is None:
        return {
            "persistence": "eventsourcing.popo",
            "keystore": ":memory:",
            "views": f"file:keyledger-views-{uuid4().hex}?mode=memory&cache=shared",
            "audit": f"file:keyledger-audit-{uuid4().hex}?mode=memory&cache=shared",
            "grants": f"file:keyledger-grants-{uuid4().hex}?mode=memory&cache=shared",
            "billing": f"file:keyledger-billing-{uuid4().hex}?mode=memory&cache=shared",
        }
    data_dir = settings.data_dir
    return {
        "persistence": "eventstore.sqlite:DurableSQLiteFactory",
        "keystore": str(data_dir / "keystore.db"),
        "views": str(data_dir / "views.db"),
        "audit": str(data_dir / "audit.db"),
        # Its own file: each view tracks the same KeyLedger log at its own position.
        "grants": str(data_dir / "grants.db"),
        "billing": str(data_dir / "billing.db"),
        "keyledger": str(data_dir / "keyledger.db"),
        "usageledger": str(data_dir / "usage.db"),
    } | (_postgres_stores(settings.store) if is_postgres(settings.store) else {})


def _postgres_stores(url: str) -> dict[str, str]:
    """Everything in the one database: the ledgers, the keystore, and the keys, grants,
    usage and audit views (a schema each), shared by every process on it."""
    postgres_env(url)  # refuses a malformed URL before anything opens
    return {
        "persistence": "eventstore.postgres:FailFastPostgresFactory",
        "postgres": url,
        "keystore": url,
        "views": postgres_location(url, "keys"),
        "grants": postgres_location(url, "grants"),
        "billing": postgres_location(url, "usage"),
        "audit": postgres_location(url, "audit"),
    }


def view_paths(data_dir: Path, store: str | None = None) -> dict[str, str]:
    """Where each view lives, by the view's name: a SQLite file in the data directory, or
    (``store`` a PostgreSQL URL) a schema in that database."""
    stores = _stores(Settings(data_dir=data_dir, store=store))
    names = {"keys": "views", "grants": "grants", "audit": "audit", "usage": "billing"}
    return {name: stores[store] for name, store in names.items()}


def _ledger_env(stores: dict[str, str], name: str) -> dict[str, str]:
    # One SQLite file per application: their tables share names (eventsourcing docs).
    env = {"PERSISTENCE_MODULE": stores["persistence"], "AGGREGATE_CACHE_MAXSIZE": "10000"}
    if "postgres" in stores:
        # One database for both ledgers: the library names each table after its
        # application (keyledger_events, usageledger_events).
        return env | postgres_env(stores["postgres"])
    if name in stores:
        # A bounded wait for the write lock: a store that stays locked longer is an outage,
        # answered with DependencyTimeoutException (see BatchWriter), not a minute's hang.
        env |= {"SQLITE_DBNAME": stores[name], "SQLITE_LOCK_TIMEOUT": STORE_LOCK_TIMEOUT}
    return env


def open_usage_ledger(settings: Settings) -> UsageLedger:
    """The usage ledger of a data directory or store, alone (benchmarks seed it)."""
    return UsageLedger(_ledger_env(_stores(settings), "usageledger"))


def _read_cache(
    stores: dict[str, str], ledger: KeyLedger, notified: ChangeMark | None
) -> ReadCache:
    """Keys kept in memory while the key store's change mark stands still: SQLite's
    data_version (a read of shared memory), PostgreSQL's NOTIFYs counted by the listener
    thread, or the in-memory log's head."""
    if notified is not None:
        return ReadCache(ledger.recorder, notified)
    if "keyledger" in stores:
        return ReadCache(ledger.recorder, sqlite_mark(stores["keyledger"]))
    return ReadCache(ledger.recorder, lambda: ledger.recorder.max_notification_id() or 0)


def _channel(app: KeyLedger | UsageLedger) -> str:
    """The channel the library's PostgreSQL recorder NOTIFYs after each append."""
    return str(app.recorder.channel_name)  # type: ignore[attr-defined]


def _root_key(settings: Settings) -> bytes:
    if settings.data_dir is None:
        return os.urandom(32)
    settings.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    return load_root_key(Path(settings.data_dir), settings.environ)


def open_services(settings: Settings, clock: Clock, metrics: Metrics | None = None) -> Services:
    stores = _stores(settings)
    root_key = _root_key(settings)
    if "postgres" in stores:
        check_store_version(stores["postgres"])
    audit_keys = AuditKeyStore(stores["keystore"], root_key)
    audit_keys.check_root_key()  # before anything else opens, let alone writes
    keystore = Keystore(stores["keystore"], root_key)
    view = KeysView(open_view_datastore(stores["views"]))
    view.create_table()
    grants_view = GrantsView(open_view_datastore(stores["grants"]))
    grants_view.create_table()
    ledger = KeyLedger(
        _ledger_env(stores, "keyledger"),
        keystore,
        clock,
        GrantTokens.from_root_key(root_key),
        settings.limits,
    )
    notified = ChangeMark() if "postgres" in stores else None
    ledger.read_cache = _read_cache(stores, ledger, notified)
    if notified is not None:
        ledger.listeners.append(notified.bump)  # read-your-writes in this process
    usage = UsageLedger(_ledger_env(stores, "usageledger"))
    runner = PollingRunner(ledger, view)
    grants_runner = PollingRunner(
        ledger,
        grants_view,
        name="grants",
        delay=settings.grant_propagation_seconds,
        clock=clock,
    )
    for each in (runner, grants_runner):
        each.catch_up()
        each.start()
        ledger.listeners.append(each.nudge)
    ledger.aliases_of = functools.partial(_current_aliases, runner, view)
    ledger.grants_of = functools.partial(_current_grants, grants_runner, grants_view, ledger)
    ledger.count_of = functools.partial(_current_count, runner, view)
    usage_view = open_usage_view(stores["billing"])
    billing = usage_runners(ledger, usage, usage_view)
    for each in billing:
        each.catch_up()
        each.start()
    throttle = Throttle(settings.quotas)
    if settings.quotas.enabled:  # otherwise the ledger's no-op hook stays in place
        ledger.throttle = functools.partial(_throttle_key_use, throttle)
    audit_runner, audit_follower = open_audit(
        stores, ledger, usage, audit_keys=audit_keys, settings=settings, clock=clock
    )
    listener = None
    if notified is not None:
        # Events appended by any process move the read cache's mark and wake this one's
        # runners within milliseconds (the library NOTIFYs its channel on each append).
        key_events = [notified.bump, runner.nudge, grants_runner.nudge, audit_runner.nudge]
        channels = {
            _channel(ledger): key_events,
            _channel(usage): [audit_runner.nudge],
        }
        listener = Listener(stores["postgres"], channels, notified.listening_changed)
        listener.start()
    configs = settings.principal_configs
    directory = Directory(configs, open_credentials=settings.open_credentials)
    metrics = metrics or Metrics()
    log.info("keyledger stores open", extra={"stores": sorted(stores)})
    return Services(
        ledger=ledger,
        usage=usage,
        keys=KeyOperations(ledger),
        view=view,
        runner=runner,
        grants_view=grants_view,
        grants_runner=grants_runner,
        usage_view=usage_view,
        prices=settings.prices,
        usage_runners=billing,
        commands=BatchWriter(
            "keyledger",
            ledger.run_batch,
            on_batch=metrics.batch_committed("keyledger"),
            probe=commit_probe(ledger),
        ),
        records=BatchWriter(
            "usage",
            _nudging(usage.record_batch, audit_runner.nudge),
            on_batch=metrics.batch_committed("usage"),
            probe=commit_probe(usage),
        ),
        readers=ThreadPoolExecutor(settings.reader_threads, thread_name_prefix="reader"),
        # Signatures are checked against wall time, never the dev clock: a client signs
        # with its own real clock (SigV4 allows 5 minutes of skew).
        verifier=SigV4Verifier(directory.credential, clock=time.time, services=SIGNED_SERVICES),
        wire=load_kms_model(),
        clock=clock,
        max_body_bytes=settings.max_body_bytes,
        directory=directory,
        throttle=throttle,
        metrics=metrics,
        import_tokens=ImportTokens.from_root_key(root_key),
        allowed_source_ips=settings.allowed_source_ips,
        vpc_endpoint_id=settings.vpc_endpoint_id,
        audit=audit_runner.audit,
        audit_runner=audit_runner,
        audit_follower=audit_follower,
        audit_keys=audit_keys,
        cloudtrail=load_model("cloudtrail"),
        listener=listener,
    )


def open_audit(
    stores: dict[str, str],
    ledger: KeyLedger,
    usage: UsageLedger,
    *,
    audit_keys: AuditKeyStore,
    settings: Settings,
    clock: Clock,
) -> tuple[AuditRunner, AuditFollower | None]:
    """The audit view follows both ledgers on its own thread (requests only nudge it) or
    in a follower process; the server's runner then only catches up before reads."""
    signer = audit_keys.signer()
    publish(signer, settings.data_dir)
    view = AuditView(open_datastore(stores["audit"]))
    view.create_table()
    in_process = settings.audit_follower != "process" or settings.data_dir is None
    runner = AuditRunner(
        ledger,
        usage,
        view,
        signer=signer,
        digest_interval=settings.audit_digest_interval if in_process else None,
        clock=clock,
    )
    runner.catch_up()
    if not in_process and settings.data_dir is not None:
        follower = AuditFollower(
            settings.data_dir,
            settings.audit_digest_interval,
            # The follower writes the view where the server keeps it: the store's URL goes
            # by environment, not on a command line every local user can read.
            {**settings.environ, STORE_ENV: stores["postgres"]}
            if "postgres" in stores
            else settings.environ,
        )
        runner.external = follower.alive
        return runner, follower
    if settings.dev_clock and settings.environ.get(DEV_AUDIT_ENV) == "paused":
        log.warning("AUDIT VIEW PAUSED (%s): it follows the ledgers only when read", DEV_AUDIT_ENV)
        return runner, None
    runner.start()
    ledger.listeners.append(runner.nudge)
    return runner, None


def _nudging(
    save: Callable[[Sequence[T]], list[R]], nudge: Callable[[], None]
) -> Callable[[Sequence[T]], list[R]]:
    def save_and_nudge(items: Sequence[T]) -> list[R]:
        outcomes = save(items)
        nudge()
        return outcomes

    return save_and_nudge


@dataclass
class Stores:
    """A data directory's stores, opened by the admin and forensics commands."""

    ledger: KeyLedger
    usage: UsageLedger
    audit: AuditView
    audit_keys: AuditKeyStore
    data_dir: Path
    store: str | None = None  # the PostgreSQL URL, if the stores are there

    def close(self) -> None:
        self.ledger.close()
        self.usage.close()
        self.audit.datastore.close()
        self.audit_keys.close()
        self.ledger.keystore.close()


def open_view_file(data_dir: Path, name: str, store: str | None = None) -> KeysView | GrantsView:
    """The keys or grants view of a data directory (or PostgreSQL store), for commands."""
    location = view_paths(data_dir, store)[name]
    if name == "keys":
        view: KeysView | GrantsView = KeysView(open_view_datastore(location))
    else:
        view = GrantsView(open_view_datastore(location))
    view.create_table()
    return view


def open_usage_view(location: str) -> UsageView:
    view = UsageView(open_view_datastore(location))
    view.create_table()
    return view


def open_stores(
    data_dir: Path, environ: Mapping[str, str], *, root: bool = False, store: str | None = None
) -> Stores:
    """The server's own stores, opened the server's way, for commands that read them.
    Nothing here unwraps key material: the root key is loaded only with ``root=True``
    (signing an on-demand digest), and the keystore is not opened otherwise."""
    if store is None and not (data_dir / "keyledger.db").exists():
        raise ConfigError(f"{data_dir} holds no keyledger stores")
    stores = _stores(Settings(data_dir=data_dir, environ=environ, store=store))
    root_key = load_root_key(data_dir, environ) if root else bytes(32)
    keystore = Keystore(stores["keystore"] if root else ":memory:", root_key)
    view = AuditView(open_datastore(stores["audit"]))
    view.create_table()
    return Stores(
        ledger=KeyLedger(
            _ledger_env(stores, "keyledger"),
            keystore,
            system_clock,
            GrantTokens.from_root_key(root_key),
        ),
        usage=UsageLedger(_ledger_env(stores, "usageledger")),
        audit=view,
        audit_keys=AuditKeyStore(stores["keystore"], root_key),
        data_dir=data_dir,
        store=stores.get("postgres"),
    )


def _current_aliases(runner: PollingRunner, view: KeysView, key_id: str) -> list[str]:
    """A key's alias names, from the view once it has every event saved so far."""
    runner.catch_up()
    return view.alias_names_of(key_id)


def _current_count(
    runner: PollingRunner, view: KeysView, account: str, region: str, what: str
) -> int:
    runner.catch_up()
    return view.count(account, region, what)


def _throttle_key_use(throttle: Throttle, cmk: Cmk, ctx: RequestContext) -> None:
    """Cryptographic operations count against their key type's shared quota."""
    if ctx.operation is not None and needs_key_spec(ctx.operation):
        throttle.take(ctx.account, ctx.region, ctx.operation, key_spec=cmk.key_spec)


def _current_grants(
    runner: PollingRunner, view: GrantsView, ledger: KeyLedger, key_id: str
) -> Sequence[Grant]:
    """A key's grants from the grants view. With no propagation delay the view first
    takes in what this process has saved (read-your-writes, as for the List operations);
    only requests the key policy does not allow pay for this."""
    if not runner.delay and runner.position < ledger.last_saved_id:
        runner.catch_up()
    return view.grants_of(key_id)


def close_services(services: Services) -> None:
    """Stop taking work, drain the writers, then close the stores."""
    services.commands.close()
    services.records.close()
    services.readers.shutdown(wait=True)
    services.keygen.shutdown(wait=True)
    if services.listener is not None:
        services.listener.stop()
    services.runner.stop()
    services.grants_runner.stop()
    for each in services.usage_runners:
        each.stop()
    services.usage_view.datastore.close()
    services.audit_runner.stop()
    try:  # a clean shutdown leaves every record under a signed digest
        if services.audit_follower is not None:
            services.audit_follower.stop()  # it signs the closing digest itself
        else:
            services.audit_runner.sign_now()
    except Exception as error:
        if not store_unavailable(error):
            log.exception("could not sign the closing audit digest")
        else:  # the next start signs them; an outage needs no traceback
            log.error("could not sign the closing audit digest: the store is unreachable")
    services.audit.datastore.close()
    services.audit_keys.close()
    services.ledger.close()
    services.usage.close()
    services.view.datastore.close()
    services.grants_view.datastore.close()
    services.ledger.keystore.close()
