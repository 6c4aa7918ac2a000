"""Settings: command-line flags, the TOML configuration file and the environment."""

from __future__ import annotations

import ipaddress
import json
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from api.sigv4 import Credential
from domain.errors import MalformedPolicyDocumentError
from domain.policy import parse_policy
from domain.pricing import Prices
from domain.quotas import DEFAULT_RATES, Limits, Quotas

CONFIG_ENV = "KEYLEDGER_CONFIG"
DEFAULT_ACCOUNT = "000000000000"
_PRINCIPAL_ARN = re.compile(r"^arn:aws[a-z-]*:iam::(\d{12}):(root|user/.+|role/.+)$")
_SERVICE_PRINCIPAL = re.compile(r"^[a-z0-9-]+(\.[a-z0-9-]+)*\.amazonaws\.com$")
_ACCOUNT = re.compile(r"^\d{12}$")


Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class ConfigError(ValueError):
    """The configuration file is unusable; the server must not start."""


@dataclass(frozen=True)
class PrincipalConfig:
    """One principal of the configuration: its access key, its IAM identity policies
    (JSON texts), and — for a principal that acts through an AWS service — that service,
    which becomes the kms:ViaService of its calls."""

    credential: Credential
    policies: tuple[str, ...] = ()
    via_service: str | None = None
    is_service: bool = False


def default_principals() -> tuple[PrincipalConfig, ...]:
    """Without a file, access key ``test`` / secret ``test`` is the root of account
    000000000000: the convention users of local AWS emulators already have."""
    arn = f"arn:aws:iam::{DEFAULT_ACCOUNT}:root"
    return (PrincipalConfig(Credential("test", "test", arn, DEFAULT_ACCOUNT)),)


