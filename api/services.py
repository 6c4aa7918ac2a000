"""What a request handler can reach: the ledgers, views and executors, and its Call."""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

from aiohttp import web

from api.audit_follower import AuditFollower
from api.config import Network
from api.observability import Metrics
from api.principals import Directory
from api.sigv4 import SigV4Verifier
from api.throttle import Throttle
from api.wire import WireModel
from domain.imports import ImportTokens
from domain.pricing import Prices
from domain.usage import RequestRecorded
from domain.values import RequestContext
from eventstore.audit_key import AuditKeyStore
from eventstore.clock import Clock
from eventstore.key_operations import KeyOperations
from eventstore.ledger import Done, KeyLedger
from eventstore.notify import Listener
from eventstore.outage import Incident
from eventstore.read_cache import NeedsStore, on_event_loop
from eventstore.usage_ledger import UsageLedger
from eventstore.writer import BatchWriter
from projections.audit_runner import AuditRunner
from projections.audit_view import AuditView
from projections.grants_view import GrantsView
from projections.keys_view import KeysView
from projections.runner import PollingRunner
from projections.usage_view import UsageView

T = TypeVar("T")


@dataclass
class Services:
    ledger: KeyLedger
    usage: UsageLedger
    keys: KeyOperations
    view: KeysView
    runner: PollingRunner
    grants_view: GrantsView
    grants_runner: PollingRunner
    usage_view: UsageView
    prices: Prices
    usage_runners: tuple[PollingRunner, PollingRunner]
    commands: BatchWriter[Callable[..., Any], Done]
    records: BatchWriter[RequestRecorded, int]
    readers: ThreadPoolExecutor
    verifier: SigV4Verifier
    wire: WireModel
    clock: Clock
    max_body_bytes: int
    directory: Directory  # access keys, their principals and policies
    throttle: Throttle
    metrics: Metrics
    import_tokens: ImportTokens  # GetParametersForImport tokens, imported material ids
    audit: AuditView
    audit_runner: AuditRunner
    audit_keys: AuditKeyStore
    cloudtrail: WireModel  # CloudTrail's model, for LookupEvents on this port
    allowed_source_ips: tuple[Network, ...] = ()
    audit_follower: AuditFollower | None = None  # the audit view's follower process, if any
    vpc_endpoint_id: str | None = None
    listener: Listener | None = None  # PostgreSQL: LISTEN/NOTIFY nudges the runners
    # Key generation (RSA takes up to a second) on its own threads: a burst of CreateKey
    # or GenerateDataKeyPair calls cannot take every reader from other requests.
    keygen: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(2, thread_name_prefix="keygen")
    )
    # A request whose reads cannot reach the store (PostgreSQL stopped, a file gone) is
    # refused with DependencyTimeoutException; the log says so once per incident.
    reads: Incident = field(
        default_factory=lambda: Incident(
            logging.getLogger("keyledger.api"),
            "the store cannot be read",
            "requests that read it are refused with DependencyTimeoutException until it can",
            "the store can be read again",
        )
    )

    @property
    def known_principals(self) -> frozenset[str]:
        return self.directory.known_principals

    def runners(self) -> tuple[PollingRunner, ...]:
        """Every view's runner, for status, readiness and metrics."""
        return (self.runner, self.grants_runner, self.audit_runner, *self.usage_runners)

    async def read(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run a blocking read (aggregate load, view query) off the event loop."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.readers, functools.partial(fn, *args, **kwargs))

    async def read_cached(self, fn: Callable[..., T], *args: Any) -> T:
        """A read of current, kept aggregates runs here on the event loop: a symmetric
        Encrypt costs microseconds, less than a hop to a thread and back. Anything that
        needs the store raises NeedsStore before it has charged or changed anything,
        and runs again on a reader thread."""
        try:
            with on_event_loop():
                return fn(*args)
        except NeedsStore:
            return await self.read(fn, *args)

    async def generate(self, fn: Callable[..., T], *args: Any) -> T:
        """Run CPU-heavy key generation off the event loop and the writer thread
        (cryptography releases the GIL while it generates)."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.keygen, functools.partial(fn, *args))

    async def views_current(self) -> None:
        """Read-your-writes for List operations: wait for the view to reach every
        event this process has saved (a few milliseconds after a local write)."""
        await self.runner.caught_up(self.ledger.last_saved_id)

    async def grants_current(self) -> None:
        """The same for ListGrants, unless grants propagate with a delay on purpose."""
        if not self.grants_runner.delay:
            await self.grants_runner.caught_up(self.ledger.last_saved_id)


SERVICES = web.AppKey("services", Services)


@dataclass
class Call:
    """One KMS request in flight: who made it, what it asked, and what it touched."""

    services: Services
    request_id: str
    source_ip: str | None
    user_agent: str | None
    operation: str = "Unknown"
    ctx: RequestContext | None = None
    params: dict[str, Any] = field(default_factory=dict)
    key_arn: str | None = None
    recorded: bool = False  # True once the request's own events are durable
    outcome: str = "success"  # or the error code answered (metrics, request log)
    service: str = "kms"  # the SigV4 credential scope's service

    @property
    def context(self) -> RequestContext:
        if self.ctx is None:
            raise RuntimeError("operations run only after authentication")
        return self.ctx

    async def command(self, method: Callable[..., T], **kwargs: Any) -> T:
        """Run a KeyLedger command on the writer thread; its events are its record."""
        done = await self.services.commands(functools.partial(method, ctx=self.context, **kwargs))
        self.recorded = self.recorded or done.recorded
        return done.value

    async def read(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        return await self.services.read(fn, *args, **kwargs)

    async def read_cached(self, fn: Callable[..., T], *args: Any) -> T:
        return await self.services.read_cached(fn, *args)
