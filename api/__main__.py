"""keyledger: a self-hosted key management service that speaks the AWS KMS API."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from api.cli import add_commands
from api.config import (
    CONFIG_ENV,
    ConfigError,
    ConfigFile,
    Settings,
    default_principals,
    load_config,
)
from api.serve import bound_malloc_arenas, loop_factory, serve
from api.tls import write_dev_certificates
from api.workers import run_workers, worker_index
from domain.quotas import Quotas
from eventstore.database import STORE_ENV, StoreError
from eventstore.root_key import RootKeyError

log = logging.getLogger("keyledger")
REQUEST_FIELDS = (
    "request_id",
    "operation",
    "principal",
    "key",
    "outcome",
    "status",
    "latency_ms",
    "source_ip",
    "stores",
    "address",
    "seconds",
)


class JsonFormatter(logging.Formatter):
    """One JSON object per line, so logs can be shipped and queried."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for extra in REQUEST_FIELDS:
            if hasattr(record, extra):
                entry[extra] = getattr(record, extra)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry)


def _env(name: str, default: Any, convert: Callable[[str], Any] = str) -> Any:
    return convert(os.environ[name]) if name in os.environ else default


def _flag(name: str) -> bool:
    return os.environ.get(name, "").lower() in {"1", "true", "yes"}


def _option(
    parser: argparse.ArgumentParser,
    flag: str,
    env: str,
    default: Any,
    help_text: str,
    *,
    convert: Callable[[str], Any] = str,
) -> None:
    parser.add_argument(
        flag,
        type=convert,
        default=_env(env, default, convert),
        help=f"{help_text} (default: {'none' if default is None else default}; env {env})",
    )


def _switch(parser: argparse.ArgumentParser, flag: str, env: str, help_text: str) -> None:
    parser.add_argument(
        flag, action="store_true", default=_flag(env), help=f"{help_text} (env {env}=1)"
    )


def _octal(text: str) -> int:
    return int(text, 8)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="keyledger", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve = commands.add_parser(
        "serve", help="run the KMS-compatible API server", description="Run the API server."
    )
    _option(serve, "--host", "KEYLEDGER_HOST", "127.0.0.1", "address to listen on")
    _option(serve, "--port", "KEYLEDGER_PORT", 4599, "TCP port to listen on", convert=int)
    _option(
        serve,
        "--data-dir",
        "KEYLEDGER_DATA_DIR",
        Path("data"),
        "where the stores live",
        convert=Path,
    )
    _option(serve, "--config", CONFIG_ENV, None, "TOML configuration file", convert=Path)
    _option(
        serve,
        "--store",
        STORE_ENV,
        None,
        "postgresql://user:password@host/db: ledgers and keystore in PostgreSQL, views in "
        "the data directory; also `store` in the configuration file",
    )
    _option(
        serve,
        "--tls-cert",
        "KEYLEDGER_TLS_CERT",
        None,
        "PEM certificate chain: serve HTTPS",
        convert=Path,
    )
    _option(
        serve, "--tls-key", "KEYLEDGER_TLS_KEY", None, "PEM private key of --tls-cert", convert=Path
    )
    _option(
        serve,
        "--unix-socket",
        "KEYLEDGER_UNIX_SOCKET",
        None,
        "also listen on this unix socket",
        convert=Path,
    )
    _option(
        serve,
        "--unix-socket-mode",
        "KEYLEDGER_UNIX_SOCKET_MODE",
        "600",
        "permissions of the unix socket (octal)",
        convert=str,
    )
    _switch(serve, "--no-tcp", "KEYLEDGER_NO_TCP", "listen only on --unix-socket")
    _option(
        serve,
        "--metrics-port",
        "KEYLEDGER_METRICS_PORT",
        None,
        "serve /metrics on this port instead of the API port",
        convert=int,
    )
    _option(
        serve,
        "--log-format",
        "KEYLEDGER_LOG_FORMAT",
        "json",
        "json (one object per line) or text",
        convert=str,
    )
    _option(
        serve,
        "--shutdown-timeout",
        "KEYLEDGER_SHUTDOWN_TIMEOUT",
        5.0,
        "seconds in-flight requests get after SIGTERM",
        convert=float,
    )
    _switch(serve, "--no-quotas", "KEYLEDGER_NO_QUOTAS", "turn request quotas (throttling) off")
    _switch(serve, "--in-memory", "KEYLEDGER_IN_MEMORY", "keep nothing on disk (experiments)")
    _switch(
        serve,
        "--dev-clock",
        "KEYLEDGER_DEV_CLOCK",
        "tests only: POST /_dev/clock advances time (loopback only)",
    )
    _switch(
        serve,
        "--open-credentials",
        "KEYLEDGER_OPEN_CREDENTIALS",
        "local development: accept any access key and secret (loopback only)",
    )
    _option(
        serve,
        "--audit-follower",
        "KEYLEDGER_AUDIT_FOLLOWER",
        "thread",
        "thread, or process: project the audit view in a child process, off the server's CPU",
        convert=str,
    )
    _option(
        serve,
        "--workers",
        "KEYLEDGER_WORKERS",
        1,
        "server processes sharing the port (SO_REUSEPORT) and the store",
        convert=int,
    )
    _option(
        serve,
        "--event-loop",
        "KEYLEDGER_EVENT_LOOP",
        "uvloop",
        "uvloop (libuv; falls back to asyncio if not installed) or asyncio",
        convert=str,
    )
    dev_cert = commands.add_parser(
        "dev-cert",
        help="write a development CA and a localhost certificate",
        description="Write ca.pem, server.pem and server.key (0600) for `serve --tls-*`.",
    )
    dev_cert.add_argument("directory", type=Path, help="where to write the files")
    add_commands(commands)
    return parser.parse_args(argv)


