"""Child processes we start and stop ourselves (chain nodes, Kubo daemons).

Every server listens on 127.0.0.1 only. Readiness is a bounded poll with a
timeout and a clear message that includes the tail of the process log; stop
is SIGTERM, a bounded wait, then SIGKILL of the whole process group.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from .._errors import ServiceError

log = logging.getLogger("fedledger.procs")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so a crash leaves the old or the new file, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


class ManagedProcess:
    """A server process with its output in a log file."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        *,
        log_path: Path,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.log_path = log_path
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(log_path, "ab")
        try:
            self.proc = subprocess.Popen(
                self.argv,
                stdout=self._log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=dict(env) if env is not None else None,
                cwd=cwd,
                start_new_session=True,
            )
        except OSError as exc:
            self._log.close()
            raise ServiceError(
                f"could not start {name} ({self.argv[0]}): {exc.strerror}",
                hint="run `fedledger doctor` to check the installation",
            ) from exc
        log.info("started %s pid=%d", name, self.proc.pid)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log_tail(self, lines: int = 15) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def wait_ready(
        self,
        probe: Callable[[], bool],
        *,
        timeout: float,
        what: str,
        interval: float = 0.1,
    ) -> None:
        """Poll ``probe`` until it returns True; fail clearly on exit or timeout."""
        deadline = time.monotonic() + timeout
        while True:
            if not self.alive():
                raise ServiceError(
                    f"{self.name} exited with code {self.proc.returncode} before {what};"
                    f" last log lines:\n{self.log_tail()}"
                )
            try:
                if probe():
                    return
            except Exception:  # noqa: BLE001 - any failure of a probe means "not yet"
                pass
            if time.monotonic() >= deadline:
                tail = self.log_tail()
                self.stop()
                raise ServiceError(
                    f"{self.name} was not ready ({what}) within {timeout:.0f} s;"
                    f" last log lines:\n{tail}"
                )
            time.sleep(interval)
            interval = min(interval * 1.5, 1.0)

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM the process group, wait, then SIGKILL. Safe to call twice."""
        if self.alive():
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                log.warning("%s did not stop in %.0f s; killing", self.name, timeout)
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.proc.wait(timeout=timeout)
        # Children may outlive a leader that exited on its own.
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        if not self._log.closed:
            self._log.close()
