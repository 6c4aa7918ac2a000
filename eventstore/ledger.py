"""KeyLedger: the event-sourced write model of CMKs and aliases, one method per KMS command."""

from __future__ import annotations

import logging
import os
import random
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar
from uuid import UUID, uuid4

from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.domain import Aggregate
from eventsourcing.persistence import IntegrityError, JSONTranscoder

from domain.alias import Alias
from domain.authorization import authorize_identity, authorize_key, mentions_resource_aliases
from domain.cmk import Cmk
from domain.cmk_lifecycle import AUTOMATIC, ON_DEMAND
from domain.crypto import material_aad, wrap
from domain.errors import (
    IncorrectKeyError,
    InternalError,
    InvalidCiphertextError,
    InvalidStateError,
    KmsError,
    NotFoundError,
)
from domain.grant_tokens import GrantTokens
from domain.grants import GRANT_OPERATIONS, Grant
from domain.quotas import ALIASES, CUSTOMER_MANAGED_KEYS, Limits
from domain.values import (
    AWS_KMS,
    ENCRYPT_DECRYPT,
    EXTERNAL,
    RESERVED_ALIAS_PREFIX,
    SYMMETRIC_DEFAULT,
    KeyState,
    RequestContext,
    default_key_policy,
    is_multi_region_id,
    key_arn,
    parse_key_ref,
)
from eventstore.alias_commands import AliasCommands
from eventstore.clock import Clock
from eventstore.grant_commands import GrantCommands
from eventstore.keystore import Keystore
from eventstore.read_cache import NeedsStore, ReadCache, inline
from eventstore.resource_slots import ResourceSlots
from eventstore.transcodings import BytesAsBase64
from eventstore.unit_of_work import Done, Job, UnitOfWork

log = logging.getLogger("keyledger.ledger")
T = TypeVar("T")
MATERIAL_PURPOSE = b"key-material"


