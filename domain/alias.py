"""The Alias aggregate: a name in (account, region) that points at one key."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate

from domain.errors import AlreadyExistsError
from domain.values import RequestContext, alias_arn


class Alias(Aggregate):
    """Its id is derived from (account, region, name), so two creations of one name
    collide in the event store (optimistic concurrency) and need no lock."""

    TOPIC = "keyledger:Alias"

    class Event(Aggregate.Event):
        TOPIC = "keyledger:Alias.Event"
        request: dict[str, Any] | None

    class Created(Event, Aggregate.Created):
        TOPIC = "keyledger:Alias.Created"
        account: str
        region: str
        name: str
        target_key_id: str

        def apply(self, alias: Alias) -> None:
            alias.account, alias.region, alias.name = self.account, self.region, self.name
            alias.target_key_id = self.target_key_id
            alias.deleted = False
            alias.updated_on = self.timestamp
            alias.recreated_on = None

    class Retargeted(Event):
        """UpdateAlias, or CreateAlias of a name whose earlier alias was deleted."""

        TOPIC = "keyledger:Alias.Retargeted"
        target_key_id: str
        recreated: bool

        def apply(self, alias: Alias) -> None:
            alias.target_key_id = self.target_key_id
            alias.deleted = False
            alias.updated_on = self.timestamp
            if self.recreated:
                alias.recreated_on = self.timestamp

    class Deleted(Event):
        TOPIC = "keyledger:Alias.Deleted"

        def apply(self, alias: Alias) -> None:
            alias.deleted = True
            alias.updated_on = self.timestamp

    if TYPE_CHECKING:  # assigned by the events' apply methods
        account: str
        region: str
        name: str
        target_key_id: str
        deleted: bool
        updated_on: datetime
        recreated_on: datetime | None

    @staticmethod
    def id_for(account: str, region: str, name: str) -> UUID:
        return uuid5(NAMESPACE_URL, f"keyledger:alias:{account}/{region}/{name}")

    @classmethod
    def create(cls, name: str, target_key_id: str, ctx: RequestContext, now: datetime) -> Alias:
        return cls._create(
            cls.Created,
            id=cls.id_for(ctx.account, ctx.region, name),
            timestamp=now,
            request=ctx.as_dict(),
            account=ctx.account,
            region=ctx.region,
            name=name,
            target_key_id=target_key_id,
        )

    @property
    def arn(self) -> str:
        return alias_arn(self.region, self.account, self.name)

    @property
    def creation_date(self) -> datetime:
        return self.recreated_on or self.created_on

    def recreate(self, target_key_id: str, ctx: RequestContext, now: datetime) -> None:
        if not self.deleted:
            raise AlreadyExistsError(f"An alias with the name {self.arn} already exists")
        self.trigger_event(
            self.Retargeted,
            timestamp=now,
            request=ctx.as_dict(),
            target_key_id=target_key_id,
            recreated=True,
        )

    def retarget(self, target_key_id: str, ctx: RequestContext, now: datetime) -> None:
        self.trigger_event(
            self.Retargeted,
            timestamp=now,
            request=ctx.as_dict(),
            target_key_id=target_key_id,
            recreated=False,
        )

    def delete(self, ctx: RequestContext, now: datetime) -> None:
        self.trigger_event(self.Deleted, timestamp=now, request=ctx.as_dict())
