"""Byte scans for secrets at rest: thousands of needles through hundreds of megabytes."""

from __future__ import annotations

import base64
from collections.abc import Iterable
from pathlib import Path

WINDOW = 8  # bytes: needles are looked up by 8-byte windows
MIN_NEEDLE = 2 * WINDOW - 1  # the shortest needle aligned windows are sure to find


def windows(needles: set[bytes]) -> dict[bytes, list[tuple[bytes, int]]]:
    """Every 8-byte window of every needle, with where it sits in its needle."""
    index: dict[bytes, list[tuple[bytes, int]]] = {}
    for needle in needles:
        assert len(needle) >= MIN_NEEDLE, "too short to be found by aligned windows"
        for at in range(len(needle) - WINDOW + 1):
            index.setdefault(needle[at : at + WINDOW], []).append((needle, at))
    return index


def found_in(content: bytes, index: dict[bytes, list[tuple[bytes, int]]]) -> set[bytes]:
    """The needles in ``content``. A needle of at least 2*WINDOW-1 bytes covers a window
    that starts at a multiple of WINDOW wherever it lies, so only those windows are looked
    up: one dictionary probe per 8 bytes, fast enough for thousands of needles in hundreds
    of megabytes, where searching for each needle in turn is not."""
    hits = set()
    for at in range(0, len(content) - WINDOW + 1, WINDOW):
        for needle, offset in index.get(content[at : at + WINDOW], ()):
            start = at - offset
            if start >= 0 and content[start : start + len(needle)] == needle:
                hits.add(needle)
    return hits


def forms(secret: bytes) -> tuple[bytes, bytes, bytes]:
    """A secret as it might be written: raw, base64 (JSON, logs) and hex."""
    return secret, base64.b64encode(secret), secret.hex().encode()


def files_holding(files: Iterable[Path], secrets: Iterable[bytes]) -> dict[Path, int]:
    """Each file holding any of ``secrets`` (in any of its forms), with how many."""
    needles = {form for secret in secrets for form in forms(secret)}
    index = windows(needles)
    found = {}
    for path in files:
        try:
            content = path.read_bytes()
        except OSError:  # gone meanwhile (a WAL checkpointed away)
            continue
        hits = found_in(content, index)
        if hits:
            found[path] = len(hits)
    return found
