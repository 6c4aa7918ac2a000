"""UsageLedger: the durable record of every request that changed no aggregate."""

from __future__ import annotations

from collections.abc import Sequence

from eventsourcing.application import Application
from eventsourcing.persistence import IntegrityError, JSONTranscoder

from domain.usage import RequestRecorded
from eventstore.transcodings import BytesAsBase64


class UsageLedger(Application):
    """High volume and append-only, so it lives apart from the CMK streams."""

    name = "UsageLedger"

    def register_transcodings(self, transcoder: JSONTranscoder) -> None:
        super().register_transcodings(transcoder)
        transcoder.register(BytesAsBase64())

    def record_batch(self, records: Sequence[RequestRecorded]) -> list[int | BaseException]:
        """Save many records in one transaction; a duplicate request id (a retried
        record) is saved alone so it cannot fail the others."""
        try:
            recordings = self.save(*records)
        except IntegrityError:
            return [self._record_one(record) for record in records]
        return [recording.notification.id for recording in recordings]

    def _record_one(self, record: RequestRecorded) -> int | BaseException:
        try:
            return self.save(record)[0].notification.id
        except IntegrityError:
            return 0  # already recorded under this request id
        except Exception as error:  # noqa: BLE001 - handed to that request's waiter
            return error
