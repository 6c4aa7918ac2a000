"""Who may call: the configured principals by access key, reloadable, and open credentials.

``--open-credentials`` (loopback only) is LocalStack's convention for local development:
any access key with any secret is accepted; a 12-digit numeric access key id acts as the
root of that account, any other as the root of the default account. The signature's shape
is still checked, only its value cannot be, since the secret is not known.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass

from api.config import DEFAULT_ACCOUNT, PrincipalConfig
from api.sigv4 import Credential
from domain.identity import Identity
from domain.policy import Policy, Principal, parse_policy

_ACCOUNT_KEY = re.compile(r"^\d{12}$")


@dataclass(frozen=True)
class Caller:
    """What authorization needs to know about an access key's principal."""

    principal: Principal
    policies: tuple[Policy, ...]
    via_service: str | None
    mentions_resource_aliases: bool

    @classmethod
    def from_config(cls, config: PrincipalConfig) -> Caller:
        credential = config.credential
        return cls(
            principal=Principal(credential.principal_arn, credential.account_id, config.is_service),
            policies=tuple(parse_policy(text) for text in config.policies),
            via_service=config.via_service,
            mentions_resource_aliases=any("resourcealiases" in t.lower() for t in config.policies),
        )

    def identity(
        self,
        region: str,
        source_ip: str | None,
        *,
        secure_transport: bool = False,
        source_vpce: str | None = None,
    ) -> Identity:
        via = f"{self.via_service}.{region}.amazonaws.com" if self.via_service else None
        return Identity(
            principal=self.principal,
            policies=self.policies,
            via_service=via,
            source_ip=source_ip,
            mentions_resource_aliases=self.mentions_resource_aliases,
            secure_transport=secure_transport,
            source_vpce=source_vpce,
        )


def _root_of(account: str) -> PrincipalConfig:
    arn = f"arn:aws:iam::{account}:root"
    return PrincipalConfig(Credential("", "", arn, account))


class Directory:
    """Access keys to credentials and callers; SIGHUP swaps in a new set at once."""

    def __init__(self, configs: tuple[PrincipalConfig, ...], *, open_credentials: bool = False):
        self.open_credentials = open_credentials
        self._lock = threading.Lock()
        self.reload(configs)

    def reload(self, configs: tuple[PrincipalConfig, ...]) -> None:
        credentials = {p.credential.access_key_id: p.credential for p in configs}
        callers = {p.credential.access_key_id: Caller.from_config(p) for p in configs}
        known = frozenset(p.credential.principal_arn for p in configs)
        with self._lock:  # one assignment each; readers see the old or the new set
            self._credentials, self._callers, self._known = credentials, callers, known

    @property
    def known_principals(self) -> frozenset[str]:
        """Principal ARNs a key policy may name."""
        return self._known

    def credential(self, access_key_id: str) -> Credential | None:
        found = self._credentials.get(access_key_id)
        if found is not None or not self.open_credentials:
            return found
        account = access_key_id if _ACCOUNT_KEY.match(access_key_id) else DEFAULT_ACCOUNT
        root = _root_of(account).credential
        # secret None: the verifier checks the signature's shape, not its value.
        return Credential(access_key_id, None, root.principal_arn, account)

    def caller(self, access_key_id: str) -> Caller:
        found = self._callers.get(access_key_id)
        if found is not None:
            return found
        credential = self.credential(access_key_id)
        if credential is None:  # the verifier refused it before this could happen
            raise LookupError(access_key_id)
        return Caller.from_config(_root_of(credential.account_id))