def settings_from(args: argparse.Namespace) -> Settings:
    config = args.config
    loaded = load_config(config) if config else ConfigFile(default_principals())
    return Settings(
        host=args.host,
        port=args.port,
        data_dir=None if args.in_memory else args.data_dir,
        principals=loaded.principals,
        dev_clock=args.dev_clock,
        grant_propagation_seconds=loaded.grant_propagation_seconds,
        limits=loaded.limits,
        prices=loaded.prices,
        quotas=loaded.quotas if not args.no_quotas else Quotas(enabled=False),
        open_credentials=args.open_credentials,
        allowed_source_ips=loaded.allowed_source_ips,
        vpc_endpoint_id=loaded.vpc_endpoint_id,
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
        tcp=not args.no_tcp,
        unix_socket=args.unix_socket,
        unix_socket_mode=_octal(args.unix_socket_mode),
        metrics_port=args.metrics_port,
        shutdown_timeout=args.shutdown_timeout,
        config_path=config,
        audit_follower=args.audit_follower,
        workers=args.workers,
        event_loop=args.event_loop,
        run_scheduler=worker_index() in (None, 0),
        store=args.store or loaded.store,
    )


def _logging(log_format: str) -> None:
    handler = logging.StreamHandler()
    if log_format == "text":
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    else:
        handler.setFormatter(JsonFormatter())
    logging.basicConfig(level=logging.INFO, handlers=[handler])


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.command == "dev-cert":
        paths = write_dev_certificates(args.directory)
        print(f"CA certificate (trust this): {paths['ca']}")
        print(f"serve with: keyledger serve --tls-cert {paths['cert']} --tls-key {paths['key']}")
        return 0
    if args.command != "serve":  # the admin and forensics commands (api/cli/)
        _logging("text")
        try:
            return int(args.run(args))
        except (ConfigError, RootKeyError, StoreError) as error:
            log.error("%s", error)
            return 2
    _logging(args.log_format)
    bound_malloc_arenas()  # before any thread allocates
    try:
        settings = settings_from(args)  # a bad command line is refused once, not per worker
        if settings.workers > 1 and worker_index() is None:
            return run_workers(sys.argv[1:] if argv is None else argv, settings.workers)
        with asyncio.Runner(loop_factory=loop_factory(settings.event_loop)) as runner:
            runner.run(serve(settings))
    except (ConfigError, RootKeyError, StoreError, ValueError) as error:
        log.error("%s", error)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
