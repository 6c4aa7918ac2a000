"""An authenticated caller as authorization sees it: principal, IAM policies, context."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from domain.policy import Policy, Principal

_ROOT = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:root$")


@dataclass(frozen=True)
class Identity:
    """An authenticated caller as authorization sees it; never persisted."""

    principal: Principal
    policies: tuple[Policy, ...] = ()
    via_service: str | None = None  # e.g. "s3.us-east-1.amazonaws.com"
    source_ip: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)
    mentions_resource_aliases: bool = False  # does any identity policy use that key?
    secure_transport: bool = False  # aws:SecureTransport: the request came over TLS
    source_vpce: str | None = None  # aws:SourceVpce: the private endpoint it came through

    @property
    def is_root(self) -> bool:
        return bool(_ROOT.match(self.principal.arn))
