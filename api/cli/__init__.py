"""Admin and forensics commands: one module per command group, each opening the stores
through the server's own factory (``api.app.open_stores``)."""

from __future__ import annotations

import argparse

from api.cli import audit, backup, keys, migrate, projections, usage


def add_commands(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    audit.add_parser(commands)
    keys.add_parser(commands)
    usage.add_parser(commands)
    projections.add_parser(commands)
    backup.add_parser(commands)
    migrate.add_parser(commands)
