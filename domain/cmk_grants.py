"""Grant rules of the Cmk aggregate: CreateGrant, RetireGrant and RevokeGrant."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from domain.errors import InvalidGrantIdError, LimitExceededError
from domain.grants import Grant, GrantLimits, GrantRequest, check_grant_request
from domain.values import RequestContext


class GrantRules:
    """Mixed into Cmk: each command checks the KMS rule, then records GrantCreated,
    GrantRetired or GrantRevoked in the key's own stream."""

    if TYPE_CHECKING:  # provided by Cmk (typed loosely here: this module imports no Cmk)
        arn: str
        account: str
        key_spec: str
        key_usage: str
        grants: dict[str, Grant]
        GrantCreated: type[Any]
        GrantRetired: type[Any]
        GrantRevoked: type[Any]

        def check_usable_for(self, operation: str) -> None: ...

        def trigger_event(self, event_class: type[Any], **kwargs: Any) -> None: ...

    def check_grant(self, request: GrantRequest, limits: GrantLimits) -> str | None:
        """Everything CreateGrant checks about the key (DryRun too). Returns the id of
        the grant that a retry with the same Name and parameters gets back, if any."""
        self.check_usable_for("CreateGrant")  # key-state table: the cryptographic row
        check_grant_request(
            request.operations,
            request.constraints,
            key_spec=self.key_spec,
            key_usage=self.key_usage,
        )
        if request.name is not None:
            for grant in self.grants.values():
                if grant.same_request(request):
                    return grant.grant_id
        if len(self.grants) >= limits.per_key:
            raise LimitExceededError(
                f"The request was rejected because {self.arn} already has {limits.per_key} "
                "grants, the most a KMS key may have."
            )
        grantee = request.grantee_principal
        held = sum(1 for g in self.grants.values() if g.grantee_principal == grantee)
        if held >= limits.per_principal_per_key:
            raise LimitExceededError(
                f"The request was rejected because {grantee} already holds "
                f"{limits.per_principal_per_key} grants on {self.arn}, the most one grantee "
                "principal may hold on a KMS key."
            )
        return None

    def create_grant(
        self,
        request: GrantRequest,
        grant_id: str,
        limits: GrantLimits,
        ctx: RequestContext,
        now: datetime,
    ) -> str:
        """CreateGrant; a retry with the same Name and parameters records nothing and
        returns the existing grant's id (CreateGrant API reference, Name)."""
        existing = self.check_grant(request, limits)
        if existing is not None:
            return existing
        constraints = request.constraints
        self.trigger_event(
            self.GrantCreated,
            timestamp=now,
            request=ctx.as_dict(),
            grant_id=grant_id,
            name=request.name,
            grantee_principal=request.grantee_principal,
            retiring_principal=request.retiring_principal,
            operations=list(dict.fromkeys(request.operations)),
            constraints={k: dict(v) for k, v in constraints.items()} if constraints else None,
            issuing_account=self.account,
        )
        return grant_id

    def grant(self, grant_id: str) -> Grant:
        try:
            return self.grants[grant_id]
        except KeyError:
            raise InvalidGrantIdError(f"Grant ID {grant_id} not found on {self.arn}.") from None

    def retire_grant(self, grant_id: str, ctx: RequestContext, now: datetime) -> None:
        """Allowed in every key state (key-state table); who may retire is decided by the
        caller of this method (``may_retire`` or the key policy)."""
        self.grant(grant_id)
        self.trigger_event(
            self.GrantRetired, timestamp=now, request=ctx.as_dict(), grant_id=grant_id
        )

    def revoke_grant(self, grant_id: str, ctx: RequestContext, now: datetime) -> None:
        self.grant(grant_id)
        self.trigger_event(
            self.GrantRevoked, timestamp=now, request=ctx.as_dict(), grant_id=grant_id
        )
