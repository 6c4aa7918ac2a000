"""`keyledger serve`: listeners (TCP with optional TLS, a unix socket, a metrics port),
and the signals an operator sends: SIGTERM/SIGINT to stop, SIGHUP to reload principals.

Shutdown order: stop accepting; give in-flight requests ``shutdown_timeout`` seconds to
finish (one whose body never arrives is cancelled then: nothing of it was written); drain
the writers, so every acknowledged request is durable; close the stores; exit 0.
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import os
import signal
import sys
import time
from collections.abc import Callable

from aiohttp import web

from api.app import create_app, create_metrics_app
from api.config import ConfigError, Settings, load_config
from api.services import SERVICES
from api.tls import server_context

log = logging.getLogger("keyledger")


def loop_factory(name: str) -> Callable[[], asyncio.AbstractEventLoop]:
    """uvloop (libuv) answers the same load with less CPU per request than the standard
    loop, measured with bench/compare.py; asyncio when asked, or when uvloop is not
    installed (it is an optional speed-up, never needed for correctness)."""
    if name == "uvloop":
        try:
            import uvloop
        except ImportError:
            log.warning("uvloop is not installed: serving on the asyncio event loop")
        else:
            return uvloop.new_event_loop
    return asyncio.new_event_loop


# glibc's mallopt parameter for the number of malloc arenas (malloc.h, M_ARENA_MAX).
_M_ARENA_MAX = -8


def bound_malloc_arenas(arenas: int = 2) -> bool:
    """Cap glibc's malloc arenas before the server starts its threads.

    glibc gives threads that allocate at once arenas of their own, up to eight per core
    (mallopt(3), M_ARENA_MAX), and memory freed in an arena stays with it. The server's
    threads (writers, projections, readers) all allocate, so the fuzzer's bursts of odd
    requests raised each arena's high-water mark in turn: RSS kept creeping while the
    memory in use stayed flat. Python allocates under its GIL, so more arenas buy next to
    no parallelism here. MALLOC_ARENA_MAX in the environment, if set, is left to rule;
    other C libraries (musl) are left alone."""
    if "MALLOC_ARENA_MAX" in os.environ or not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        return bool(libc.mallopt(_M_ARENA_MAX, arenas))
    except (OSError, AttributeError):
        return False


async def serve(settings: Settings) -> None:
    app = create_app(settings)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=settings.shutdown_timeout)
    await runner.setup()
    runners = [runner]
    sites: list[web.BaseSite] = []
    if settings.tcp:
        context = (
            server_context(settings.tls_cert, settings.tls_key)
            if settings.tls_cert is not None and settings.tls_key is not None
            else None
        )
        sites.append(
            web.TCPSite(
                runner,
                settings.host,
                settings.port,
                ssl_context=context,
                reuse_port=settings.workers > 1,
            )
        )
    if settings.unix_socket is not None:
        settings.unix_socket.unlink(missing_ok=True)
        sites.append(web.UnixSite(runner, settings.unix_socket))
    if settings.metrics_port is not None:
        metrics = web.AppRunner(create_metrics_app(app), access_log=None, shutdown_timeout=1)
        await metrics.setup()
        runners.insert(0, metrics)
        sites.append(
            web.TCPSite(
                metrics, settings.host, settings.metrics_port, reuse_port=settings.workers > 1
            )
        )
    for site in sites:
        await site.start()
    if settings.unix_socket is not None:
        os.chmod(settings.unix_socket, settings.unix_socket_mode)
    log.info("listening", extra={"address": ", ".join(site.name for site in sites)})

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGHUP, reload_principals, app, settings)
    await stop.wait()

    began = time.monotonic()
    log.info("shutting down: no new connections; in-flight requests finish, writers drain")
    for each in runners:
        await each.cleanup()
    if settings.unix_socket is not None:
        settings.unix_socket.unlink(missing_ok=True)
    log.info("stopped", extra={"seconds": round(time.monotonic() - began, 3)})


def reload_principals(app: web.Application, settings: Settings) -> None:
    """SIGHUP: reread the configuration file's principals; connections stay open. A file
    that does not load leaves the principals as they were."""
    if settings.config_path is None:
        log.warning("SIGHUP: no configuration file to reload")
        return
    try:
        principals = load_config(settings.config_path).principals
    except ConfigError as error:
        log.error("SIGHUP: configuration not reloaded: %s", error)
        return
    app[SERVICES].directory.reload(principals)
    log.info("SIGHUP: %d principals loaded from %s", len(principals), settings.config_path)
