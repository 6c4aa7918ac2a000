"""The Cmk aggregate: one KMS key, its state, its material versions, tags and policy."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any
from uuid import UUID

from eventsourcing.domain import Aggregate

from domain.cmk_grants import GrantRules
from domain.cmk_imports import ImportRules, imported_info
from domain.cmk_lifecycle import AUTOMATIC, Lifecycle
from domain.errors import (
    DisabledError,
    InvalidStateError,
    TagError,
)
from domain.grants import Grant
from domain.key_specs import KEY_OPERATIONS, algorithms, check_operation_fits
from domain.values import (
    AWS_KMS,
    ENCRYPT_DECRYPT,
    EXTERNAL,
    MAX_TAGS_PER_KEY,
    SYMMETRIC_DEFAULT,
    KeyState,
    RequestContext,
    key_arn,
)

# Operations KMS refuses on a key that is not Enabled (key-state table, rows "Encrypt,
# Decrypt, ... GenerateDataKey*, GenerateDataKeyPair*" and "Sign, Verify, GenerateMac,
# VerifyMac, GetPublicKey": https://docs.aws.amazon.com/kms/latest/developerguide/key-state.html;
# DeriveSharedSecret and Encapsulate/Decapsulate list DisabledException in the model).
CRYPTO_OPERATIONS = KEY_OPERATIONS


class Cmk(Lifecycle, GrantRules, ImportRules, Aggregate):
    """A customer master key. Commands check the KMS rules, then record an event."""

    TOPIC = "keyledger:Cmk"

    class Event(Aggregate.Event):
        TOPIC = "keyledger:Cmk.Event"
        request: dict[str, Any] | None  # RequestContext.as_dict(); None for service events

    class Created(Event, Aggregate.Created):
        TOPIC = "keyledger:Cmk.Created"
        account: str
        region: str
        key_spec: str
        key_usage: str
        origin: str
        description: str
        policy: str
        tags: dict[str, str]
        multi_region: bool
        material_id: str
        wrapped_material: bytes
        key_manager: str = "CUSTOMER"  # AWS for AWS managed keys (alias/aws/<service>)

        def apply(self, cmk: Cmk) -> None:
            cmk.key_manager = self.key_manager
            cmk.account, cmk.region = self.account, self.region
            cmk.key_spec, cmk.key_usage, cmk.origin = self.key_spec, self.key_usage, self.origin
            cmk.description, cmk.policy = self.description, self.policy
            cmk.tags = dict(self.tags)
            cmk.multi_region = self.multi_region
            cmk.imports = {}
            if self.origin == EXTERNAL:  # no material until ImportKeyMaterial
                cmk.state = KeyState.PENDING_IMPORT
                cmk.materials = {}
                cmk.current_material_id = None
            else:
                cmk.state = KeyState.ENABLED
                cmk.materials = {self.material_id: self.wrapped_material}
                cmk.current_material_id = self.material_id
            cmk.rotation_period_days = None
            cmk.next_rotation = None
            cmk.rotations = []
            cmk.deletion_date = None
            cmk.pending_window_days = None
            cmk.grants = {}

    class Enabled(Event):
        TOPIC = "keyledger:Cmk.Enabled"

        def apply(self, cmk: Cmk) -> None:
            cmk.state = KeyState.ENABLED

    class Disabled(Event):
        TOPIC = "keyledger:Cmk.Disabled"

        def apply(self, cmk: Cmk) -> None:
            cmk.state = KeyState.DISABLED

    class DescriptionUpdated(Event):
        TOPIC = "keyledger:Cmk.DescriptionUpdated"
        description: str

        def apply(self, cmk: Cmk) -> None:
            cmk.description = self.description

    class TagsChanged(Event):
        TOPIC = "keyledger:Cmk.TagsChanged"
        set_tags: dict[str, str]
        removed_keys: list[str]

        def apply(self, cmk: Cmk) -> None:
            # New containers, never in-place changes: readers may hold the old ones.
            kept = {k: v for k, v in cmk.tags.items() if k not in self.removed_keys}
            cmk.tags = kept | self.set_tags

    class PolicyPut(Event):
        TOPIC = "keyledger:Cmk.PolicyPut"
        policy: str

        def apply(self, cmk: Cmk) -> None:
            cmk.policy = self.policy

    class RotationEnabled(Event):
        TOPIC = "keyledger:Cmk.RotationEnabled"
        period_days: int
        next_rotation: datetime

        def apply(self, cmk: Cmk) -> None:
            cmk.rotation_period_days = self.period_days
            cmk.next_rotation = self.next_rotation

    class RotationDisabled(Event):
        TOPIC = "keyledger:Cmk.RotationDisabled"

        def apply(self, cmk: Cmk) -> None:
            cmk.rotation_period_days = None
            cmk.next_rotation = None

    class Rotated(Event):
        """A new material version becomes current; every older one still decrypts."""

        TOPIC = "keyledger:Cmk.Rotated"
        material_id: str
        wrapped_material: bytes
        rotation_type: str  # AUTOMATIC | ON_DEMAND
        next_rotation: datetime | None

        def apply(self, cmk: Cmk) -> None:
            cmk.materials = {**cmk.materials, self.material_id: self.wrapped_material}
            cmk.current_material_id = self.material_id
            if self.material_id in cmk.imports:  # imported material pending rotation
                info = cmk.imports[self.material_id] | {"pending_rotation": False}
                cmk.imports = {**cmk.imports, self.material_id: info}
            rotation = {"material_id": self.material_id, "date": self.timestamp}
            cmk.rotations = [*cmk.rotations, rotation | {"type": self.rotation_type}]
            if self.rotation_type == AUTOMATIC:
                cmk.next_rotation = self.next_rotation

    class MaterialImported(Event):
        """ImportKeyMaterial: the customer's material, stored only wrapped (its wrapping
        key in the keystore, like generated material)."""

        TOPIC = "keyledger:Cmk.MaterialImported"
        material_id: str
        wrapped_material: bytes
        expiration_model: str
        valid_to: datetime | None
        description: str | None
        pending_rotation: bool

        def apply(self, cmk: Cmk) -> None:
            cmk.materials = {**cmk.materials, self.material_id: self.wrapped_material}
            info = imported_info(
                description=self.description,
                expiration_model=self.expiration_model,
                valid_to=self.valid_to,
                pending=self.pending_rotation,
            )
            cmk.imports = {**cmk.imports, self.material_id: info}
            if cmk.current_material_id is None:
                cmk.current_material_id = self.material_id
            if cmk.state is KeyState.PENDING_IMPORT and self.material_id == cmk.current_material_id:
                cmk.state = KeyState.ENABLED

    class MaterialDeleted(Event):
        """DeleteImportedKeyMaterial; the wrapping keys are destroyed once this is durable."""

        TOPIC = "keyledger:Cmk.MaterialDeleted"
        material_ids: list[str]

        def apply(self, cmk: Cmk) -> None:
            cmk.remove_imported(self.material_ids)

    class MaterialExpired(Event):
        """ValidTo passed (CloudTrail: DeleteExpiredKeyMaterial, an AwsServiceEvent)."""

        TOPIC = "keyledger:Cmk.MaterialExpired"
        material_ids: list[str]

        def apply(self, cmk: Cmk) -> None:
            cmk.remove_imported(self.material_ids)

    class DeletionScheduled(Event):
        TOPIC = "keyledger:Cmk.DeletionScheduled"
        deletion_date: datetime
        pending_window_days: int

        def apply(self, cmk: Cmk) -> None:
            cmk.state = KeyState.PENDING_DELETION
            cmk.deletion_date = self.deletion_date
            cmk.pending_window_days = self.pending_window_days

    class DeletionCancelled(Event):
        TOPIC = "keyledger:Cmk.DeletionCancelled"

        def apply(self, cmk: Cmk) -> None:
            cmk.state = KeyState.DISABLED  # CancelKeyDeletion leaves the key Disabled
            cmk.deletion_date = None
            cmk.pending_window_days = None

    class Deleted(Event):
        """The waiting period is over. The wrapping keys of every material version are
        destroyed after this event is durable, so the material in the log is noise."""

        TOPIC = "keyledger:Cmk.Deleted"

        def apply(self, cmk: Cmk) -> None:
            cmk.state = KeyState.DELETED
            cmk.next_rotation = None
            cmk.grants = {}  # a key's grants are deleted with it

    class GrantCreated(Event):
        TOPIC = "keyledger:Cmk.GrantCreated"
        grant_id: str
        name: str | None
        grantee_principal: str
        retiring_principal: str | None
        operations: list[str]
        constraints: dict[str, dict[str, str]] | None
        issuing_account: str

        def apply(self, cmk: Cmk) -> None:
            grant = Grant(
                grant_id=self.grant_id,
                key_id=str(cmk.id),
                name=self.name,
                grantee_principal=self.grantee_principal,
                retiring_principal=self.retiring_principal,
                operations=tuple(self.operations),
                constraints=self.constraints,
                issuing_account=self.issuing_account,
                created=self.timestamp,
            )
            cmk.grants = {**cmk.grants, self.grant_id: grant}

    class GrantRetired(Event):
        TOPIC = "keyledger:Cmk.GrantRetired"
        grant_id: str

        def apply(self, cmk: Cmk) -> None:
            cmk.grants = {k: v for k, v in cmk.grants.items() if k != self.grant_id}

    class GrantRevoked(Event):
        TOPIC = "keyledger:Cmk.GrantRevoked"
        grant_id: str

        def apply(self, cmk: Cmk) -> None:
            cmk.grants = {k: v for k, v in cmk.grants.items() if k != self.grant_id}

    if TYPE_CHECKING:  # assigned by Created.apply; not dataclass fields of the aggregate
        account: str
        region: str
        key_spec: str
        key_usage: str
        origin: str
        description: str
        policy: str
        tags: dict[str, str]
        multi_region: bool
        key_manager: str
        state: KeyState
        materials: dict[str, bytes]
        current_material_id: str
        rotation_period_days: int | None
        next_rotation: datetime | None
        rotations: list[dict[str, Any]]
        deletion_date: datetime | None
        pending_window_days: int | None
        grants: dict[str, Grant]
        imports: dict[str, dict[str, Any]]

    @classmethod
    def create(
        cls,
        *,
        key_id: UUID,
        ctx: RequestContext,
        now: datetime,
        description: str,
        policy: str,
        tags: dict[str, str],
        material_id: str,
        wrapped_material: bytes,
        key_manager: str = "CUSTOMER",
        key_spec: str = SYMMETRIC_DEFAULT,
        key_usage: str = ENCRYPT_DECRYPT,
        origin: str = AWS_KMS,
    ) -> Cmk:
        """CreateKey for an AWS_KMS key of any spec (checked by the caller against the
        catalogue); material is decided and wrapped by the caller. An EXTERNAL key has
        none yet (empty material id and blob) and starts PendingImport."""
        check_tags_allowed(list(tags))
        if len(tags) > MAX_TAGS_PER_KEY:
            raise TagError("Too many tags")
        return cls._create(
            cls.Created,
            id=key_id,
            timestamp=now,
            request=ctx.as_dict(),
            account=ctx.account,
            region=ctx.region,
            key_spec=key_spec,
            key_usage=key_usage,
            origin=origin,
            description=description,
            policy=policy,
            tags=tags,
            multi_region=False,
            material_id=material_id,
            wrapped_material=wrapped_material,
            key_manager=key_manager,
        )

    @property
    def arn(self) -> str:
        return key_arn(self.region, self.account, str(self.id))

    # -- rules ---------------------------------------------------------------------

    def check_usable_for(self, operation: str) -> None:
        """KMS key-state table: cryptographic operations need an Enabled key, and a
        key serves only the operations of its key usage."""
        if self.state is KeyState.DISABLED:
            raise DisabledError(f"{self.arn} is disabled.")
        self.check_not_pending()
        if operation in CRYPTO_OPERATIONS:
            check_operation_fits(self.arn, self.key_spec, self.key_usage, operation)

    def check_not_pending(self) -> None:
        self.check_not_pending_deletion()
        if self.state is KeyState.PENDING_IMPORT:
            raise InvalidStateError(f"{self.arn} is pending import.")

    def check_not_pending_deletion(self) -> None:
        """TagResource, UntagResource, UpdateKeyDescription and ScheduleKeyDeletion work
        on a key pending import (key-state table)."""
        if self.state is KeyState.PENDING_DELETION:
            raise InvalidStateError(f"{self.arn} is pending deletion.")

    def remove_imported(self, material_ids: list[str]) -> None:
        """Apply body of MaterialDeleted and MaterialExpired: new containers only."""
        imports = dict(self.imports)
        for material_id in material_ids:
            imports[material_id] = imports[material_id] | {
                "imported": False,
                "pending_rotation": False,
            }
        self.imports = imports
        if self.current_material_id in material_ids:
            self.state = KeyState.PENDING_IMPORT

    # -- commands ------------------------------------------------------------------

    def enable(self, ctx: RequestContext, now: datetime) -> None:
        self.check_not_pending()
        if self.state is not KeyState.ENABLED:
            self.trigger_event(self.Enabled, timestamp=now, request=ctx.as_dict())

    def disable(self, ctx: RequestContext, now: datetime) -> None:
        self.check_not_pending()
        if self.state is not KeyState.DISABLED:
            self.trigger_event(self.Disabled, timestamp=now, request=ctx.as_dict())

    def update_description(self, description: str, ctx: RequestContext, now: datetime) -> None:
        self.check_not_pending_deletion()
        self.trigger_event(
            self.DescriptionUpdated, timestamp=now, request=ctx.as_dict(), description=description
        )

    def put_policy(self, policy: str, ctx: RequestContext, now: datetime) -> None:
        """PutKeyPolicy; the document was validated by the caller (grammar, principals,
        lockout). Allowed in every key state but Deleted (key-state table)."""
        self.trigger_event(self.PolicyPut, timestamp=now, request=ctx.as_dict(), policy=policy)

    def tag(self, tags: dict[str, str], ctx: RequestContext, now: datetime) -> None:
        """TagResource: new values replace old ones; 50 tags per key at most."""
        self.check_not_pending_deletion()
        check_tags_allowed(list(tags))
        if len(set(self.tags) | set(tags)) > MAX_TAGS_PER_KEY:
            raise TagError("Too many tags")
        self.trigger_event(
            self.TagsChanged, timestamp=now, request=ctx.as_dict(), set_tags=tags, removed_keys=[]
        )

    def untag(self, tag_keys: list[str], ctx: RequestContext, now: datetime) -> None:
        self.check_not_pending_deletion()
        if any(is_reserved_tag_key(key) for key in tag_keys):
            raise TagError("Tags beginning with aws: are reserved")
        self.trigger_event(
            self.TagsChanged,
            timestamp=now,
            request=ctx.as_dict(),
            set_tags={},
            removed_keys=list(dict.fromkeys(tag_keys)),
        )

    # -- queries -------------------------------------------------------------------

    def metadata(self) -> dict[str, Any]:
        """DescribeKey's KeyMetadata, with AWS's member names."""
        return {
            "AWSAccountId": self.account,
            "KeyId": str(self.id),
            "Arn": self.arn,
            "CreationDate": self.created_on,
            "Enabled": self.state is KeyState.ENABLED,
            "Description": self.description,
            "KeyUsage": self.key_usage,
            "KeyState": self.state.value,
            "Origin": self.origin,
            "KeyManager": self.key_manager,
            "CustomerMasterKeySpec": self.key_spec,
            "KeySpec": self.key_spec,
            **algorithms(self.key_spec, self.key_usage),
            "MultiRegion": self.multi_region,
            "CurrentKeyMaterialId": self.current_material_id,
            **self.import_metadata(),
            "DeletionDate": self.deletion_date,
            "PendingDeletionWindowInDays": self.pending_window_days,
        }

    def rotation_status(self) -> dict[str, Any]:
        """GetKeyRotationStatus; rotation is instantaneous here, so no on-demand start date."""
        return {
            "KeyId": self.arn,
            "KeyRotationEnabled": self.rotation_period_days is not None,
            "RotationPeriodInDays": self.rotation_period_days,
            "NextRotationDate": self.next_rotation,
        }


def check_tags_allowed(tag_keys: list[str]) -> None:
    """TagResource rules (AWS texts): reserved prefix and duplicates in one request."""
    if any(is_reserved_tag_key(key) for key in tag_keys):
        raise TagError("Tags beginning with aws: are reserved")
    if len(set(tag_keys)) != len(tag_keys):
        raise TagError("Duplicate tag keys")


def is_reserved_tag_key(key: str) -> bool:
    """The aws: prefix is reserved in any letter case (tagging-keys.html: "AWS:" and
    "Aws:" are refused like "aws:", as recorded from AWS)."""
    return key[:4].lower() == "aws:"
