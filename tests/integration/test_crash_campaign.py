"""The crash campaign (bench/crash.py), short: three SIGKILL cycles on SQLite under mixed
load from four clients; everything acknowledged survives, nothing cut off is half applied,
every acknowledged request has its record, the audit chain verifies, and no test plaintext
or data key is anywhere in the data directory. The by-hand run does 100 cycles."""

from __future__ import annotations

from pathlib import Path

from bench.crash import run


def test_three_crash_cycles_lose_nothing_acknowledged(tmp_path: Path) -> None:
    result = run(3, tmp_path / "data", clients=4, seed=15, at_rest=True, say=lambda _: None)
    assert result["failures"] == []
    assert result["requests_acknowledged"] > 0 and result["ciphertexts"] > 0
