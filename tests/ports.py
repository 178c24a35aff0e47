"""Loopback ports for the real servers the tests start: one free now, and waiting until one listens."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Callable


def free_port() -> int:
    """A loopback port no one listens on (it was free a moment ago; nothing else takes it in tests)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_listening(port: int, process: subprocess.Popen[bytes], what: str, why: Callable[[], str] = lambda: "",
                   seconds: float = 30) -> None:
    """Return once something accepts connections on `port`; RuntimeError if `process` exits
    first or `seconds` pass (with `why()`, e.g. the end of its log)."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                detail = why()
                raise RuntimeError(f"{what} did not start" + (f": {detail}" if detail else "")) from None
            time.sleep(0.05)
