"""The keyledger command line: ``keyledger serve`` and friends."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

from aiohttp import web

from api.app import create_app
from api.config import (
    CONFIG_ENV,
    ConfigError,
    ConfigFile,
    Settings,
    default_principals,
    load_config,
)
from eventstore.root_key import RootKeyError

log = logging.getLogger("keyledger")


class JsonFormatter(logging.Formatter):
    """One JSON object per line, so logs can be shipped and queried."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for extra in ("request_id", "stores", "address"):
            if hasattr(record, extra):
                entry[extra] = getattr(record, extra)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="keyledger", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the KMS-compatible API server")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=4599)
    serve.add_argument("--data-dir", type=Path, default=Path("data"))
    serve.add_argument("--config", type=Path, default=None, help=f"TOML file (or ${CONFIG_ENV})")
    serve.add_argument(
        "--in-memory", action="store_true", help="keep nothing on disk (for experiments)"
    )
    serve.add_argument(
        "--dev-clock",
        action="store_true",
        help="tests only: POST /_dev/clock advances time (loopback addresses only)",
    )
    return parser.parse_args(argv)


def settings_from(args: argparse.Namespace) -> Settings:
    config = args.config or (Path(os.environ[CONFIG_ENV]) if CONFIG_ENV in os.environ else None)
    loaded = load_config(config) if config else ConfigFile(default_principals())
    return Settings(
        host=args.host,
        port=args.port,
        data_dir=None if args.in_memory else args.data_dir,
        principals=loaded.principals,
        dev_clock=args.dev_clock,
        grant_propagation_seconds=loaded.grant_propagation_seconds,
        grant_limits=loaded.grant_limits,
    )


def main(argv: list[str] | None = None) -> int:
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter())
    logging.basicConfig(level=logging.INFO, handlers=[handler])
    args = parse_args(argv)
    try:
        settings = settings_from(args)
        app = create_app(settings)
        log.info("listening", extra={"address": f"http://{settings.host}:{settings.port}"})
        web.run_app(app, host=settings.host, port=settings.port, print=None, access_log=None)
    except (ConfigError, RootKeyError) as error:
        log.error("%s", error)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
