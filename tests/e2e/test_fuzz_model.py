"""The model-driven fuzzer (bench/fuzz.py), seeded and short: hypothesis requests from the
botocore model's shapes plus hostile transport, as the account root and as a narrow user
checked by an independent oracle. No 5xx, no request allowed that the narrow policy denies,
no traceback in the server's log. The by-hand run sends many more (README, "How we test")."""

from __future__ import annotations

from pathlib import Path

from bench.fuzz import run


def test_a_seeded_fuzz_run_finds_nothing(tmp_path: Path) -> None:
    result = run(400, tmp_path / "data", workers=1, seed_value=15)
    assert result["findings"] == []
    assert result["requests"] >= 400
    statuses = result["statuses"]
    assert statuses.get(200, 0) > 0 and statuses.get(400, 0) > 0
    assert not [status for status in statuses if status >= 500]
