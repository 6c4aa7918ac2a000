"""Limit/Marker pagination shared by the List operations."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from domain.errors import InvalidMarkerError

T = TypeVar("T")
_MARKER_PREFIX = "kl1:"


def after(marker: str | None) -> str:
    """The sort key a Marker continues after; "" for the first page."""
    if marker is None:
        return ""
    try:
        text = base64.b64decode(marker.encode("ascii"), altchars=b"-_", validate=True).decode()
    except (UnicodeError, binascii.Error, ValueError):
        text = ""
    if not text.startswith(_MARKER_PREFIX):
        raise InvalidMarkerError(
            "The request was rejected because the marker that specifies where pagination "
            "should next begin is not valid."
        )
    return text.removeprefix(_MARKER_PREFIX)


def after_index(marker: str | None) -> int:
    """For lists paged by position rather than by a sort key."""
    text = after(marker)
    if text and not text.isdigit():
        raise InvalidMarkerError(
            "The request was rejected because the marker that specifies where pagination "
            "should next begin is not valid."
        )
    return int(text or 0)


def page(
    rows: Sequence[T], limit: int, sort_key: Callable[[T], str], name: str, entries: list[Any]
) -> dict[str, Any]:
    """``rows`` holds up to limit + 1 rows: the extra one only says "there is more"."""
    result: dict[str, Any] = {name: entries[:limit], "Truncated": len(rows) > limit}
    if len(rows) > limit:
        last = sort_key(rows[limit - 1])
        result["NextMarker"] = base64.urlsafe_b64encode(
            (_MARKER_PREFIX + last).encode("utf-8")
        ).decode("ascii")
    return result
