"""Settings: command-line flags, the TOML configuration file and the environment."""

from __future__ import annotations

import ipaddress
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from api.sigv4 import Credential

CONFIG_ENV = "KEYLEDGER_CONFIG"
DEFAULT_ACCOUNT = "000000000000"
_PRINCIPAL_ARN = re.compile(r"^arn:aws[a-z-]*:iam::(\d{12}):(root|user/.+|role/.+)$")


class ConfigError(ValueError):
    """The configuration file is unusable; the server must not start."""


def default_principals() -> tuple[Credential, ...]:
    """Without a file, access key ``test`` / secret ``test`` is the root of account
    000000000000: the convention users of local AWS emulators already have."""
    arn = f"arn:aws:iam::{DEFAULT_ACCOUNT}:root"
    return (Credential("test", "test", arn, DEFAULT_ACCOUNT),)


@dataclass(frozen=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 4599
    data_dir: Path | None = Path("data")  # None: the in-memory store (tests only)
    principals: tuple[Credential, ...] = field(default_factory=default_principals)
    environ: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    max_body_bytes: int = 256 * 1024
    reader_threads: int = 4
    dev_clock: bool = False  # POST /_dev/clock moves the domain clock (loopback only)
    scheduler_interval: float = 30.0

    def __post_init__(self) -> None:
        if self.dev_clock and not is_loopback(self.host):
            raise ConfigError("--dev-clock is refused unless the server binds a loopback address")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def load_principals(path: Path) -> tuple[Credential, ...]:
    try:
        document = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise ConfigError(f"cannot read configuration {path}: {error}") from None
    entries = document.get("principals", [])
    if not isinstance(entries, list) or not entries:
        raise ConfigError(f"{path}: expected at least one [[principals]] table")
    principals = tuple(_principal(entry, path) for entry in entries)
    keys = [p.access_key_id for p in principals]
    if len(set(keys)) != len(keys):
        raise ConfigError(f"{path}: an access_key_id appears twice")
    return principals


def _principal(entry: object, path: Path) -> Credential:
    if not isinstance(entry, dict):
        raise ConfigError(f"{path}: each [[principals]] entry must be a table")
    try:
        arn, key, secret = entry["arn"], entry["access_key_id"], entry["secret_access_key"]
    except KeyError as missing:
        raise ConfigError(f"{path}: a principal lacks {missing}") from None
    match = _PRINCIPAL_ARN.match(str(arn))
    if match is None:
        raise ConfigError(f"{path}: {arn!r} is not an IAM root, user or role ARN")
    return Credential(str(key), str(secret), str(arn), match.group(1))
