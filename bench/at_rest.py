"""Byte scans for secrets at rest: thousands of needles through hundreds of megabytes."""

from __future__ import annotations

import base64
from collections.abc import Iterable
from pathlib import Path

WINDOW = 8  # bytes: needles are looked up by 8-byte windows
MIN_NEEDLE = 2 * WINDOW - 1  # the shortest needle aligned windows are sure to find


# A window shared by more (needle, offset) pairs than this is not distinctive (a plaintext of
# one repeated byte, zeros): probing with it would compare every candidate at every aligned
# place such bytes fill. Needles with such a window are searched for whole instead.
CROWDED = 16


class Scanner:
    """Finds which of many needles (each MIN_NEEDLE bytes or more) a content holds.

    A needle of at least 2*WINDOW-1 bytes covers a window that starts at a multiple of
    WINDOW wherever it lies, so only those windows are looked up: one dictionary probe per
    8 bytes, fast enough for thousands of needles in hundreds of megabytes, where searching
    for each needle in turn is not. Repetitive needles go by ``needle in content``."""

    def __init__(self, needles: set[bytes]) -> None:
        index: dict[bytes, list[tuple[bytes, int]]] = {}
        for needle in needles:
            assert len(needle) >= MIN_NEEDLE, "too short to be found by aligned windows"
            for at in range(len(needle) - WINDOW + 1):
                index.setdefault(needle[at : at + WINDOW], []).append((needle, at))
        crowded = {n for entries in index.values() if len(entries) > CROWDED for n, _ in entries}
        self.whole = crowded
        self.index = {
            window: kept
            for window, entries in index.items()
            if (kept := [(n, at) for n, at in entries if n not in crowded])
        }

    def find(self, content: bytes) -> set[bytes]:
        hits = {needle for needle in self.whole if needle in content}
        index = self.index
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
    scanner = Scanner({form for secret in secrets for form in forms(secret)})
    found = {}
    for path in files:
        try:
            content = path.read_bytes()
        except OSError:  # gone meanwhile (a WAL checkpointed away)
            continue
        hits = scanner.find(content)
        if hits:
            found[path] = len(hits)
    return found
