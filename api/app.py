"""The composition root: the one place where stores, ledgers, views and the API are wired."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from uuid import uuid4

from aiohttp import web
from eventsourcing.sqlite import SQLiteDatastore

from api.config import Settings
from api.dev import DEV_CLOCK, SCHEDULER, advance_clock
from api.dispatch import handle, not_found
from api.scheduler import Scheduler
from api.services import SERVICES, Caller, Services
from api.sigv4 import SigV4Verifier
from api.wire import load_kms_model
from eventstore.clock import Clock, OffsetClock, system_clock
from eventstore.key_operations import KeyOperations
from eventstore.keystore import Keystore
from eventstore.ledger import KeyLedger
from eventstore.root_key import load_root_key
from eventstore.usage_ledger import UsageLedger
from eventstore.writer import BatchWriter
from projections.keys_view import KeysView
from projections.runner import PollingRunner

log = logging.getLogger("keyledger")
SETTINGS = web.AppKey("settings", Settings)
SIGNED_SERVICES = frozenset({"kms", "sts"})  # STS answers GetCallerIdentity on this port
DEV_FAULT_ENV = "KEYLEDGER_DEV_FAULT"  # honoured only with --dev-clock (crash tests)


def create_app(settings: Settings, clock: Clock | None = None) -> web.Application:
    """Build the aiohttp application; stores open on startup and close on cleanup."""
    app = web.Application(client_max_size=settings.max_body_bytes + 1)
    app[SETTINGS] = settings
    if clock is None:
        clock = OffsetClock() if settings.dev_clock else system_clock
    if isinstance(clock, OffsetClock):
        app[DEV_CLOCK] = clock
        app.router.add_post("/_dev/clock", advance_clock)
        log.warning("DEV CLOCK ENABLED: POST /_dev/clock moves this server's time")
    app.cleanup_ctx.append(_services_context(settings, clock))
    app.router.add_post("/", handle)
    app.router.add_route("*", "/{tail:.*}", not_found)
    return app


def _services_context(
    settings: Settings, clock: Clock
) -> Callable[[web.Application], AsyncIterator[None]]:
    async def services_context(app: web.Application) -> AsyncIterator[None]:
        loop = asyncio.get_running_loop()
        services = await loop.run_in_executor(None, open_services, settings, clock)
        app[SERVICES] = services
        fault = settings.environ.get(DEV_FAULT_ENV) if settings.dev_clock else None
        scheduler = Scheduler(services, settings.scheduler_interval, fault)
        app[SCHEDULER] = scheduler
        task = asyncio.create_task(scheduler.run_forever())
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await loop.run_in_executor(None, close_services, services)

    return services_context


def _stores(settings: Settings) -> dict[str, str]:
    """Where each store lives: SQLite files in the data directory, or memory."""
    if settings.data_dir is None:
        return {
            "persistence": "eventsourcing.popo",
            "keystore": ":memory:",
            "views": f"file:keyledger-views-{uuid4().hex}?mode=memory&cache=shared",
        }
    data_dir = settings.data_dir
    return {
        "persistence": "eventstore.sqlite:DurableSQLiteFactory",
        "keystore": str(data_dir / "keystore.db"),
        "views": str(data_dir / "views.db"),
        "keyledger": str(data_dir / "keyledger.db"),
        "usageledger": str(data_dir / "usage.db"),
    }


def _ledger_env(stores: dict[str, str], name: str) -> dict[str, str]:
    # One SQLite file per application: their tables share names (eventsourcing docs).
    env = {"PERSISTENCE_MODULE": stores["persistence"], "AGGREGATE_CACHE_MAXSIZE": "10000"}
    if name in stores:
        env |= {"SQLITE_DBNAME": stores[name], "SQLITE_LOCK_TIMEOUT": "15"}
    return env


def _root_key(settings: Settings) -> bytes:
    if settings.data_dir is None:
        return os.urandom(32)
    settings.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    return load_root_key(Path(settings.data_dir), settings.environ)


def open_services(settings: Settings, clock: Clock) -> Services:
    stores = _stores(settings)
    keystore = Keystore(stores["keystore"], _root_key(settings))
    view = KeysView(SQLiteDatastore(stores["views"], lock_timeout=15))
    view.create_table()
    ledger = KeyLedger(_ledger_env(stores, "keyledger"), keystore, clock)
    usage = UsageLedger(_ledger_env(stores, "usageledger"))
    runner = PollingRunner(ledger, view)
    runner.catch_up()
    runner.start()
    ledger.listeners.append(runner.nudge)
    ledger.aliases_of = functools.partial(_current_aliases, runner, view)
    configs = settings.principal_configs
    credentials = {p.credential.access_key_id: p.credential for p in configs}
    log.info("keyledger stores open", extra={"stores": sorted(stores)})
    return Services(
        ledger=ledger,
        usage=usage,
        keys=KeyOperations(ledger),
        view=view,
        runner=runner,
        commands=BatchWriter("keyledger", ledger.run_batch),
        records=BatchWriter("usage", usage.record_batch),
        readers=ThreadPoolExecutor(settings.reader_threads, thread_name_prefix="reader"),
        # Signatures are checked against wall time, never the dev clock: a client signs
        # with its own real clock (SigV4 allows 5 minutes of skew).
        verifier=SigV4Verifier(credentials.get, clock=time.time, services=SIGNED_SERVICES),
        wire=load_kms_model(),
        clock=clock,
        max_body_bytes=settings.max_body_bytes,
        callers={p.credential.access_key_id: Caller.from_config(p) for p in configs},
        known_principals=frozenset(p.credential.principal_arn for p in configs),
    )


def _current_aliases(runner: PollingRunner, view: KeysView, key_id: str) -> list[str]:
    """A key's alias names, from the view once it has every event saved so far."""
    runner.catch_up()
    return view.alias_names_of(key_id)


def close_services(services: Services) -> None:
    """Stop taking work, drain the writers, then close the stores."""
    services.commands.close()
    services.records.close()
    services.readers.shutdown(wait=True)
    services.keygen.shutdown(wait=True)
    services.runner.stop()
    services.ledger.close()
    services.usage.close()
    services.view.datastore.close()
    services.ledger.keystore.close()