@dataclass(frozen=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 4599
    data_dir: Path | None = Path("data")  # None: the in-memory store (tests only)
    principals: tuple[PrincipalConfig | Credential, ...] = field(default_factory=default_principals)
    environ: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    max_body_bytes: int = 256 * 1024
    reader_threads: int = 4
    dev_clock: bool = False  # POST /_dev/clock moves the domain clock (loopback only)
    scheduler_interval: float = 30.0
    # [grants] propagation_seconds: how old a grant event must be before the grants view
    # applies it (AWS: "usually less than five minutes"); 0 applies it at once.
    grant_propagation_seconds: float = 0.0
    limits: Limits = field(default_factory=Limits)
    # Request quotas; the CLI turns them on at AWS's rates (see load_config), code that
    # builds Settings itself (tests, embedding) gets none unless it asks.
    quotas: Quotas = field(default_factory=lambda: Quotas(enabled=False))
    prices: Prices = field(default_factory=Prices)
    # Any access key with any secret (local development, as LocalStack); loopback only.
    open_credentials: bool = False
    # Refuse every request from elsewhere, before authentication (empty: allow all).
    allowed_source_ips: tuple[Network, ...] = ()
    # aws:SourceVpce of requests that arrive on the unix socket (the private endpoint).
    vpc_endpoint_id: str | None = None
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tcp: bool = True
    unix_socket: Path | None = None
    unix_socket_mode: int = 0o600
    metrics_port: int | None = None  # /metrics on its own port instead of the API's
    shutdown_timeout: float = 5.0  # in-flight requests get this long after SIGTERM
    ready_max_lag_seconds: float = 30.0  # /ready fails while a view lags more than this
    config_path: Path | None = None  # reread on SIGHUP
    # How often the audit view signs a digest (CloudTrail: hourly); also on demand.
    audit_digest_interval: float = 300.0
    # "thread": the audit view follows the ledgers on a thread of the server; "process":
    # in a child process (`keyledger audit follow`), off the server's CPU and GIL.
    audit_follower: str = "thread"
    workers: int = 1  # processes sharing the port and the store (api/workers.py)
    # "uvloop" (libuv's loop, when installed) or "asyncio" (the standard library's).
    event_loop: str = "uvloop"
    run_scheduler: bool = True  # False in every worker but the first
    # postgresql://user:password@host/db: the ledgers and the keystore live there, shared
    # by every keyledger process; None: SQLite files in data_dir.
    store: str | None = None

    def __post_init__(self) -> None:
        if self.workers < 1:
            raise ConfigError(f"--workers must be at least 1: {self.workers}")
        if self.workers > 1 and self.unix_socket is not None:
            raise ConfigError("--unix-socket serves one process: it cannot be used with --workers")
        if self.event_loop not in ("uvloop", "asyncio"):
            raise ConfigError(f"--event-loop must be uvloop or asyncio: {self.event_loop}")
        if self.audit_follower not in ("thread", "process"):
            raise ConfigError(f"--audit-follower must be thread or process: {self.audit_follower}")
        if self.dev_clock and not is_loopback(self.host):
            raise ConfigError("--dev-clock is refused unless the server binds a loopback address")
        if self.open_credentials and not is_loopback(self.host):
            raise ConfigError(
                "--open-credentials is refused unless the server binds a loopback address"
            )
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ConfigError("--tls-cert and --tls-key go together")
        if not self.tcp and self.unix_socket is None:
            raise ConfigError("--no-tcp needs --unix-socket: the server would listen nowhere")
        configs = tuple(
            p if isinstance(p, PrincipalConfig) else PrincipalConfig(p) for p in self.principals
        )
        object.__setattr__(self, "principals", configs)

    @property
    def principal_configs(self) -> tuple[PrincipalConfig, ...]:
        return self.principals  # type: ignore[return-value] - normalised in __post_init__


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class ConfigFile:
    """What a TOML configuration file sets."""

    principals: tuple[PrincipalConfig, ...]
    grant_propagation_seconds: float = 0.0
    limits: Limits = field(default_factory=Limits)
    quotas: Quotas = field(default_factory=Quotas)
    prices: Prices = field(default_factory=Prices)
    allowed_source_ips: tuple[Network, ...] = ()
    vpc_endpoint_id: str | None = None
    store: str | None = None  # top-level ``store = "postgresql://…"``


def load_config(path: Path) -> ConfigFile:
    try:
        document = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise ConfigError(f"cannot read configuration {path}: {error}") from None
    grants = _table(document, "grants", path)
    return ConfigFile(
        principals=_principals(document, path),
        grant_propagation_seconds=_number(grants, "propagation_seconds", 0.0, path),
        limits=_limits(_table(document, "limits", path), path),
        quotas=_quotas(_table(document, "quotas", path), path),
        prices=_prices(_table(document, "pricing", path), path),
        allowed_source_ips=_networks(document.get("allowed_source_ips", []), path),
        vpc_endpoint_id=_optional_text(document, "vpc_endpoint_id", path),
        store=_optional_text(document, "store", path),
    )


def _limits(table: dict[str, Any], path: Path) -> Limits:
    defaults = Limits()
    unknown = set(table) - set(defaults.__dataclass_fields__)
    if unknown:
        raise ConfigError(f"{path}: [limits] has no {', '.join(sorted(unknown))}")
    values = {
        name: int(_number(table, name, getattr(defaults, name), path))
        for name in defaults.__dataclass_fields__
    }
    return Limits(**values)


def _prices(table: dict[str, Any], path: Path) -> Prices:
    """``[pricing]``: US dollars (key_month, rotation_month, request_per_10k, ...)."""
    defaults = Prices()
    unknown = set(table) - set(defaults.__dataclass_fields__)
    if unknown:
        raise ConfigError(f"{path}: [pricing] has no {', '.join(sorted(unknown))}")
    values: dict[str, Any] = {}
    for name in defaults.__dataclass_fields__:
        value = _number(table, name, getattr(defaults, name), path)
        values[name] = int(value) if isinstance(getattr(defaults, name), int) else value
    return Prices(**values)


def _quotas(table: dict[str, Any], path: Path) -> Quotas:
    """``[quotas]``: ``enabled`` and requests per second per family (the names of
    ``DEFAULT_RATES``, e.g. ``cryptographic_operations_symmetric``, ``create_key``)."""
    table = dict(table)
    enabled = table.pop("enabled", True)
    if not isinstance(enabled, bool):
        raise ConfigError(f"{path}: [quotas] enabled must be true or false")
    unknown = set(table) - set(DEFAULT_RATES)
    if unknown:
        raise ConfigError(f"{path}: [quotas] has no {', '.join(sorted(unknown))}")
    rates = dict(DEFAULT_RATES)
    for name in table:
        rates[name] = _number(table, name, 0, path)
    return Quotas(enabled=enabled, rates=rates)


def _networks(raw: object, path: Path) -> tuple[Network, ...]:
    if not isinstance(raw, list):
        raise ConfigError(f"{path}: allowed_source_ips must be a list of CIDR blocks")
    try:
        return tuple(ipaddress.ip_network(str(cidr), strict=False) for cidr in raw)
    except ValueError as error:
        raise ConfigError(f"{path}: allowed_source_ips: {error}") from None


def _optional_text(document: dict[str, Any], name: str, path: Path) -> str | None:
    value = document.get(name)
    if value is not None and not isinstance(value, str):
        raise ConfigError(f"{path}: {name} must be a string")
    return value


def load_principals(path: Path) -> tuple[PrincipalConfig, ...]:
    return load_config(path).principals


def _table(document: dict[str, Any], name: str, path: Path) -> dict[str, Any]:
    table = document.get(name, {})
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: [{name}] must be a table")
    return table


def _number(table: dict[str, Any], name: str, default: float, path: Path) -> float:
    value = table.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ConfigError(f"{path}: {name} must be a number of at least 0")
    return float(value)


def _principals(document: dict[str, Any], path: Path) -> tuple[PrincipalConfig, ...]:
    entries = document.get("principals", [])
    if not isinstance(entries, list) or not entries:
        raise ConfigError(f"{path}: expected at least one [[principals]] table")
    principals = tuple(_principal(entry, path) for entry in entries)
    keys = [p.credential.access_key_id for p in principals]
    if len(set(keys)) != len(keys):
        raise ConfigError(f"{path}: an access_key_id appears twice")
    return principals


def _principal(entry: object, path: Path) -> PrincipalConfig:
    if not isinstance(entry, dict):
        raise ConfigError(f"{path}: each [[principals]] entry must be a table")
    try:
        arn, key, secret = entry["arn"], entry["access_key_id"], entry["secret_access_key"]
    except KeyError as missing:
        raise ConfigError(f"{path}: a principal lacks {missing}") from None
    account, is_service = _account_of(str(arn), entry, path)
    via = entry.get("via_service")
    return PrincipalConfig(
        credential=Credential(str(key), str(secret), str(arn), account),
        policies=tuple(_policy_text(p, path) for p in entry.get("policies", [])),
        via_service=str(via) if via else None,
        is_service=is_service,
    )


def _account_of(arn: str, entry: dict[str, Any], path: Path) -> tuple[str, bool]:
    """IAM principals carry their account in the ARN; a service principal
    (``s3.amazonaws.com``) names the account it acts in with ``account``."""
    match = _PRINCIPAL_ARN.match(arn)
    if match is not None:
        return match.group(1), False
    if _SERVICE_PRINCIPAL.match(arn) and _ACCOUNT.match(str(entry.get("account", ""))):
        return str(entry["account"]), True
    raise ConfigError(
        f"{path}: {arn!r} is neither an IAM root, user or role ARN nor a service principal "
        "with a 12-digit account"
    )


def _policy_text(policy: object, path: Path) -> str:
    """An identity policy: a JSON string, or the same document as a TOML table."""
    if isinstance(policy, dict):
        policy = json.dumps(policy)
    if not isinstance(policy, str):
        raise ConfigError(f"{path}: policies must be JSON strings or tables")
    try:
        parse_policy(policy)
    except MalformedPolicyDocumentError as error:
        raise ConfigError(f"{path}: an identity policy is malformed: {error.message}") from None
    return policy