class KeyLedger(AliasCommands, GrantCommands, ResourceSlots, Application):
    """CMKs and aliases. Commands run on the writer thread through ``run_batch``."""

    name = "KeyLedger"

    def __init__(
        self,
        env: dict[str, str],
        keystore: Keystore,
        clock: Clock,
        tokens: GrantTokens,
        limits: Limits | None = None,
    ) -> None:
        self.keystore = keystore
        self.clock = clock
        self.tokens = tokens
        self.limits = limits or Limits()
        self.grant_limits = self.limits.grants
        self.count_of: Callable[[str, str, str], int] = lambda _account, _region, _what: 0
        # Request quotas of cryptographic operations: charged once the key (its type picks
        # the quota) is known and the caller authorized.
        self.throttle: Callable[[Cmk, RequestContext], None] = lambda _cmk, _ctx: None
        # Alias names of a key, for kms:ResourceAliases; eventually consistent, as in AWS.
        self.aliases_of: Callable[[str], list[str]] = lambda _key_id: []
        # A key's grants as the grants view has them: eventually consistent, as in AWS.
        self.grants_of: Callable[[str], Iterable[Grant]] = lambda _key_id: ()
        self.last_saved_id = 0
        self.read_cache: ReadCache | None = None  # set by the composition root
        self.listeners: list[Callable[[int], None]] = []
        super().__init__(env)

    def register_transcodings(self, transcoder: JSONTranscoder) -> None:
        super().register_transcodings(transcoder)
        transcoder.register(BytesAsBase64())

    # -- batches -------------------------------------------------------------------

    def run_batch(self, jobs: Sequence[Job]) -> list[Done | BaseException]:
        """Run jobs in one unit of work and save once; fall back to one by one when a
        job misbehaves or the save conflicts with another process."""
        uow = UnitOfWork(self)
        outcomes: list[Done | BaseException] = []
        for job in jobs:
            before, mark = uow.pending_count(), len(uow.new_materials)
            try:
                value = job(uow)
            except Exception as error:  # noqa: BLE001 - handed to that job's waiter
                uow.forget_materials_since(mark)
                if uow.pending_count() != before or not isinstance(error, KmsError):
                    uow.forget_materials_since(0)
                    return [self.run_alone(job) for job in jobs]
                outcomes.append(error)
            else:
                outcomes.append(Done(value, uow.pending_count() != before))
        try:
            self._save_all(uow)
        except IntegrityError:
            uow.forget_materials_since(0)
            return [self.run_alone(job) for job in jobs]
        return outcomes

    def run_alone(self, job: Job, attempts: int = 10) -> Done | BaseException:
        for attempt in range(attempts):
            uow = UnitOfWork(self)
            try:
                value = job(uow)
                recorded = uow.pending_count() > 0
                self._save_all(uow)
            except IntegrityError:
                uow.forget_materials_since(0)
                # Another process saved the same aggregate (an account's resource counter
                # takes every CreateKey): step aside for a jittered moment so that two
                # writers retrying in step do not collide again and again.
                time.sleep(random.uniform(0, 0.001 * 2 ** min(attempt, 5)))
                continue
            except Exception as error:  # noqa: BLE001 - handed to the waiter
                uow.forget_materials_since(0)
                return error
            return Done(value, recorded)
        return InternalError("The request conflicted with concurrent changes; retry it.")

    def run(self, job: Job) -> Any:
        """Run one command now (tests and admin tools); raises its KMS error."""
        outcome = self.run_alone(job)
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome.value

    def _save_all(self, uow: UnitOfWork) -> None:
        aggregates = uow.aggregates()
        if not aggregates:
            uow.forget_materials_since(0)  # nothing refers to them
            return
        # Wrapping keys are durable before any event that refers to them.
        self.keystore.store_staged(uow.new_materials)
        recordings = self.save(*aggregates)
        if recordings:
            self.last_saved_id = max(self.last_saved_id, recordings[-1].notification.id)
            for listener in self.listeners:
                listener(self.last_saved_id)

    def load(self, aggregate_id: UUID) -> Aggregate | None:
        """For commands: a private copy the command may change."""
        try:
            return self.repository.get(aggregate_id)
        except AggregateNotFoundError:
            return None

    def peek(self, aggregate_id: UUID) -> Aggregate | None:
        """For reads: the cached aggregate itself, not a copy. Event apply methods
        replace containers instead of changing them, so a reader's view stays whole.

        On the event loop (``inline``) only a kept, current aggregate is returned;
        anything else raises NeedsStore and the read is redone on a reader thread.
        Only symmetric keys are used inline: their operations cost microseconds, less
        than the hop; RSA and friends keep the reader pool."""
        cache = self.read_cache
        if cache is None:
            return self._get_for_read(aggregate_id)
        if inline():
            if not cache.current_this_tick():
                raise NeedsStore
            try:
                kept = cache.get(aggregate_id)
            except KeyError:
                raise NeedsStore from None
            if isinstance(kept, Cmk) and kept.key_spec != SYMMETRIC_DEFAULT:
                raise NeedsStore
            return kept
        cache.sync()
        try:
            return cache.get(aggregate_id)
        except KeyError:
            epoch = cache.epoch()
        aggregate = self._get_for_read(aggregate_id)
        if aggregate is not None:
            if isinstance(aggregate, Cmk):
                self.keystore.warm(aggregate.materials)
            cache.keep(aggregate_id, aggregate, epoch)
        return aggregate

    def _get_for_read(self, aggregate_id: UUID) -> Aggregate | None:
        try:
            return self.repository.get(aggregate_id, deepcopy_from_cache=False)
        except AggregateNotFoundError:
            return None

    # -- resolving KeyId parameters ------------------------------------------------

    def resolve(
        self,
        get: Callable[[UUID], Aggregate | None],
        ctx: RequestContext,
        key_id: str,
        operation: str,
        *,
        allow_alias: bool = True,
    ) -> Cmk:
        """A KeyId (id, key ARN, alias name, alias ARN) to the key the caller may use for
        ``operation``, with AWS's errors."""
        cmk, request_alias = self.locate(get, ctx, key_id, allow_alias=allow_alias)
        self.authorize(cmk, ctx, operation, request_alias)
        return cmk

    def locate(
        self,
        get: Callable[[UUID], Aggregate | None],
        ctx: RequestContext,
        key_id: str,
        *,
        allow_alias: bool = True,
    ) -> tuple[Cmk, str | None]:
        """The key a KeyId names, and the alias it was named by (kms:RequestAlias);
        not authorized yet."""
        ref = parse_key_ref(key_id, ctx, allow_alias=allow_alias)
        if ref.alias_name is not None:
            alias = get(Alias.id_for(ref.account, ref.region, ref.alias_name))
            if not isinstance(alias, Alias) or alias.deleted:
                raise NotFoundError(f"Alias {ref.arn} is not found.")
            uuid = UUID(alias.target_key_id)
        elif is_multi_region_id(ref.key_id or ""):
            raise NotFoundError(f"Key '{ref.arn}' does not exist")  # no multi-Region keys yet
        else:
            uuid = UUID(ref.key_id)
        cmk = get(uuid)
        if not isinstance(cmk, Cmk) or (cmk.account, cmk.region) != (ref.account, ref.region):
            missing = key_arn(ref.region, ref.account, str(uuid))
            raise NotFoundError(f"Key '{missing}' does not exist")
        if cmk.state is KeyState.DELETED:
            raise NotFoundError(f"Key '{cmk.arn}' does not exist")
        return cmk, ref.alias_name

    def authorize(
        self,
        cmk: Cmk,
        ctx: RequestContext,
        operation: str,
        request_alias: str | None = None,
        *,
        grant_filter: Callable[[Grant], bool] | None = None,
    ) -> None:
        if mentions_resource_aliases(cmk, ctx):
            if inline():
                raise NeedsStore  # the keys view is read on a reader thread
            aliases = self.aliases_of(str(cmk.id))
        else:
            aliases = []

        def grants() -> list[Grant]:
            """The grants view's grants of the key, and at once those the request's grant
            tokens name, checked against the write model: a token of a retired or revoked
            grant brings nothing back (grant-manage.html#using-grant-token)."""
            if inline():
                raise NeedsStore  # the grants view may first catch up: a reader thread
            found = [
                cmk.grants[ref.grant_id]
                for ref in ctx.grant_tokens
                if ref.key_id == cmk.id and ref.grant_id in cmk.grants
            ]
            found += self.grants_of(str(cmk.id))
            return [g for g in found if grant_filter(g)] if grant_filter else found

        authorize_key(
            cmk,
            ctx,
            operation,
            self.clock(),
            aliases=aliases,
            request_alias=request_alias,
            grants=grants if operation in GRANT_OPERATIONS else None,
        )
        self.throttle(cmk, ctx)

    def key_for_ciphertext(
        self, ctx: RequestContext, key_id: UUID, operation: str, named: str | None = None
    ) -> Cmk:
        """The key a ciphertext header names. A blob naming no key of this region is
        not a keyledger ciphertext here: InvalidCiphertextException, not NotFound. A
        KeyId given with the blob (``named``) must name that same key; the key is then
        authorized once, with the alias it was named by."""
        cmk = self.peek(key_id)
        if not isinstance(cmk, Cmk) or cmk.region != ctx.region:
            raise InvalidCiphertextError
        if cmk.state is KeyState.DELETED:
            raise NotFoundError(f"Key '{cmk.arn}' does not exist")
        request_alias = None
        if named is not None:
            other, request_alias = self.locate(self.peek, ctx, named)
            if other.id != cmk.id:
                raise IncorrectKeyError
        self.authorize(cmk, ctx, operation, request_alias)
        return cmk

    def read_key(
        self, ctx: RequestContext, key_id: str, operation: str, *, allow_alias: bool = True
    ) -> Cmk:
        return self.resolve(self.peek, ctx, key_id, operation, allow_alias=allow_alias)

    # -- commands (run with a UnitOfWork on the writer thread) ---------------------

    def _target(self, uow: UnitOfWork, ctx: RequestContext, key_id: str, operation: str) -> Cmk:
        """Key management operations name their key by id or key ARN, never by alias."""
        return self.resolve(uow.get, ctx, key_id, operation, allow_alias=False)

    def _new_material(
        self,
        uow: UnitOfWork,
        key_id: UUID,
        secret: bytes | None = None,
        material_id: str | None = None,
    ) -> tuple[str, bytes]:
        """A material version: its wrapping key is durable in the keystore before any
        event refers to it; the material itself leaves this method only wrapped. A
        symmetric key's 256-bit material is made here; other material (``secret``) was
        made before the command, off this thread (RSA generation takes up to a second).
        Imported material comes with its own id (the same material, the same id)."""
        material_id = material_id or os.urandom(32).hex()
        wrapping_key = self.keystore.new_wrapping_key(key_id, material_id)
        uow.new_materials.append(material_id)
        aad = material_aad(MATERIAL_PURPOSE, key_id, material_id)
        return material_id, wrap(wrapping_key, secret or os.urandom(32), aad)

    def create_key(
        self,
        uow: UnitOfWork,
        ctx: RequestContext,
        description: str,
        policy: str | None,
        tags: dict[str, str],
        *,
        key_spec: str = SYMMETRIC_DEFAULT,
        key_usage: str = ENCRYPT_DECRYPT,
        material: bytes | None = None,
        origin: str = AWS_KMS,
    ) -> dict[str, Any]:
        """``material`` is required for every spec but SYMMETRIC_DEFAULT; an EXTERNAL
        key has none until ImportKeyMaterial."""
        authorize_identity(ctx, "CreateKey", "*", uow.now)
        self.take_slot(uow, ctx.account, ctx.region, CUSTOMER_MANAGED_KEYS)
        key_id = uuid4()
        material_id, wrapped = "", b""
        if origin != EXTERNAL:
            material_id, wrapped = self._new_material(uow, key_id, material)
        cmk = Cmk.create(
            key_id=key_id,
            ctx=ctx,
            now=uow.now,
            description=description,
            policy=policy or default_key_policy(ctx.account),
            tags=tags,
            material_id=material_id,
            wrapped_material=wrapped,
            key_spec=key_spec,
            key_usage=key_usage,
            origin=origin,
        )
        uow.add(cmk)
        return cmk.metadata()

    def enable_key(self, uow: UnitOfWork, ctx: RequestContext, key_id: str) -> str:
        cmk = self._target(uow, ctx, key_id, "EnableKey")
        cmk.enable(ctx, uow.now)
        return cmk.arn

    def disable_key(self, uow: UnitOfWork, ctx: RequestContext, key_id: str) -> str:
        cmk = self._target(uow, ctx, key_id, "DisableKey")
        cmk.disable(ctx, uow.now)
        return cmk.arn

    def update_key_description(
        self, uow: UnitOfWork, ctx: RequestContext, key_id: str, description: str
    ) -> str:
        cmk = self._target(uow, ctx, key_id, "UpdateKeyDescription")
        cmk.update_description(description, ctx, uow.now)
        return cmk.arn

    def tag_resource(
        self, uow: UnitOfWork, ctx: RequestContext, key_id: str, tags: dict[str, str]
    ) -> str:
        cmk = self._target(uow, ctx, key_id, "TagResource")
        cmk.tag(tags, ctx, uow.now)
        return cmk.arn

    def untag_resource(
        self, uow: UnitOfWork, ctx: RequestContext, key_id: str, tag_keys: list[str]
    ) -> str:
        cmk = self._target(uow, ctx, key_id, "UntagResource")
        cmk.untag(tag_keys, ctx, uow.now)
        return cmk.arn

    def put_key_policy(self, uow: UnitOfWork, ctx: RequestContext, key_id: str, policy: str) -> str:
        """The document was validated (grammar, principals, lockout) by the caller."""
        cmk = self._target(uow, ctx, key_id, "PutKeyPolicy")
        cmk.put_policy(policy, ctx, uow.now)
        return cmk.arn

    def enable_key_rotation(
        self, uow: UnitOfWork, ctx: RequestContext, key_id: str, period_days: int
    ) -> str:
        cmk = self._target(uow, ctx, key_id, "EnableKeyRotation")
        cmk.enable_rotation(period_days, ctx, uow.now)
        return cmk.arn

    def disable_key_rotation(self, uow: UnitOfWork, ctx: RequestContext, key_id: str) -> str:
        cmk = self._target(uow, ctx, key_id, "DisableKeyRotation")
        cmk.disable_rotation(ctx, uow.now)
        return cmk.arn

    def rotate_key_on_demand(self, uow: UnitOfWork, ctx: RequestContext, key_id: str) -> str:
        cmk = self._target(uow, ctx, key_id, "RotateKeyOnDemand")
        cmk.check_on_demand_rotation()  # before any material is made for it
        pending = cmk.pending_rotation_material()
        if pending is not None:  # imported NEW_KEY_MATERIAL becomes current
            cmk.rotate(ON_DEMAND, pending, cmk.materials[pending], ctx, uow.now)
        else:
            cmk.rotate(ON_DEMAND, *self._new_material(uow, cmk.id), ctx, uow.now)
        return cmk.arn

    # -- imported key material -----------------------------------------------------

    def import_key_material(
        self,
        uow: UnitOfWork,
        ctx: RequestContext,
        key_id: str,
        *,
        material: bytes,
        material_id: str,
        options: dict[str, Any],
    ) -> tuple[str, str]:
        """ImportKeyMaterial with material already unwrapped and checked off this thread.
        ``options``: import_type, key_material_id, expiration_model, valid_to,
        description. Returns the key ARN and the KeyMaterialId."""
        cmk = self._target(uow, ctx, key_id, "ImportKeyMaterial")
        cmk.check_import(material_id, options["import_type"], options["key_material_id"])
        if cmk.material_present(material_id):  # a re-import: same material, same blob
            wrapped = cmk.materials[material_id]
        elif self.keystore.key_of(material_id) is not None:
            # Deleted, but its wrapping key is not destroyed yet (the deleting request is
            # still finishing, or a crash left it to the repair pass): retry shortly.
            raise InvalidStateError(
                f"{cmk.arn} key material {material_id} is being deleted; retry the import."
            )
        else:
            _, wrapped = self._new_material(uow, cmk.id, material, material_id)
        cmk.import_material(
            material_id=material_id, wrapped_material=wrapped, ctx=ctx, now=uow.now, **options
        )
        return cmk.arn, material_id

    def delete_imported_key_material(
        self, uow: UnitOfWork, ctx: RequestContext, key_id: str, material_id: str | None
    ) -> tuple[str, list[str]]:
        """Returns the key ARN and the material ids whose wrapping keys to destroy once
        the event is durable (the caller does, then)."""
        cmk = self._target(uow, ctx, key_id, "DeleteImportedKeyMaterial")
        return cmk.arn, cmk.delete_imported(material_id, ctx, uow.now)

    def schedule_key_deletion(
        self, uow: UnitOfWork, ctx: RequestContext, key_id: str, window_days: int
    ) -> dict[str, Any]:
        cmk = self._target(uow, ctx, key_id, "ScheduleKeyDeletion")
        cmk.schedule_deletion(window_days, ctx, uow.now)
        return {
            "KeyId": cmk.arn,
            "DeletionDate": cmk.deletion_date,
            "KeyState": cmk.state.value,
            "PendingWindowInDays": window_days,
        }

    def cancel_key_deletion(self, uow: UnitOfWork, ctx: RequestContext, key_id: str) -> str:
        cmk = self._target(uow, ctx, key_id, "CancelKeyDeletion")
        cmk.cancel_deletion(ctx, uow.now)
        return cmk.arn

    # -- service commands (the scheduler; recorded as AwsServiceEvent) -------------

    def rotate_if_due(self, uow: UnitOfWork, key_id: UUID) -> bool:
        """Automatic rotation. Re-checked against the write model, so a rotation another
        process already made (or a key disabled since) is not rotated twice."""
        cmk = uow.get(key_id)
        if not isinstance(cmk, Cmk) or not cmk.rotation_due(uow.now):
            return False
        ctx = RequestContext.service(cmk.account, cmk.region, str(uuid4()), "RotateKey")
        cmk.rotate(AUTOMATIC, *self._new_material(uow, cmk.id), ctx, uow.now)
        return True

    def expire_if_due(self, uow: UnitOfWork, key_id: UUID) -> list[str]:
        """Imported material past its ValidTo: recorded as CloudTrail records it,
        DeleteExpiredKeyMaterial by AWS itself. Returns the material ids to destroy."""
        cmk = uow.get(key_id)
        if not isinstance(cmk, Cmk) or cmk.state is KeyState.DELETED:
            return []
        ctx = RequestContext.service(
            cmk.account, cmk.region, str(uuid4()), "DeleteExpiredKeyMaterial"
        )
        return cmk.expire(ctx, uow.now)

    def shred_removed_materials(self, uow: UnitOfWork, material_ids: list[str]) -> int:
        """Repair: destroy the wrapping keys of imported material that is not present in
        its key any more. On the writer thread, so no import of it can interleave."""
        gone = []
        for material_id in material_ids:
            key_id = self.keystore.key_of(material_id)
            cmk = uow.get(UUID(key_id)) if key_id else None
            if isinstance(cmk, Cmk) and not cmk.material_present(material_id):
                gone.append(material_id)
        return self.keystore.destroy_materials(gone) if gone else 0

    def delete_if_due(self, uow: UnitOfWork, key_id: UUID, alias_ids: list[UUID]) -> bool:
        """End of the waiting period: the key and every alias still pointing at it go."""
        cmk = uow.get(key_id)
        if not isinstance(cmk, Cmk) or not cmk.deletion_due(uow.now):
            return False
        ctx = RequestContext.service(cmk.account, cmk.region, str(uuid4()), "DeleteKey")
        cmk.delete(ctx, uow.now)
        if cmk.key_manager == "CUSTOMER":
            self.free_slot(uow, cmk.account, cmk.region, CUSTOMER_MANAGED_KEYS)
        for alias_id in alias_ids:
            alias = uow.get(alias_id)
            if (
                isinstance(alias, Alias)
                and not alias.deleted
                and alias.target_key_id == str(key_id)
            ):
                alias.delete(ctx, uow.now)
                if not alias.name.startswith(RESERVED_ALIAS_PREFIX):
                    self.free_slot(uow, cmk.account, cmk.region, ALIASES)
        return True
