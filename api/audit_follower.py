"""The audit view's follower as a process of its own (``serve --audit-follower process``).

In the default ``thread`` mode the projection shares the server's CPU and GIL; as a child
process (``keyledger audit follow``) it costs the request path nothing but the disk. The
server keeps its own AuditRunner for reads (LookupEvents catches the view up before it
answers); both write the view under its tracking rows, so each record is applied once.
"""

from __future__ import annotations

import logging
import signal
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

log = logging.getLogger("keyledger.audit")


class AuditFollower:
    def __init__(self, data_dir: Path, digest_interval: float, environ: Mapping[str, str]) -> None:
        args = [sys.executable, "-m", "api", "audit", "follow", "--data-dir", str(data_dir)]
        args += ["--digest-interval", str(digest_interval)]
        self._process = subprocess.Popen(args, env=dict(environ))  # noqa: S603 - our own CLI
        log.info("audit follower started", extra={"pid": self._process.pid})

    @property
    def pid(self) -> int:
        return self._process.pid

    def alive(self) -> bool:
        return self._process.poll() is None

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM: it projects what is left, signs a closing digest, and exits."""
        if self.alive():
            self._process.send_signal(signal.SIGTERM)
        try:
            self._process.wait(timeout)
        except subprocess.TimeoutExpired:
            log.error("audit follower did not stop in %s s; killing it", timeout)
            self._process.kill()
            self._process.wait()
