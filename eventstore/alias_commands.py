"""Alias commands of the KeyLedger: CreateAlias, UpdateAlias, DeleteAlias, managed keys."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING
from uuid import UUID, uuid4

from domain import managed_keys
from domain.alias import Alias
from domain.authorization import authorize_identity
from domain.cmk import Cmk
from domain.errors import InvalidStateError, LimitExceededError, NotFoundError
from domain.key_specs import check_same_kind
from domain.quotas import ALIASES
from domain.values import (
    MAX_ALIASES_PER_KEY,
    KeyState,
    RequestContext,
    alias_arn,
    check_alias_name,
    key_arn,
)
from eventstore.unit_of_work import UnitOfWork

if TYPE_CHECKING:
    from eventsourcing.domain import Aggregate


class AliasCommands:
    """Mixed into KeyLedger; an alias operation needs permission on the alias (IAM) and on
    the key (its key policy), as KMS requires."""

    if TYPE_CHECKING:  # provided by KeyLedger
        aliases_of: Callable[[str], list[str]]

        def resolve(
            self,
            get: Callable[[UUID], Aggregate | None],
            ctx: RequestContext,
            key_id: str,
            operation: str,
            *,
            allow_alias: bool = True,
        ) -> Cmk: ...

        def authorize(
            self, cmk: Cmk, ctx: RequestContext, operation: str, request_alias: str | None = None
        ) -> None: ...

        def take_slot(self, uow: UnitOfWork, account: str, region: str, resource: str) -> None: ...

        def free_slot(self, uow: UnitOfWork, account: str, region: str, resource: str) -> None: ...

        def _new_material(self, uow: UnitOfWork, key_id: UUID) -> tuple[str, bytes]: ...

    def ensure_managed_key(self, uow: UnitOfWork, ctx: RequestContext, alias_name: str) -> bool:
        """First use of a predefined alias/aws/<service> creates its AWS managed key."""
        service = managed_keys.service_of(alias_name)
        alias = uow.get(Alias.id_for(ctx.account, ctx.region, alias_name))
        if service is None or (isinstance(alias, Alias) and not alias.deleted):
            return False
        key_id = uuid4()
        cmk = Cmk.create(
            key_id=key_id,
            ctx=ctx,
            now=uow.now,
            description=managed_keys.description(service),
            policy=managed_keys.policy(ctx.account, ctx.region, service),
            tags={},
            material_id=(material := self._new_material(uow, key_id))[0],
            wrapped_material=material[1],
            key_manager="AWS",
        )
        cmk.enable_rotation(managed_keys.ROTATION_DAYS, ctx, uow.now)
        uow.add(cmk)
        if isinstance(alias, Alias):
            alias.recreate(str(key_id), ctx, uow.now)
        else:
            uow.add(Alias.create(alias_name, str(key_id), ctx, uow.now))
        return True

    def create_alias(
        self, uow: UnitOfWork, ctx: RequestContext, alias_name: str, target_key_id: str
    ) -> str:
        check_alias_name(alias_name, creating=True)
        authorize_identity(
            ctx, "CreateAlias", alias_arn(ctx.region, ctx.account, alias_name), uow.now
        )
        cmk = self._alias_target(uow, ctx, target_key_id, "CreateAlias")
        self._check_alias_quota(uow, cmk, alias_name)
        existing = uow.get(Alias.id_for(ctx.account, ctx.region, alias_name))
        if not isinstance(existing, Alias) or existing.deleted:
            self.take_slot(uow, ctx.account, ctx.region, ALIASES)
        if isinstance(existing, Alias):
            existing.recreate(str(cmk.id), ctx, uow.now)
        else:
            uow.add(Alias.create(alias_name, str(cmk.id), ctx, uow.now))
        return cmk.arn

    def update_alias(
        self, uow: UnitOfWork, ctx: RequestContext, alias_name: str, target_key_id: str
    ) -> str:
        check_alias_name(alias_name, creating=True)
        alias = self._existing_alias(uow, ctx, alias_name)
        authorize_identity(ctx, "UpdateAlias", alias.arn, uow.now)
        current = self._current_target(uow, ctx, alias, "UpdateAlias")
        cmk = self._alias_target(uow, ctx, target_key_id, "UpdateAlias")
        if current is not None:
            check_same_kind(alias.arn, current, cmk)
        self._check_alias_quota(uow, cmk, alias_name)
        alias.retarget(str(cmk.id), ctx, uow.now)
        return cmk.arn

    def delete_alias(self, uow: UnitOfWork, ctx: RequestContext, alias_name: str) -> str:
        check_alias_name(alias_name, creating=False)
        alias = self._existing_alias(uow, ctx, alias_name)
        authorize_identity(ctx, "DeleteAlias", alias.arn, uow.now)
        self._current_target(uow, ctx, alias, "DeleteAlias")
        alias.delete(ctx, uow.now)
        self.free_slot(uow, ctx.account, ctx.region, ALIASES)
        return key_arn(ctx.region, ctx.account, alias.target_key_id)

    def _existing_alias(self, uow: UnitOfWork, ctx: RequestContext, alias_name: str) -> Alias:
        alias = uow.get(Alias.id_for(ctx.account, ctx.region, alias_name))
        if not isinstance(alias, Alias) or alias.deleted:
            arn = f"arn:aws:kms:{ctx.region}:{ctx.account}:{alias_name}"
            raise NotFoundError(f"Alias {arn} is not found.")
        return alias

    def _current_target(
        self, uow: UnitOfWork, ctx: RequestContext, alias: Alias, operation: str
    ) -> Cmk | None:
        """An alias operation needs permission on the key the alias points at now."""
        cmk = uow.get(UUID(alias.target_key_id))
        if isinstance(cmk, Cmk) and cmk.state is not KeyState.DELETED:
            self.authorize(cmk, ctx, operation)
            return cmk
        return None

    def _check_alias_quota(self, uow: UnitOfWork, cmk: Cmk, alias_name: str) -> None:
        """Quota "Aliases per KMS key: 50" (KMS resource quotas): the view's count after
        catching up, corrected by the aliases this batch has changed but not saved."""
        names = set(self.aliases_of(str(cmk.id)))
        for alias in uow.loaded():
            if isinstance(alias, Alias):
                pointing = not alias.deleted and alias.target_key_id == str(cmk.id)
                (names.add if pointing else names.discard)(alias.name)
        if len(names | {alias_name}) > MAX_ALIASES_PER_KEY:
            raise LimitExceededError(
                f"The request was rejected because {cmk.arn} already has "
                f"{MAX_ALIASES_PER_KEY} aliases, the quota of aliases per KMS key."
            )

    def _alias_target(
        self, uow: UnitOfWork, ctx: RequestContext, target_key_id: str, operation: str
    ) -> Cmk:
        """Aliases point at customer keys by id or key ARN, never at another alias;
        a key pending deletion cannot become a target (key-state table)."""
        cmk = self.resolve(uow.get, ctx, target_key_id, operation, allow_alias=False)
        if cmk.state is KeyState.PENDING_DELETION:
            raise InvalidStateError(f"{cmk.arn} is pending deletion.")
        return cmk
