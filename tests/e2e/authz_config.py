"""The cast of the authorization tests: two accounts, their principals and IAM policies.

The same cast is served two ways: as ``Settings`` for a ThreadServer, and as a TOML
configuration file for ``keyledger serve --config`` (policies as JSON strings and as
TOML tables).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from api.config import PrincipalConfig, Settings
from api.sigv4 import Credential
from tests.support import ProcessServer, ThreadServer

REGION = "us-east-1"
ACCOUNT_A = "111111111111"
ACCOUNT_B = "222222222222"


def key_arn(account: str, key_id: str) -> str:
    return f"arn:aws:kms:{REGION}:{account}:key/{key_id}"


def alias_arn(account: str, name: str) -> str:
    return f"arn:aws:kms:{REGION}:{account}:{name}"


def root(account: str) -> str:
    return f"arn:aws:iam::{account}:root"


def allow(actions: list[str] | str, resources: list[str] | str = "*") -> dict[str, Any]:
    return {"Effect": "Allow", "Action": actions, "Resource": resources}


def document(*statements: dict[str, Any]) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": list(statements)}


# IAM identity policies ---------------------------------------------------------------

ALICE_ALLOW_ALL = document(allow("kms:*"))
# Alice is refused everything on keys tagged protected=yes: an explicit deny in an
# identity-based policy, which no key policy can override.
ALICE_DENY_PROTECTED = document(
    {
        "Effect": "Deny",
        "Action": "kms:*",
        "Resource": "*",
        "Condition": {"StringEquals": {"aws:ResourceTag/protected": "yes"}},
    }
)
APP_USE_KEYS = document(
    allow(
        ["kms:Encrypt", "kms:Decrypt", "kms:GenerateDataKey", "kms:DescribeKey"],
        f"arn:aws:kms:*:{ACCOUNT_A}:key/*",
    )
)
ALIAS_ADMIN = document(
    allow(
        ["kms:CreateAlias", "kms:DeleteAlias", "kms:UpdateAlias"],
        [f"arn:aws:kms:*:{ACCOUNT_A}:alias/app-*", f"arn:aws:kms:*:{ACCOUNT_A}:key/*"],
    )
)
BOB_USE_A_KEYS = document(
    allow(["kms:Encrypt", "kms:Decrypt"], f"arn:aws:kms:*:{ACCOUNT_A}:key/*"),
)


@dataclass(frozen=True)
class Cast:
    """One principal: its credentials, ARN, account and identity policies."""

    name: str
    arn: str
    account: str
    policies: tuple[dict[str, Any], ...] = ()
    via_service: str | None = None
    is_service: bool = False
    toml_tables: tuple[int, ...] = field(default=())  # policy indexes written as TOML tables

    @property
    def access_key_id(self) -> str:
        return f"AK{self.name.upper().replace('-', '')}"

    @property
    def secret_access_key(self) -> str:
        return f"secret-of-{self.name}"

    def config(self) -> PrincipalConfig:
        return PrincipalConfig(
            Credential(self.access_key_id, self.secret_access_key, self.arn, self.account),
            policies=tuple(json.dumps(p) for p in self.policies),
            via_service=self.via_service,
            is_service=self.is_service,
        )


CAST = {
    c.name: c
    for c in (
        Cast("root-a", root(ACCOUNT_A), ACCOUNT_A),
        Cast(
            "alice",
            f"arn:aws:iam::{ACCOUNT_A}:user/alice",
            ACCOUNT_A,
            (ALICE_ALLOW_ALL, ALICE_DENY_PROTECTED),
            toml_tables=(1,),
        ),
        Cast(
            "app",
            f"arn:aws:iam::{ACCOUNT_A}:role/app",
            ACCOUNT_A,
            (APP_USE_KEYS,),
            toml_tables=(0,),
        ),
        Cast("nobody", f"arn:aws:iam::{ACCOUNT_A}:user/nobody", ACCOUNT_A),
        Cast("aliasadmin", f"arn:aws:iam::{ACCOUNT_A}:role/aliasadmin", ACCOUNT_A, (ALIAS_ADMIN,)),
        Cast("s3-a", f"arn:aws:iam::{ACCOUNT_A}:role/s3-writer", ACCOUNT_A, via_service="s3"),
        Cast("root-b", root(ACCOUNT_B), ACCOUNT_B),
        Cast("bob", f"arn:aws:iam::{ACCOUNT_B}:user/bob", ACCOUNT_B, (BOB_USE_A_KEYS,)),
        Cast("carol", f"arn:aws:iam::{ACCOUNT_B}:user/carol", ACCOUNT_B),
        Cast("s3-b", f"arn:aws:iam::{ACCOUNT_B}:role/s3-writer", ACCOUNT_B, via_service="s3"),
    )
}
# Only in the TOML file: a service principal acting in account A.
S3_SERVICE = Cast("s3-service", "s3.amazonaws.com", ACCOUNT_A, is_service=True)


@dataclass
class World:
    """A running server with the whole cast, and a boto3 client per principal."""

    server: ThreadServer | ProcessServer
    data_dir: Path
    _clients: dict[str, Any] = field(default_factory=dict)

    def __call__(self, name: str, service: str = "kms") -> Any:
        if (name, service) not in self._clients:
            cast = S3_SERVICE if name == S3_SERVICE.name else CAST[name]
            self._clients[name, service] = self.server.client(
                service,
                aws_access_key_id=cast.access_key_id,
                aws_secret_access_key=cast.secret_access_key,
            )
        return self._clients[name, service]


def settings(data_dir: Path) -> Settings:
    return Settings(data_dir=data_dir, port=0, principals=tuple(c.config() for c in CAST.values()))


# TOML --------------------------------------------------------------------------------


def _toml_value(value: Any) -> str:
    """A JSON-compatible value as TOML: JSON strings and arrays are valid TOML."""
    if isinstance(value, dict):
        return (
            "{ " + ", ".join(f"{json.dumps(k)} = {_toml_value(v)}" for k, v in value.items()) + " }"
        )
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return json.dumps(value)


def _toml_blocks(policy: dict[str, Any]) -> str:
    """A policy written the way a person would in TOML: array-of-tables blocks."""
    head = [f"{k} = {_toml_value(v)}" for k, v in policy.items() if k != "Statement"]
    blocks = ["\n[[principals.policies]]", *head]
    for statement in policy["Statement"]:
        blocks.append("\n[[principals.policies.Statement]]")
        blocks += [f"{k} = {_toml_value(v)}" for k, v in statement.items()]
    return "\n".join(blocks)


def _toml_principal(cast: Cast) -> str:
    lines = [
        "[[principals]]",
        f"arn = {json.dumps(cast.arn)}",
        f"access_key_id = {json.dumps(cast.access_key_id)}",
        f"secret_access_key = {json.dumps(cast.secret_access_key)}",
    ]
    if cast.is_service:
        lines.append(f"account = {json.dumps(cast.account)}")
    if cast.via_service:
        lines.append(f"via_service = {json.dumps(cast.via_service)}")
    if cast.policies and set(cast.toml_tables) == set(range(len(cast.policies))):
        lines += [_toml_blocks(p) for p in cast.policies]  # [[principals.policies]] tables
    elif cast.policies:
        # JSON text in TOML multi-line literal strings, mixed with inline tables
        entries = [
            _toml_value(p) if i in cast.toml_tables else "'''\n" + json.dumps(p, indent=2) + "'''"
            for i, p in enumerate(cast.policies)
        ]
        lines.append("policies = [\n" + ",\n".join(entries) + ",\n]")
    return "\n".join(lines) + "\n"


def toml_text() -> str:
    """The whole cast (plus the s3.amazonaws.com service principal) as a config file."""
    return "\n".join(_toml_principal(c) for c in (*CAST.values(), S3_SERVICE))
