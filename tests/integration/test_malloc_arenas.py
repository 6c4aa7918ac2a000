"""`keyledger serve` caps glibc's malloc arenas before its threads start (api/serve.py):
eight threads that allocate get two arenas between them, not one each."""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest

from tests.support import REPO

THREADS_ALLOCATE = """
import ctypes, sys, threading
from api.serve import bound_malloc_arenas
if sys.argv[1] == "bounded":
    assert bound_malloc_arenas()
def allocate():
    kept = [b"x" * 5000 for _ in range(100)]  # past obmalloc's 512 bytes: malloc's
    done.wait()
done = threading.Event()
threads = [threading.Thread(target=allocate) for _ in range(8)]
for thread in threads:
    thread.start()
done.set()
for thread in threads:
    thread.join()
ctypes.CDLL("libc.so.6").malloc_stats()  # "Arena N:" per arena, on stderr
"""


def arenas(mode: str) -> int:
    env = {k: v for k, v in os.environ.items() if k != "MALLOC_ARENA_MAX"}
    ran = subprocess.run(
        [sys.executable, "-c", THREADS_ALLOCATE, mode],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return sum(line.startswith("Arena ") for line in ran.stderr.splitlines())


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="malloc arenas are glibc's")
def test_serve_caps_the_malloc_arenas() -> None:
    assert arenas("unbounded") > 2  # the control: without the cap, threads get arenas
    assert arenas("bounded") <= 2
